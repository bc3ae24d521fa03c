"""The GKX Monte Carlo study driver (fapm_jax/simstudy.py): data layout, R² against the
training mean by hand, vmapped repetitions against a loop, table layout, resume."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LinearRegression

from fapm_jax.baselines import OLS, PCR, RF, OnGKXCovariates
from fapm_jax.data.gkx_design import GKXSimConfig, oracle_r2, preprocess_gkx_sim, simulate_gkx
from fapm_jax.studies.simulation_study import (
    SIM_HUBER_XI,
    SIM_NN_BATCH,
    SIM_NN_PATIENCE,
    StudyError,
    compare_table,
    design_data,
    fit_design,
    published_table_a1,
    run_study,
    sim_models,
    table_a1,
)


@pytest.fixture(scope="module")
def small():
    return design_data("a", 50, [3, 4, 5], n_stocks=40)


def test_design_data_layout(small):
    R, TN, P = small.z.shape
    assert (R, TN, P) == (3, 180 * 40, 100)
    assert small.f.shape == (3, TN, 51)
    sim = simulate_gkx(GKXSimConfig(model="a", n_chars=50, n_stocks=40, seed=4))
    pre = preprocess_gkx_sim(sim)
    np.testing.assert_allclose(small.z[1], pre.z.reshape(TN, -1), rtol=1e-6)
    np.testing.assert_allclose(small.y[1], pre.y.reshape(TN), rtol=1e-6, atol=1e-7)
    # FAPM's factors: c then x, each divided by its training standard deviation
    f = small.f[1].reshape(180, 40, 51)
    np.testing.assert_allclose(f[..., :50] * sim.c[:60].reshape(-1, 50).std(0), sim.c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f[:, 0, 50] * sim.x[:60].std(), sim.x, rtol=1e-5, atol=1e-6)
    assert small.train.sum() == small.valid.sum() == small.test.sum() == 60 * 40
    assert np.all(small.train[: 60 * 40] == 1) and np.all(small.test[120 * 40 :] == 1)
    o = oracle_r2(sim)
    np.testing.assert_allclose(small.oracle[1], [o.r2_is, o.r2_oos])


def test_ols_r2_against_the_training_mean_by_hand(small):
    r2_is, r2_oos = fit_design(OLS(), small, chunk=2)
    tr, te = small.train > 0, small.test > 0
    for r in range(3):
        sim = simulate_gkx(GKXSimConfig(model="a", n_chars=50, n_stocks=40, seed=3 + r))
        z = sim.z.reshape(180 * 40, -1)
        ret = sim.r.reshape(-1)
        lr = LinearRegression().fit(z[tr], ret[tr])  # raw data: scaling and demeaning cancel
        mean_tr = ret[tr].mean()
        ref = [
            1 - np.sum((ret[m] - lr.predict(z[m])) ** 2) / np.sum((ret[m] - mean_tr) ** 2) for m in (tr, te)
        ]
        np.testing.assert_allclose([r2_is[r], r2_oos[r]], ref, atol=2e-4)
    assert np.all(r2_is > r2_oos)  # 100 regressors on 2,400 rows overfit


def test_vmapped_repetitions_equal_one_at_a_time(small):
    model = PCR(max_components=10)
    a = fit_design(model, small, chunk=3)
    b = fit_design(model, small, chunk=1)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_table_layout_resume_and_comparison(tmp_path):
    calls = []
    kw = dict(
        reps=2,
        designs=[("a", 50), ("b", 50)],
        first_seed=7,
        checkpoint_dir=tmp_path,
        progress=lambda *a: calls.append(a),
    )
    res = run_study([OLS(), OLS(name="OLS+H", huber=True, huber_xi=0.2)], **kw)
    assert res.height == 2 * 2 * 3  # designs × reps × (oracle + 2 models)
    again = run_study([OLS(), OLS(name="OLS+H", huber=True, huber_xi=0.2)], **kw)
    assert all(c[3] for c in calls[4:]) and not any(c[3] for c in calls[:4])  # second run reused
    assert res.equals(again)
    tab = table_a1(res)
    assert tab.columns == ["method", "a_pc50_is", "a_pc50_oos", "b_pc50_is", "b_pc50_oos", "reps"]
    assert tab["method"].to_list() == ["Oracle", "OLS", "OLS+H"]
    sub = res.filter((pl.col("method") == "OLS") & (pl.col("model") == "b"))
    np.testing.assert_allclose(
        tab.filter(pl.col("method") == "OLS")["b_pc50_oos"][0], 100 * sub["r2_oos"].mean()
    )
    cmp = compare_table(tab)
    paper = published_table_a1()
    np.testing.assert_allclose(
        cmp.filter(pl.col("method") == "OLS")["a_pc50_oos_paper"][0],
        paper.filter(pl.col("method") == "OLS")["a_pc50_oos"][0],
    )
    row = cmp.filter(pl.col("method") == "OLS+H")
    np.testing.assert_allclose(row["a_pc50_is_diff"][0], row["a_pc50_is"][0] - row["a_pc50_is_paper"][0])


def test_bad_requests():
    with pytest.raises(StudyError, match="reps"):
        run_study([OLS()], reps=0)
    with pytest.raises(StudyError, match="design"):
        run_study([OLS()], reps=1, designs=[("c", 50)])


def test_sim_models_settings():
    """The study's departures from the empirical grids: networks with the simulation's batch
    and patience, Huber models with the authors' threshold, FAPM and FAPM+SI appended."""
    ms = sim_models(["NN2", "ENet+H", "OLS"])
    nn, enet, ols = ms[:3]
    assert (nn.batch_size, nn.patience) == (SIM_NN_BATCH, SIM_NN_PATIENCE) == (1000, 20)
    assert nn.hidden == (32, 16) and nn.ensemble == 10
    assert enet.huber and enet.huber_xi == SIM_HUBER_XI and not ols.huber
    assert [m.name for m in ms[3:]] == ["FAPM", "FAPM+SI", "FAPM-MAP"]
    assert ms[4].config.self_interactions and not ms[3].config.self_interactions
    both = sim_models([], covariates=("factors", "gkx"))
    rows = ["FAPM", "FAPM+SI", "FAPM-MAP"]
    assert [m.name for m in both] == rows + [f"{r}-gkx" for r in rows]
    assert both[5].inner == both[2]
    with pytest.raises(StudyError, match="covariates"):
        sim_models([], covariates=("chars",))
    ens = sim_models([], map_members=3)  # the ensemble row: FAPM-MAP's model, three members
    assert [m.name for m in ens] == [*rows, "FAPM-MAP-ens"] and ens[3].members == 3
    assert ens[3].penalties == ens[2].penalties and ens[3].config == ens[2].config
    with pytest.raises(StudyError, match="map_members"):
        sim_models([], map_members=0)


