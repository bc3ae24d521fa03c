"""FAPM's estimators (fapm_jax.studies.estimators, fapm_jax.baselines.fapm.TunedFAPM): the
switch, the grid's scaling, the per-window choice against a hand loop, the tuned model against
a loop of single-setting fits."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl
import pytest

from fapm_jax.baselines.base import masked_sse
from fapm_jax.baselines.fapm import FAPM, TUNED_GROUP_V, TUNED_L1_W, TunedFAPM, tuned_grid
from fapm_jax.core.config import ESTIMATORS, TrainConfig
from fapm_jax.core.errors import ConfigError
from fapm_jax.core.model import predict
from fapm_jax.data.embedded import SimConfig, simulate_panel
from fapm_jax.data.windows import WindowSpec
from fapm_jax.studies.estimators import (
    ENSEMBLE_SEEDS,
    ROLLING_PENALTIES,
    SIM_TRAIN_ROWS,
    best_per_window,
    make_estimator,
    mean_train_rows,
    run_estimator,
    valid_r2,
)
from fapm_jax.studies.rolling import member_params

SPEC = WindowSpec(first_year=1990, valid_years=3, first_test_year=1996, n_windows=3)


@pytest.fixture(scope="module")
def panel():
    p, _ = simulate_panel(SimConfig(n_stocks=40, n_chars=8, first_month=199001, last_month=199912, seed=2))
    return p


def test_the_switch(panel):
    assert ESTIMATORS == ("paper", "map", "ensemble") and TrainConfig().estimator == "paper"
    with pytest.raises(ConfigError, match="TrainConfig.estimator"):
        TrainConfig(estimator="magic")
    cfg = TrainConfig(rank=3, epochs=5)
    paper = make_estimator(cfg, panel, SPEC)
    assert paper.hyper is None and paper.combine == "select" and paper.name == "FAPM"
    ens = make_estimator(dataclasses.replace(cfg, estimator="ensemble"), panel, SPEC)
    assert ens.combine == "average" and [p["seed"] for p in ens.points] == list(range(ENSEMBLE_SEEDS))
    mp = make_estimator(dataclasses.replace(cfg, estimator="map"), panel, SPEC, epochs=7)
    assert mp.name == "FAPM-MAP" and mp.config.epochs == 7 and mp.config.self_interactions
    assert mp.config.rank == 3 and len(mp.points) == len(tuned_grid(no_self=False)) == 34
    # the simulation's grid, rescaled by sqrt(12,000 / mean training rows)
    scale = math.sqrt(SIM_TRAIN_ROWS / mean_train_rows(panel, SPEC))
    last = dict(tuned_grid()[-1])
    assert mp.points[-1]["l1_w"] == pytest.approx(last["l1_w"] * scale, rel=1e-6)
    assert mp.points[0]["l1_w"] == mp.points[0]["group_v"] == 0.0  # the unpenalised candidate
    # repr (the fingerprint of saved results) does not carry the switch
    assert repr(dataclasses.replace(cfg, estimator="map")) == repr(cfg)


def test_best_per_window_is_the_hand_choice(panel):
    cfg = TrainConfig(rank=2, epochs=6, learning_rate=1e-2)
    runs = [
        run_estimator(
            panel, make_estimator(dataclasses.replace(cfg, estimator=k), panel, SPEC, epochs=6), SPEC
        )
        for k in ("paper", "map")
    ]
    r_hat, choice = best_per_window(runs, panel)
    years = np.asarray(panel.year)[runs[0].test_rows]
    for w, win in enumerate(runs[0].windows):
        scores = [float(valid_r2(r)[w]) for r in runs]
        assert choice[w] == int(np.argmax(scores))
        rows = years == win.test
        np.testing.assert_array_equal(r_hat[rows], runs[choice[w]].predictions["r_hat"].to_numpy()[rows])
    with pytest.raises(ConfigError, match="no runs"):
        best_per_window([], panel)


def test_tuned_fapm_is_the_best_of_a_loop_of_single_fits(x64):
    """One vmapped program over the grid = a loop of FAPM fits, one per setting, with the
    setting of least validation SSE kept."""
    rng = np.random.default_rng(0)
    N, n = 600, 4
    X = rng.normal(size=(N, n))
    y = 0.3 * X[:, 0] + 0.4 * X[:, 1] * X[:, 2] + rng.normal(size=N)
    train = (np.arange(N) < 400).astype(np.float64)
    valid = 1.0 - train
    grid = tuned_grid(
        l1_w=(0.01, 0.1),
        group_v=(0.01,),
        l1_d=(0.05,),
        unpenalised=False,
        linear=(),
        null=False,
        no_self=False,
    )
    cfg = dataclasses.replace(TunedFAPM().config, epochs=40)
    tuned = TunedFAPM(config=cfg, penalties=grid)
    key = jax.random.key(3)
    args = (jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), jnp.asarray(valid))
    fit = tuned.fit(*args, key)
    sses, preds = [], []
    for pen in grid:
        one = FAPM(config=dataclasses.replace(cfg, **dict(pen)))
        p = one.fit(*args, key).params
        preds.append(np.asarray(predict(p, args[0])))
        sses.append(float(masked_sse(args[1], predict(p, args[0]), args[3])))
    np.testing.assert_allclose(np.asarray(fit.valid_sse), sses, rtol=1e-9)
    assert int(fit.choice) == int(np.argmin(sses))
    np.testing.assert_allclose(
        np.asarray(predict(fit.params, args[0])), preds[int(np.argmin(sses))], rtol=1e-9
    )


def test_linear_path_and_null_candidates(x64):
    """``tuned_grid(linear=…, null=True)``: the priced-out settings are a lasso without
    interactions (V = 0, d = 0, scikit-learn's lasso within Adam's last steps) and the
    intercept-only model, which forecasts the training mean."""
    from sklearn.linear_model import Lasso

    from fapm_jax.baselines.fapm import OFF
    from fapm_jax.core.fit import fit_window

    grid = tuned_grid(l1_w=(), unpenalised=False, linear=(0.1,), null=True)
    assert grid == (
        (("l1_w", 0.1), ("group_v", OFF), ("l1_d", OFF)),
        (("l1_w", OFF), ("group_v", OFF), ("l1_d", OFF)),
    )
    assert len(tuned_grid(linear=(0.1, 1.0), null=True)) == len(tuned_grid(linear=(), null=False)) + 3
    assert len(tuned_grid()) == 43 and tuned_grid()[-1] == grid[-1]
    rng = np.random.default_rng(5)
    N, n = 600, 5
    X = rng.normal(size=(N, n))
    y = 0.2 + X @ np.array([0.8, -0.5, 0.0, 0.0, 0.3]) + 0.6 * X[:, 0] * X[:, 1] + rng.normal(size=N)
    train = (np.arange(N) < 400).astype(np.float64)
    cfg = dataclasses.replace(TunedFAPM().config, epochs=3000, learning_rate=3e-3)
    tr = train > 0
    lasso, null = (
        fit_window(X, y, tr, ~tr, dataclasses.replace(cfg, **dict(g))).state.params  # last iterates
        for g in grid
    )
    p = lasso
    assert np.all(np.asarray(p.V) == 0) and np.all(np.asarray(p.d) == 0)
    ref = Lasso(alpha=0.1 * float(np.sum(y[tr] ** 2)) / (2 * tr.sum()), tol=1e-12, max_iter=100_000)
    ref.fit(X[tr], y[tr])
    np.testing.assert_allclose(np.asarray(p.w), ref.coef_, atol=1e-2)
    q = null
    assert np.all(np.asarray(q.w) == 0) and np.all(np.asarray(q.V) == 0)
    assert float(q.w0) == pytest.approx(float(y[tr].mean()), abs=1e-3)


def test_no_self_candidates_are_the_papers_fapm_penalised(x64):
    """``tuned_grid(no_self=True)`` adds each ``l1_w × group_v`` setting with ``d`` priced out:
    its fit has ``d = 0`` and forecasts as FAPM without self-interactions (the paper's model)
    under the same two penalties, fitted on its own."""
    from fapm_jax.baselines.fapm import OFF
    from fapm_jax.core.fit import fit_window

    full = tuned_grid(l1_w=(0.01,), group_v=(0.002,), l1_d=(0.01,), unpenalised=False, linear=(), null=False)
    assert full == (
        (("l1_w", 0.01), ("group_v", 0.002), ("l1_d", 0.01)),
        (("l1_w", 0.01), ("group_v", 0.002), ("l1_d", OFF)),
    )
    assert len(tuned_grid(no_self=False)) == len(tuned_grid()) - len(TUNED_L1_W) * len(TUNED_GROUP_V)
    assert tuned_grid(l1_d=()) == tuned_grid(l1_d=(), no_self=False)
    rng = np.random.default_rng(7)
    N, n = 600, 5
    X = rng.normal(size=(N, n))
    y = X @ np.array([0.5, -0.4, 0.0, 0.0, 0.2]) + 0.5 * X[:, 0] * X[:, 1] + 0.3 * X[:, 2] ** 2
    y = y + rng.normal(size=N)
    tr = np.arange(N) < 400
    cfg = dataclasses.replace(TunedFAPM().config, epochs=200, rank=2)
    p = fit_window(X, y, tr, ~tr, dataclasses.replace(cfg, **dict(full[1]))).state.params
    assert np.all(np.asarray(p.d) == 0)
    plain = dataclasses.replace(cfg, self_interactions=False, l1_w=0.01, group_v=0.002)
    q = fit_window(X, y, tr, ~tr, plain).state.params
    assert q.d is None and np.any(np.asarray(p.V) != 0)
    np.testing.assert_allclose(np.asarray(predict(p, X)), np.asarray(predict(q, X)), rtol=1e-6, atol=1e-9)
    # the priced-out square matters: with d free, the fit differs
    r = fit_window(X, y, tr, ~tr, dataclasses.replace(cfg, **dict(full[0]))).state.params
    assert np.max(np.abs(np.asarray(predict(r, X)) - np.asarray(predict(q, X)))) > 1e-2


def test_gibbs_run_with_month_slopes_samples_that_design(panel):
    """``run_gibbs(random_slopes=True)`` is :func:`sample_windows` on each window's training ∪
    validation rows with the factor loadings' month slopes and a month intercept
    (:func:`month_slopes`; that ``sample_windows`` equals per-window chains is
    tests/test_gibbs.py), and the slopes change the forecasts."""
    from fapm_jax.core.gibbs import GibbsConfig, sample_windows
    from fapm_jax.core.gibbs_summaries import posterior_predict
    from fapm_jax.data.windows import rolling_windows, window_masks
    from fapm_jax.studies.estimators import factor_groups, month_slopes, run_gibbs

    cfg = GibbsConfig(rank=2, n_sweeps=12, burn_in=6, self_interactions=True)
    gs, gi = run_gibbs(panel, SPEC, cfg, random_slopes=True), run_gibbs(panel, SPEC, cfg)
    train_m, valid_m, test_m = window_masks(panel.year, rolling_windows(SPEC))
    fit = np.asarray(train_m, bool) | np.asarray(valid_m, bool)
    groups = np.unique(factor_groups(panel), return_inverse=True)[1].astype(np.int32)
    X = jnp.asarray(panel.X)
    d = sample_windows(X, jnp.asarray(panel.r), fit, cfg, groups=groups, **month_slopes(panel))
    mean, _ = posterior_predict(d, X)
    win = np.asarray(test_m).argmax(axis=0)[gs.test_rows]
    np.testing.assert_allclose(gs.r_hat, np.asarray(mean)[win, gs.test_rows], rtol=1e-6, atol=1e-9)
    assert np.max(np.abs(gs.r_hat - gi.r_hat)) > 1e-3 * np.std(gi.r_hat)


def test_pooled_selection_is_the_running_mean_choice(panel):
    """``combine="pooled"``: window w takes the setting with the best mean validation R² over
    windows 1..w (a hand computation from the run's own validation R²); window 1 is the
    per-window choice; nothing after window w matters."""
    from fapm_jax.core.config import sweep_grid
    from fapm_jax.studies.rolling import run_rolling

    cfg = TrainConfig(rank=2, epochs=5)
    hyper, _ = sweep_grid(cfg, learning_rates=[1e-3, 1e-2, 3e-2])
    run = run_rolling(panel, cfg, SPEC, hyper=hyper, combine="pooled")
    v = np.asarray(run.result.best_valid_r2, np.float64)
    want = [int(np.argmax(v[:, : w + 1].mean(axis=1))) for w in range(v.shape[1])]
    assert run.setting.tolist() == want
    assert want[0] == int(np.argmax(v[:, 0]))
    with pytest.raises(ConfigError, match="pooled"):
        run.result.select("sometimes")


def test_gibbs_run_forecasts_each_test_row_from_its_own_window(panel):
    """FAPM-Bayes: each test row's forecast is the posterior mean of its own window's draws
    (a per-window loop of sample_window + posterior_predict), and the recovery table's numbers
    are the per-window posterior means and bounds averaged by hand."""
    from fapm_jax.core.gibbs import GibbsConfig, chain_key, sample_window
    from fapm_jax.core.gibbs_summaries import posterior_predict
    from fapm_jax.data.windows import rolling_windows, window_masks
    from fapm_jax.reporting.interaction_sections import posterior_recovery
    from fapm_jax.studies.estimators import factor_groups, month_slopes, run_gibbs

    cfg = GibbsConfig(rank=2, n_sweeps=12, burn_in=6, self_interactions=True)
    g = run_gibbs(panel, SPEC, cfg, use_validation=False)
    train_m, _, test_m = window_masks(panel.year, rolling_windows(SPEC))
    X = jnp.asarray(panel.X)
    groups = np.unique(factor_groups(panel), return_inverse=True)[1].astype(np.int32)
    pos = {row: k for k, row in enumerate(g.test_rows)}
    for w in (0, len(g.windows) - 1):  # the smallest and the largest window
        d = sample_window(
            X, jnp.asarray(panel.r), np.asarray(train_m[w], bool), chain_key(0, w, 0), cfg, groups=groups
        )
        mean, _ = posterior_predict(jax.tree_util.tree_map(lambda a: a[None, None], d), X)
        rows = np.flatnonzero(test_m[w])
        np.testing.assert_allclose(
            g.r_hat[[pos[r] for r in rows]], np.asarray(mean)[0, rows], rtol=1e-4, atol=1e-7
        )
    # level="train-mean": the same sampler on each month's deviations, each window's mean
    # training return added (the same compiled program: only the returns' values change)
    r = np.asarray(panel.r, np.float64)
    dev = r.copy()
    for m in np.unique(panel.month):
        dev[panel.month == m] -= r[panel.month == m].mean()
    gd = run_gibbs(dataclasses.replace(panel, r=dev.astype(np.float32)), SPEC, cfg, use_validation=False)
    gl = run_gibbs(panel, SPEC, cfg, level="train-mean", use_validation=False)
    mu = np.array([r[np.asarray(m, bool)].mean() for m in train_m])
    win = np.asarray(test_m).argmax(axis=0)[g.test_rows]
    np.testing.assert_allclose(gl.r_hat, gd.r_hat + mu[win], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gl.sd, gd.sd, rtol=1e-5)
    with pytest.raises(ConfigError, match="level"):
        run_gibbs(panel, SPEC, cfg, level="market")
    # by default (use_validation) window 0 learns from its training and validation years
    gv = run_gibbs(panel, SPEC, cfg)
    _, valid_m, _ = window_masks(panel.year, rolling_windows(SPEC))
    fit0 = np.asarray(train_m[0], bool) | np.asarray(valid_m[0], bool)
    d = sample_window(X, jnp.asarray(panel.r), fit0, chain_key(0, 0, 0), cfg, groups=groups)
    mean, _ = posterior_predict(jax.tree_util.tree_map(lambda a: a[None, None], d), X)
    rows = np.flatnonzero(test_m[0])
    got = gv.r_hat[[pos[r] for r in rows]]
    np.testing.assert_allclose(got, np.asarray(mean)[0, rows], rtol=1e-4, atol=1e-7)
    # the random-slope design of run_gibbs(random_slopes=True): every row's month, the factor
    # loadings the panel has (or the named factors; an unknown name is one clear error)
    design, names_ = month_slopes(panel), list(panel.feature_names)
    np.testing.assert_array_equal(design["months"], panel.month)
    assert [names_[i] for i in design["slopes"]] == [f for f in ("mvel1", "bm", "mom12m") if f in names_]
    assert [names_[i] for i in month_slopes(panel, names_[2:0:-1])["slopes"]] == names_[2:0:-1]
    with pytest.raises(ConfigError, match="nope"):
        month_slopes(panel, ["nope"])
    _, truth = simulate_panel(
        SimConfig(n_stocks=40, n_chars=8, first_month=199001, last_month=199912, seed=2)
    )
    names = list(panel.feature_names)
    t = posterior_recovery(g.interactions, names, truth)
    (a, b), c = next((k, v) for k, v in truth.interactions.items() if k[0] in names and k[1] in names)
    i, j = names.index(a), names.index(b)
    row = t.filter((pl.col("a") == a) & (pl.col("b") == b)).row(0, named=True)
    assert row["posterior_mean"] == pytest.approx(float(np.mean(g.interactions.B_mean[:, i, j])), rel=1e-6)
    lo, hi = g.interactions.B_lo[:, i, j], g.interactions.B_hi[:, i, j]
    assert row["coverage"] == pytest.approx(float(np.mean((lo <= c) & (c <= hi))))
    # the mean interval is the band of the window mean of Tables 5-6 (the comonotone coupling)
    assert row["ci_low"] == pytest.approx(float(g.averaged.B_lo[i, j]), rel=1e-4, abs=1e-9)
    assert row["ci_high"] == pytest.approx(float(g.averaged.B_hi[i, j]), rel=1e-4, abs=1e-9)
    assert row["true"] == c
    # Tables 5-6 with bands come from the run's window-averaged posterior, and the forecast file
    # holds every test row's posterior mean and sd with its permno and month
    from fapm_jax.reporting.interaction_sections import posterior_tables_section

    sec = posterior_tables_section(g, panel)
    t = sec.tables["posterior_interactions_bands.csv"]
    n = panel.n_features
    assert t.height == n * (n - 1) // 2
    top = t.row(0, named=True)
    i, j = names.index(top["a"]), names.index(top["b"])
    assert top["mean"] == pytest.approx(float(g.averaged.B_mean[i, j]))
    assert abs(top["mean"]) == pytest.approx(float(np.abs(np.triu(g.averaged.B_mean, 1)).max()))
    assert f"{int(t['credible'].sum())} of the {t.height} pairs" in sec.text
    f = sec.arrays["fapm_bayes_forecasts.npz"]
    np.testing.assert_array_equal(f["permno"], panel.permno[g.test_rows])
    np.testing.assert_array_equal(f["sd"], g.sd)
    assert np.all(f["sd"] > 0)


def test_gibbs_run_started_from_each_windows_map_fit(panel, monkeypatch):
    """``run_gibbs(start="map")`` fits a FAPM-MAP ensemble of one member per chain at the
    sampler's rank and starts chain ``c`` of each window at member ``c``'s fit: the same draws
    as passing those fits (``member_params``) in by hand, other draws than the prior start; a
    wrong start is one ConfigError."""
    import fapm_jax.studies.estimators as E
    from fapm_jax.core.gibbs import GibbsConfig

    seen = {}

    def spy(panel, est, spec):  # the MAP fit run_gibbs asks for (fitted here to 20 steps),
        short = dataclasses.replace(est, config=dataclasses.replace(est.config, epochs=20))
        seen["est"], seen["run"] = est, run_estimator(panel, short, spec)  # kept to pass by hand
        return seen["run"]

    monkeypatch.setattr(E, "run_estimator", spy)
    cfg = GibbsConfig(rank=2, n_sweeps=4, burn_in=0, n_chains=2, self_interactions=True)
    g = E.run_gibbs(panel, SPEC, cfg, start="map")
    assert seen["est"].name == "FAPM-MAP-ens" and seen["est"].config.rank == 2
    assert sorted(set(seen["est"].members.tolist())) == [0, 1]  # two members, seeds 0 and 1
    by_hand = E.run_gibbs(panel, SPEC, cfg, start=member_params(seen["run"]))
    np.testing.assert_array_equal(g.r_hat, by_hand.r_hat)
    np.testing.assert_array_equal(g.interactions.B_mean, by_hand.interactions.B_mean)
    assert not np.allclose(g.r_hat, E.run_gibbs(panel, SPEC, cfg).r_hat)
    with pytest.raises(ConfigError, match="start 'ols'"):
        E.run_gibbs(panel, SPEC, cfg, start="ols")
    with pytest.raises(ConfigError, match="rank >= 1"):
        E.run_gibbs(panel, SPEC, GibbsConfig(rank=0), start="map")


def test_a_map_ensemble_is_the_mean_of_single_seed_runs(panel):
    """``members=2``: each member chooses its own setting on validation, as a run at its seed
    alone does, and the forecast is the two runs' mean; its validation R² is the average
    forecast's (a hand recomputation), not its best member's."""
    from fapm_jax.data.windows import rolling_windows, window_masks

    cfg = TrainConfig(rank=2, estimator="map", seed=5)
    ens_est = make_estimator(cfg, panel, SPEC, epochs=8, members=2)
    assert ens_est.name == "FAPM-MAP-ens" and len(ens_est.points) == 2 * len(ROLLING_PENALTIES)
    assert sorted(set(ens_est.members.tolist())) == [5, 6]
    ens = run_estimator(panel, ens_est, SPEC)
    singles = [
        run_estimator(panel, make_estimator(dataclasses.replace(cfg, seed=s), panel, SPEC, epochs=8), SPEC)
        for s in (5, 6)
    ]
    hats = np.stack([s.predictions["r_hat"].to_numpy().astype(np.float64) for s in singles])
    assert np.abs(hats[0] - hats[1]).max() > 1e-4  # the seeds really differ
    np.testing.assert_allclose(ens.predictions["r_hat"].to_numpy(), hats.mean(0), rtol=1e-4, atol=1e-6)
    # each member's setting is the single run's, counted in the ensemble's grid
    G = len(ROLLING_PENALTIES)
    members = member_params(ens)  # [W, M]: member m's chosen model is the seed's own
    for m, s in enumerate(singles):
        np.testing.assert_array_equal(ens.member_settings[m] % G, s.setting)
        np.testing.assert_array_equal(ens.member_settings[m] // G, m)
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a[:, m], b, rtol=1e-4, atol=1e-6), members, s.params
        )
    one = member_params(singles[0])  # one model: its chosen fits, one member
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(a[:, 0], b), one, singles[0].params)
    _, valid_m, _ = window_masks(panel.year, rolling_windows(SPEC))
    X, r = np.asarray(panel.X), np.asarray(panel.r, np.float64)
    for w in range(SPEC.n_windows):
        rows = np.asarray(valid_m[w]) > 0
        f = np.mean(
            [
                np.asarray(predict(jax.tree_util.tree_map(lambda a: a[w], s.params), jnp.asarray(X[rows])))
                for s in singles
            ],
            axis=0,
        )
        want = 1.0 - np.sum((r[rows] - f) ** 2) / np.sum(r[rows] ** 2)
        assert ens.valid_r2[w] == pytest.approx(want, abs=1e-5)
    # "paper" with members is the seed ensemble; a wrong size is one clear error
    paper = make_estimator(dataclasses.replace(cfg, estimator="paper"), panel, SPEC, members=3)
    assert paper.name == "FAPM-ens" and paper.combine == "average"
    assert [p["seed"] for p in paper.points] == [5, 6, 7]
    for bad in (0, 2.5):
        with pytest.raises(ConfigError, match="members"):
            make_estimator(cfg, panel, SPEC, members=bad)


def test_tuned_fapm_members_average_fits_from_folded_keys(x64):
    """``TunedFAPM(members=2)``: member 0 is the single model at ``key``, member 1 the single
    model at ``fold_in(key, 1)``, each with its own choice; the forecast is their mean."""
    rng = np.random.default_rng(1)
    N, n = 500, 4
    X = rng.normal(size=(N, n))
    y = 0.3 * X[:, 0] + 0.4 * X[:, 1] * X[:, 2] + rng.normal(size=N)
    train = (np.arange(N) < 300).astype(np.float64)
    args = (jnp.asarray(X), jnp.asarray(y), jnp.asarray(train), jnp.asarray(1.0 - train))
    grid = tuned_grid(l1_w=(0.01, 0.1), group_v=(0.01,), l1_d=(0.05,), linear=(), null=False, no_self=False)
    one = TunedFAPM(config=dataclasses.replace(TunedFAPM().config, epochs=30), penalties=grid)
    ens = dataclasses.replace(one, members=2)
    key = jax.random.key(4)
    fit = ens.fit(*args, key)
    assert fit.valid_sse.shape == (2, len(grid)) and fit.params.V.shape[0] == 2
    singles = [one.fit(*args, k) for k in (key, jax.random.fold_in(key, 1))]
    hats = [np.asarray(one.predict(f.params, args[0])) for f in singles]
    assert np.abs(hats[0] - hats[1]).max() > 1e-4
    for m, f in enumerate(singles):
        assert int(fit.choice[m]) == int(f.choice)
        np.testing.assert_allclose(np.asarray(fit.valid_sse[m]), np.asarray(f.valid_sse), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(ens.predict(fit.params, args[0])), np.mean(hats, 0), rtol=1e-9)
    # the size is in the repr, the fingerprint of saved simulation cells
    assert "members=2" in repr(ens) and "members=1" in repr(one)
