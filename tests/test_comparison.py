"""The comparison suite driver (fapm_jax/comparison.py): model names, the same windows and
test rows for every model, forecasts against per-window scikit-learn fits, Table 1 and the
Diebold–Mariano table by hand, GKX covariates, resume."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LinearRegression

from fapm_jax import SimConfig, WindowSpec, rolling_windows, simulate_panel, window_masks
from fapm_jax.baselines import OLS, PCR, AbstractHostModel, AbstractJaxModel, AbstractModel
from fapm_jax.baselines.expand import OnGKXCovariates
from fapm_jax.core.errors import ConfigError, StudyError
from fapm_jax.data.covariates import covariate_blocks, gkx_covariates
from fapm_jax.evaluation.diebold_mariano import dm_test
from fapm_jax.evaluation.metrics import r2_table
from fapm_jax.studies.comparison import (
    PROFILES,
    TABLE1_MODELS,
    make_model,
    run_comparison,
    window_chunk_for,
)
from fapm_jax.studies.simulation_study import SIM_MODELS, sim_models

SPEC = WindowSpec(first_year=1957, valid_years=6, first_test_year=1970, n_windows=3)


@pytest.fixture(scope="module")
def panel():
    p, _ = simulate_panel(SimConfig(n_stocks=30, n_chars=6, first_month=195701, last_month=197212))
    return p


def test_model_names():
    names = ("mvel1", "bm", "mom12m", "x")
    m = make_model("OLS-3+H", names)
    assert (m.name, m.columns, m.huber) == ("OLS-3+H", (0, 1, 2), True)
    assert make_model("OLS-3", ("a", "size", "b", "val", "mom"), ols3=("size", "val", "mom")).columns == (
        1,
        3,
        4,
    )
    assert make_model("NN4", names).hidden == (32, 16, 8, 4)
    assert make_model("NN4", names, profile="quick").ensemble < make_model("NN4", names).ensemble
    assert make_model("Ridge+H", names, huber_xi=0.2).huber_xi == 0.2
    for bad, pat in (("OLS4", "unknown model"), ("PCR+H", "no Huber"), ("NN6", "unknown model")):
        with pytest.raises(StudyError, match=pat):
            make_model(bad, names)
    with pytest.raises(StudyError, match=r"\['mvel1'\] not among"):
        make_model("OLS-3", ("bm", "mom12m"))
    with pytest.raises(StudyError, match="profile"):
        make_model("OLS", names, profile="fast")


def test_window_chunk_rule():
    """Networks loop over windows on a CPU (lockstep early stopping is slow there), everything
    else is vmapped over all windows; a GKX-covariate wrapper follows its inner model."""
    names = ("mvel1", "bm", "mom12m", "x")
    nn, ols = make_model("NN2", names), make_model("OLS", names)
    assert window_chunk_for(nn, backend="cpu") == 1
    assert window_chunk_for(nn, backend="gpu") is None
    assert window_chunk_for(ols, 1000, 38, backend="cpu") is None
    assert window_chunk_for(OnGKXCovariates(nn, (0,), (1,), ()), backend="cpu") == 1
    # the GLM by its working memory: 4 temporaries of N x P float32 per lambda
    glm = make_model("GLM+H", names, profile="quick")  # 4 lambdas: 4 * 4 * 1000 * 38 * 4 bytes
    assert window_chunk_for(glm, 1000, 38, backend="cpu", budget=10 * 2432000) == 10
    assert window_chunk_for(glm, 1000, 38, backend="cpu", budget=100) == 1
    wrapped = OnGKXCovariates(glm, (0, 1), (2, 3, 4), (5,))  # 2 x (1 + 3) + 1 = 9 columns
    assert wrapped.window_bytes(1000, 6) == 4 * 4 * 1000 * 9 * 4


def test_forecasts_tables_and_resume(panel, tmp_path):
    models = [OLS(), OLS(name="OLS-2", columns=(0, 1)), PCR(max_components=3)]
    calls = []
    comp = run_comparison(panel, models, SPEC, checkpoint_dir=tmp_path, progress=lambda *a: calls.append(a))
    tr, va, te = window_masks(panel.year, rolling_windows(SPEC))
    rows = te.any(axis=0)
    assert comp.frame.height == rows.sum()
    np.testing.assert_array_equal(comp.frame["permno"].to_numpy(), panel.permno[rows])
    # OLS forecasts = a scikit-learn fit on each window's training rows, applied to its test year
    ref = np.zeros(panel.n_rows)
    for w in range(3):
        lr = LinearRegression().fit(panel.X[tr[w]], panel.r[tr[w]])
        ref[te[w]] = lr.predict(panel.X[te[w]])
    np.testing.assert_allclose(comp.frame["OLS"].to_numpy(), ref[rows], atol=2e-5)
    # Table 1 rows equal r2_table of each model's forecasts
    t1 = comp.table1()
    for m in ("OLS", "OLS-2", "PCR"):
        ref_t = r2_table(
            comp.frame.select("permno", "month", "r", "mktcap", pl.col(m).alias("r_hat")), comp.size_group
        )
        np.testing.assert_allclose(
            t1.filter(pl.col("model") == m).select("all", "top", "bottom").row(0), ref_t["r2_oos"].to_list()
        )
    dm = comp.dm()
    np.testing.assert_allclose(
        dm.filter(pl.col("model") == "OLS")["PCR"][0], dm_test(comp.frame, "OLS", "PCR").statistic
    )
    np.testing.assert_allclose(
        dm.filter(pl.col("model") == "PCR")["OLS"][0], -dm_test(comp.frame, "OLS", "PCR").statistic
    )
    # a rerun reuses every model's saved forecasts and gives the same frame
    again = run_comparison(panel, models, SPEC, checkpoint_dir=tmp_path, progress=lambda *a: calls.append(a))
    assert [c[2] for c in calls] == [False] * 3 + [True] * 3
    assert again.frame.equals(comp.frame)
    # FAPM (or any) forecasts join as another column
    more = comp.with_forecast("zero", np.zeros(comp.frame.height))
    assert more.models[-1] == "zero" and more.table1().filter(pl.col("model") == "zero")["all"][0] == 0.0
    with pytest.raises(StudyError, match="expected"):
        comp.with_forecast("bad", np.zeros(3))


def test_gkx_covariates_equal_an_explicit_expansion(panel):
    """Expanding inside the compiled fit = fitting on a panel whose factors are the expansion."""
    models = [OLS(), PCR(max_components=5)]
    comp = run_comparison(panel, models, SPEC, covariates="gkx")
    c, m, s = covariate_blocks(list(panel.feature_names), list(panel.macro_names))
    Z = np.asarray(gkx_covariates(panel.X[:, c], panel.X[:, m]))
    assert Z.shape[1] == len(c) * (1 + len(m)) == 6 * 9
    names = tuple(f"z{i}" for i in range(Z.shape[1]))
    explicit = dataclasses.replace(panel, X=Z.astype(np.float32), feature_names=names, macro_names=())
    ref = run_comparison(explicit, models, SPEC)
    for mod in ("OLS", "PCR"):
        np.testing.assert_allclose(
            comp.frame[mod].to_numpy(), ref.frame[mod].to_numpy(), rtol=1e-4, atol=1e-6
        )
    # ... and differs from the model on the raw factors
    raw = run_comparison(panel, [OLS()], SPEC)
    assert np.max(np.abs(raw.frame["OLS"].to_numpy() - comp.frame["OLS"].to_numpy())) > 1e-3


def test_bad_requests(panel):
    with pytest.raises(StudyError, match="duplicate"):
        run_comparison(panel, [OLS(), OLS()], SPEC)
    with pytest.raises(StudyError, match="covariates"):
        run_comparison(panel, [OLS()], SPEC, covariates="all")


def test_importance_is_computed_with_the_fit_and_saved(panel, tmp_path):
    """``importance=True``: each model's R² drops equal r2_drops of the same per-window fits by
    hand (scikit-learn OLS here), and a rerun reads them back from the checkpoint."""
    tr, _, _ = window_masks(panel.year, rolling_windows(SPEC))
    comp = run_comparison(
        panel, [OLS()], SPEC, checkpoint_dir=tmp_path, importance=True, importance_rows=None
    )
    d = comp.importance["OLS"]
    assert d.shape == (3, panel.n_features)
    for w in range(3):
        lr = LinearRegression().fit(panel.X[tr[w]], panel.r[tr[w]])
        Xw, rw = panel.X[tr[w]].astype(np.float64), panel.r[tr[w]].astype(np.float64)
        base = np.sum((rw - lr.predict(Xw)) ** 2)
        for j in (0, panel.n_features - 1):
            Z = Xw.copy()
            Z[:, j] = 0
            want = (np.sum((rw - lr.predict(Z)) ** 2) - base) / np.sum(rw**2)
            assert d[w, j] == pytest.approx(want, rel=2e-3, abs=1e-6)
    again = run_comparison(
        panel, [OLS()], SPEC, checkpoint_dir=tmp_path, importance=True, importance_rows=None
    )
    np.testing.assert_array_equal(again.importance["OLS"], d)
    assert run_comparison(panel, [OLS()], SPEC).importance == {}


#: Every name ``make_model`` accepts: GKX's models, ``+H`` where a loss applies.
SUITE = (
    *("OLS", "OLS-3", "PLS", "PCR", "ENet", "Lasso", "Ridge", "GLM", "RF", "GBRT"),
    *(f"NN{k}" for k in range(1, 6)),
    *(f"{m}+H" for m in ("OLS", "OLS-3", "ENet", "Lasso", "Ridge", "GLM", "GBRT")),
)
CONTRACT = ("fit", "predict", "fit_windows", "predict_windows", "fit_predict_datasets", "window_bytes")


@pytest.mark.parametrize("profile", PROFILES)
def test_every_suite_model_implements_the_contract(profile):
    """Every model of the suite (and FAPM, and each on GKX covariates) is a concrete
    AbstractModel of exactly one family — trees on the host, the rest in JAX — with no array
    among its leaves (static under filter_jit), hashable, equal to its rebuild."""
    assert set(TABLE1_MODELS) <= set(SUITE) and set(SIM_MODELS) <= set(SUITE)
    names = ("mvel1", "bm", "mom12m", "x")
    models = [make_model(n, names, profile=profile) for n in SUITE]
    models += sim_models((), profile=profile)  # FAPM, FAPM+SI
    models += [OnGKXCovariates(m, (0,), (1, 2), (3,)) for m in models]
    for m in models:
        assert isinstance(m, AbstractModel) and not type(m).__abstractmethods__, m.name
        host = m.name.startswith(("RF", "GBRT"))
        assert isinstance(m, AbstractHostModel) == host and isinstance(m, AbstractJaxModel) == (not host)
        assert m.is_jax == (not host)
        assert all(callable(getattr(m, f)) for f in CONTRACT)
        assert jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_array)) == []
        again = dataclasses.replace(m)
        assert again == m and hash(again) == hash(m) and repr(again) == repr(m)
    assert dataclasses.replace(models[0], name="other").name == "other"
    with pytest.raises(ConfigError, match="comparison model"):
        OnGKXCovariates(object(), (0,), (1,))


def test_gkx_covariates_for_a_host_model(panel):
    """A tree on GKX covariates is a host model (numpy expansion, a loop over windows) and
    forecasts exactly as on a panel whose factors are the expansion."""
    rf = make_model("RF", panel.feature_names, profile="quick")
    rf = dataclasses.replace(rf, n_estimators=5, max_depth=(2,), max_features=(3,), n_jobs=1)
    comp = run_comparison(panel, [rf], SPEC, covariates="gkx")
    c, m, s = covariate_blocks(list(panel.feature_names), list(panel.macro_names))
    Z = np.asarray(gkx_covariates(panel.X[:, c], panel.X[:, m])).astype(np.float32)
    names = tuple(f"z{i}" for i in range(Z.shape[1]))
    explicit = dataclasses.replace(panel, X=Z, feature_names=names, macro_names=())
    np.testing.assert_array_equal(
        comp.frame["RF"].to_numpy(), run_comparison(explicit, [rf], SPEC).frame["RF"]
    )