def test_gkx_rows_fit_the_gkx_covariates(small):
    """A ``-gkx`` row is its FAPM fitted on z (the GKX models' inputs), by hand; the plain row
    sees FAPM's own factors (c, x)."""
    import jax

    from fapm_jax.baselines.base import window_keys
    from fapm_jax.baselines.fapm import FAPM
    from fapm_jax.core.config import TrainConfig
    from fapm_jax.studies.simulation_study import OnSimCovariates, _r2

    fapm = FAPM(config=TrainConfig(epochs=3, rank=2))
    keys = window_keys(jax.random.key(0), 3)
    for model, X in ((OnSimCovariates(fapm), small.z), (fapm, small.f)):
        got = fit_design(model, small, chunk=3)
        y_hat = fapm.fit_predict_datasets(X, small.y, small.train, small.valid, keys)
        np.testing.assert_allclose(got[1], _r2(small.y, y_hat, small.test), rtol=1e-6)
    assert not np.allclose(fit_design(OnSimCovariates(fapm), small)[1], fit_design(fapm, small)[1])


def test_model_repr_keeps_saved_cells_valid():
    """``study_cell`` (and the comparison's checkpoints) fingerprint ``repr(model)``: it is still
    the frozen dataclasses' repr, ``is_jax`` where they had that field, so saved cells (e.g.
    experiments/results/simstudy_cells) are reused."""
    ols = sim_models(["OLS"], fapm=False)[0]
    assert repr(ols) == (
        "OLS(name='OLS', columns=None, huber=False, huber_xi=0.2, huber_quantile=0.999, "
        "irls_iters=100, irls_tol=None, is_jax=True)"
    )
    assert repr(PCR(max_components=3)) == "PCR(name='PCR', max_components=3, is_jax=True, rcond=None)"
    assert repr(RF(n_estimators=3)) == (
        "RF(name='RF', n_estimators=3, max_depth=(1, 2, 3, 4, 5, 6), max_features=(3, 5, 10, 20, 30, 50), "
        "max_samples=None, n_jobs=-1, is_jax=False)"
    )
    assert repr(OnGKXCovariates(PCR(), (0,), (1,))) == (
        "OnGKXCovariates(inner=PCR(name='PCR', max_components=None, is_jax=True, rcond=None), "
        "chars=(0,), macro=(1,), sic=())"
    )
