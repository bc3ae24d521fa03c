"""The rolling study: test-row predictions, model choice per window, evaluation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl
import pytest

from fapm_jax.core.config import TrainConfig, sweep_grid
from fapm_jax.data.embedded import SimConfig, simulate_panel
from fapm_jax.data.windows import WindowSpec, rolling_windows, window_masks
from fapm_jax.evaluation.metrics import r2_oos
from fapm_jax.studies.rolling import params_arrays, predict_test_rows, run_rolling, training_table

SPEC = WindowSpec(first_year=1990, valid_years=3, first_test_year=1996, n_windows=3)


@pytest.fixture(scope="module")
def panel():
    p, _ = simulate_panel(SimConfig(n_stocks=40, n_chars=8, first_month=199001, last_month=199912, seed=2))
    return p


@pytest.fixture(scope="module")
def sweep_run(panel):
    cfg = TrainConfig(rank=3, epochs=8, learning_rate=1e-2)
    hyper, _ = sweep_grid(cfg, learning_rates=[1e-3, 1e-2])
    return run_rolling(panel, cfg, SPEC, hyper=hyper, size_group=10)


def numpy_fm(w0, w, V, X):
    """Second-order model with B = V Vᵀ written as the naive double sum."""
    X = X.astype(np.float64)
    B = V.astype(np.float64) @ V.T.astype(np.float64)
    out = w0 + X @ w.astype(np.float64)
    n = X.shape[1]
    for i in range(n):
        for j in range(i + 1, n):
            out = out + B[i, j] * X[:, i] * X[:, j]
    return out


def test_predict_test_rows_uses_each_windows_model(panel):
    W, n, k = 3, panel.n_features, 2
    rng = np.random.default_rng(0)
    from fapm_jax.core.model import FAPMParams

    params = FAPMParams(
        w0=jnp.asarray(rng.normal(size=W), jnp.float32),
        w=jnp.asarray(rng.normal(size=(W, n)) * 0.1, jnp.float32),
        V=jnp.asarray(rng.normal(size=(W, n, k)) * 0.1, jnp.float32),
    )
    _, _, test = window_masks(panel.year, rolling_windows(SPEC))
    out = np.asarray(predict_test_rows(params, jnp.asarray(panel.X), jnp.asarray(test)))
    for w in range(W):
        rows = test[w]
        ref = numpy_fm(float(params.w0[w]), np.asarray(params.w[w]), np.asarray(params.V[w]), panel.X[rows])
        np.testing.assert_allclose(out[rows], ref, rtol=1e-4, atol=1e-5)  # float32 vs float64
    assert np.all(out[~test.any(axis=0)] == 0)


def test_run_predicts_exactly_the_test_years(panel, sweep_run):
    pred = sweep_run.predictions
    assert sorted(set((pred["month"] // 100).to_list())) == [1996, 1997, 1998]
    assert pred.height == int(np.isin(panel.year, [1996, 1997, 1998]).sum())
    assert r2_oos(pred["r"], pred["r_hat"]) == pytest.approx(sweep_run.r2_value("all"), abs=1e-9)
    assert sweep_run.r2.filter(pl.col("sample") == "year").height == 3


def test_chosen_setting_is_best_on_validation(panel, sweep_run):
    res = sweep_run.result
    best = np.asarray(res.best_valid_r2)
    assert np.array_equal(sweep_run.setting, best.argmax(axis=0))
    for w, s in enumerate(sweep_run.setting):
        np.testing.assert_array_equal(np.asarray(sweep_run.params.V[w]), np.asarray(res.params.V[s, w]))
    # The test-row forecasts come from the chosen models.
    _, valid, test = window_masks(panel.year, rolling_windows(SPEC))
    w = 1
    rows = test[w]
    p = jax.tree_util.tree_map(lambda a: np.asarray(a[w]), sweep_run.params)
    ref = numpy_fm(float(p.w0), p.w, p.V, panel.X[rows])
    got = sweep_run.predictions.filter((pl.col("month") // 100) == 1997)["r_hat"].to_numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    # Its validation R², recomputed independently, is the reported one.
    vr = valid[w]
    ref_v = numpy_fm(float(p.w0), p.w, p.V, panel.X[vr])
    assert r2_oos(panel.r[vr], ref_v) == pytest.approx(float(best[sweep_run.setting[w], w]), abs=1e-4)


def test_tables(panel, sweep_run):
    t = training_table(sweep_run)
    assert t["test_year"].to_list() == [1996, 1997, 1998]
    assert (t["best_valid_r2"] >= t["linear_valid_r2"] - 1e-7).all()
    arrays = params_arrays(sweep_run, panel.feature_names)
    assert arrays["V"].shape == (3, panel.n_features, 3)
    assert list(arrays["feature_names"]) == list(panel.feature_names)
    assert sweep_run.diverged_windows() == []


def test_linear_start_r2_is_ols_per_window(panel, sweep_run):
    train, _, test = window_masks(panel.year, rolling_windows(SPEC))
    r, rh = [], []
    for w in range(3):
        A = np.c_[np.ones(train[w].sum()), panel.X[train[w]].astype(np.float64)]
        beta = np.linalg.lstsq(A, panel.r[train[w]].astype(np.float64), rcond=None)[0]
        r.append(panel.r[test[w]])
        rh.append(np.c_[np.ones(test[w].sum()), panel.X[test[w]]] @ beta)
    ref = r2_oos(np.concatenate(r), np.concatenate(rh))
    got = float(sweep_run.linear_r2.filter(pl.col("sample") == "all")["r2_oos"][0])
    assert got == pytest.approx(ref, abs=2e-4)  # float32 OLS via the normal equations vs float64 lstsq


def test_train_mean_level_fits_the_deviations_and_adds_the_training_mean(panel):
    """level="train-mean": each window is the model fit to the months' deviations from their
    cross-sectional mean, its forecasts plus the window's mean training return — the same run
    as a hand-demeaned panel's, the linear start an OLS of the deviations (numpy), the
    validation R² of r recomputed by hand; and a later year's returns change no earlier forecast."""
    cfg = TrainConfig(rank=3, epochs=8, learning_rate=1e-2, level="train-mean")
    hyper, _ = sweep_grid(cfg, learning_rates=[1e-3, 1e-2])
    run = run_rolling(panel, cfg, SPEC, hyper=hyper, size_group=10)
    r = panel.r.astype(np.float64)
    dev = r.copy()
    for m in np.unique(panel.month):
        dev[panel.month == m] -= r[panel.month == m].mean()
    ref = run_rolling(
        dataclasses.replace(panel, r=dev.astype(np.float32)),
        dataclasses.replace(cfg, level="model"),
        SPEC,
        hyper=hyper,
        size_group=10,
    )
    train, valid, test = window_masks(panel.year, rolling_windows(SPEC))
    mu = np.array([r[m].mean() for m in train])
    np.testing.assert_allclose(run.level, mu, rtol=1e-12)
    win = test[:, run.test_rows].argmax(axis=0)
    np.testing.assert_array_equal(run.setting, ref.setting)
    np.testing.assert_allclose(
        run.predictions["r_hat"].to_numpy(), ref.predictions["r_hat"].to_numpy() + mu[win], atol=1e-6
    )
    np.testing.assert_array_equal(run.predictions["r"].to_numpy(), panel.r[run.test_rows])  # r itself
    fc, y = [], []
    for w in range(3):
        A = np.c_[np.ones(train[w].sum()), panel.X[train[w]].astype(np.float64)]
        beta = np.linalg.lstsq(A, dev[train[w]], rcond=None)[0]
        fc.append(np.c_[np.ones(test[w].sum()), panel.X[test[w]]] @ beta + mu[w])
        y.append(r[test[w]])
        p = jax.tree_util.tree_map(lambda a: np.asarray(a[w]), run.params)
        fv = numpy_fm(float(p.w0), p.w, p.V, panel.X[valid[w]]) + mu[w]
        assert run.valid_r2[w] == pytest.approx(r2_oos(r[valid[w]], fv), abs=1e-4)
    got = float(run.linear_r2.filter(pl.col("sample") == "all")["r2_oos"][0])
    assert got == pytest.approx(r2_oos(np.concatenate(y), np.concatenate(fc)), abs=2e-4)
    later = panel.r.copy()
    later[panel.year == 1997] *= -3.0  # the last window's validation year: later than the others' data
    run2 = run_rolling(dataclasses.replace(panel, r=later), cfg, SPEC, hyper=hyper, size_group=10)
    early = (run.predictions["month"] // 100).to_numpy() < 1998
    before, after = (x.predictions["r_hat"].to_numpy()[early] for x in (run, run2))
    np.testing.assert_array_equal(after, before)


def test_seed_ensemble_averages_independent_fits():
    """``combine="average"`` over a seeds sweep forecasts the mean of the single-seed runs'
    forecasts, and (squared loss is convex) its MSE is at most their mean MSE."""
    big, _ = simulate_panel(SimConfig(n_stocks=120, n_chars=8, first_month=198001, last_month=199912, seed=3))
    spec = WindowSpec(first_year=1980, valid_years=4, first_test_year=1996, n_windows=3)
    cfg = TrainConfig(rank=3, epochs=30, learning_rate=2e-2, init_scale=0.05)
    seeds = [0, 1, 2]
    hyper, _ = sweep_grid(cfg, seeds=seeds)
    ens = run_rolling(big, cfg, spec, hyper=hyper, size_group=10, combine="average")
    singles = [run_rolling(big, dataclasses.replace(cfg, seed=s), spec, size_group=10) for s in seeds]
    hats = [s.predictions["r_hat"].to_numpy().astype(np.float64) for s in singles]
    mean_hat = np.mean(hats, axis=0)
    np.testing.assert_allclose(ens.predictions["r_hat"].to_numpy(), mean_hat, rtol=1e-5, atol=1e-7)
    r = ens.predictions["r"].to_numpy().astype(np.float64)
    assert np.ptp([np.mean((r - h) ** 2) for h in hats]) > 0  # the seeds really differ
    assert np.mean((r - mean_hat) ** 2) < np.mean([np.mean((r - h) ** 2) for h in hats])
    with pytest.raises(ValueError, match="combine"):
        run_rolling(big, cfg, spec, combine="vote")
    assert ens.member_settings.shape == (3, 3)  # every setting is a member of the average
    for members, combine in (([0, 1], "select"), ([0, 1, 2], "average")):  # before any training
        with pytest.raises(ValueError, match="members"):
            run_rolling(big, cfg, spec, hyper=hyper, combine=combine, members=members)
