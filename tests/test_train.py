"""Tests of fapm_jax/train.py: the vmapped trainer against a plain per-window loop, the
validation bookkeeping against numpy recomputations, divergence handling, seeds, sweeps,
compilation caching, option validation and the Huber threshold.

Compilation dominates the runtime, so every training run is a module-scoped fixture and the
configs are chosen so that runs share compiled programs where they can (``TrainConfig`` is a
static argument of the jitted trainers; ``Hyper`` is not).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from fapm_jax.core import rows as train_mod
from fapm_jax.core.config import OPTIMIZERS, Hyper, TrainConfig, hyper_from_config, n_batches_for, sweep_grid
from fapm_jax.core.engine import make_optimizer
from fapm_jax.core.errors import ConfigError
from fapm_jax.core.fit import TrainResult, _check_masks, fit_window, fit_windows
from fapm_jax.core.model import FAPMParams
from fapm_jax.core.moments import window_correlations
from fapm_jax.core.rows import init_windows

W = 3  # windows of the synthetic spec (see conftest)
CFG = TrainConfig(rank=4, learning_rate=1e-2, epochs=20)
# Mini-batch config. It is also the one whose compilations are counted (see the
# recompilation test), so it is deliberately unusual (no other test can have compiled it).
CFG_MB = dataclasses.replace(CFG, batch_size=200, epochs=16, seed=11)
SWEEP = dict(ranks=[2, 4], learning_rates=[1e-2, 3e-2])
# Huber: as CFG but for the loss; quantile 0.9 so that the threshold clips ~10% of residuals.
CFG_H = dataclasses.replace(CFG, loss="huber", huber_quantile=0.9)

# Float32 vmapped-vs-looped tolerance. Both paths run the same float32 operations, but vmap
# batches the matmuls/reductions, so XLA may sum in a different order: each step differs by
# ~1e-7 relative, and Adam (update ≈ lr·sign-like) can carry that over 20 epochs to ~1e-6 on
# parameters of size ~0.01–0.1. We allow 1e-5 absolute on parameters and R².
ATOL32 = 1e-5


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(tree)]


def _to_np_params(params, s, w):
    return (
        float(np.asarray(params.w0)[s, w]),
        np.asarray(params.w, np.float64)[s, w],
        np.asarray(params.V, np.float64)[s, w],
    )


def _np_predict(w0, w, V, X):
    """Independent float64 FAPM: ``w0 + Xw + Σ_{i<j} (VVᵀ)_ij x_i x_j`` via the upper triangle."""
    X = np.asarray(X, np.float64)
    B = np.triu(V @ V.T, k=1)
    return w0 + X @ w + np.einsum("ri,ij,rj->r", X, B, X)


def _np_r2(r, r_hat):
    r = np.asarray(r, np.float64)
    return 1.0 - np.sum((r - r_hat) ** 2) / np.sum(r * r)


# ----------------------------------------------------------------------------- runs (fixtures)


def _fit(synth, config, **kw):
    res = fit_windows(synth.X, synth.r, synth.train, synth.valid, config, **kw)
    return jax.block_until_ready(res)


@pytest.fixture(scope="module")
def full(synth):
    return _fit(synth, CFG)


def _loop(synth, config):
    """The reference: a plain Python loop over windows, one ``fit_window`` call each."""
    return [
        jax.block_until_ready(
            fit_window(synth.X, synth.r, synth.train[w], synth.valid[w], config, window=w, n_windows=W)
        )
        for w in range(W)
    ]


@pytest.fixture(scope="module")
def full_loop(synth):
    return _loop(synth, CFG)


def _counting(fn, counts, name):
    def wrapper(*args, **kwargs):
        counts[name] += 1
        return fn(*args, **kwargs)

    return wrapper


@pytest.fixture(scope="module")
def minibatch_runs(synth):
    """Mini-batch runs with trace counters on the functions the jitted trainers trace."""
    counts = {"init_state": 0, "epoch_fns": 0}
    snaps, progress = [], []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_mod, "init_state", _counting(train_mod.init_state, counts, "init_state"))
        mp.setattr(train_mod, "epoch_fns", _counting(train_mod.epoch_fns, counts, "epoch_fns"))
        first = _fit(synth, CFG_MB)
        snaps.append(dict(counts))
        second = _fit(  # same everything (plus a progress callback, which changes nothing)
            synth,
            CFG_MB,
            progress=lambda done, total, st: progress.append((done, total, int(st.epoch[0, 0]))),
        )
        snaps.append(dict(counts))
        # New values, same shapes/dtypes: r rescaled and the validation masks changed.
        valid2 = synth.valid.copy()
        valid2[:, ::7] = False
        third = jax.block_until_ready(fit_windows(synth.X, 1.5 * synth.r, synth.train, valid2, CFG_MB))
        snaps.append(dict(counts))
    return dict(first=first, second=second, third=third, snaps=snaps, progress=progress)


@pytest.fixture(scope="module")
def minibatch(minibatch_runs):
    return minibatch_runs["first"]


@pytest.fixture(scope="module")
def minibatch_loop(synth):
    nb = n_batches_for(CFG_MB, synth.train)
    return [
        jax.block_until_ready(
            fit_window(
                synth.X,
                synth.r,
                synth.train[w],
                synth.valid[w],
                CFG_MB,
                window=w,
                n_windows=W,
                n_batches=nb,
            )
        )
        for w in range(W)
    ]


@pytest.fixture(scope="module")
def sweep(synth):
    hyper, points = sweep_grid(CFG, **SWEEP)
    return hyper, points, _fit(synth, CFG, hyper=hyper)


LITERAL_POINT = dict(rank=2, learning_rate=3e-2, init_scale=0.01, seed=0)


@pytest.fixture(scope="module")
def singles(synth, sweep, full_loop):
    """Each sweep point run alone — one setting, one window, ``V`` of its own rank, no vmap —
    with the config fields replaced: ``singles[s][w]`` is a :class:`TrainState`.

    To save compilations, only ``LITERAL_POINT`` goes through ``fit_window(…, cfg)``
    literally. The others pass ``hyper=hyper_from_config(cfg)`` — exactly what
    ``fit_window`` builds from ``cfg`` when ``hyper`` is None — with a static config of the
    same rank, so that they reuse a compiled program (``rank`` and ``learning_rate`` reach
    the trainer only through ``Hyper``).
    """
    _, points, _ = sweep
    literal_cfg = dataclasses.replace(CFG, **LITERAL_POINT)
    out = []
    for p in points:
        cfg = dataclasses.replace(CFG, **p)
        if cfg == CFG:
            out.append(full_loop)
            continue
        if cfg == literal_cfg:
            kw = dict(config=literal_cfg)
        else:
            static = literal_cfg if p["rank"] == literal_cfg.rank else CFG
            assert static.rank == cfg.rank
            kw = dict(config=static, hyper=hyper_from_config(cfg))
        out.append(
            [
                jax.block_until_ready(
                    fit_window(synth.X, synth.r, synth.train[w], synth.valid[w], window=w, n_windows=W, **kw)
                )
                for w in range(W)
            ]
        )
    return out


@pytest.fixture(scope="module")
def diverge_lr(synth):
    """The sweep's shapes and config (same compiled program) with a huge learning rate."""
    hyper, points = sweep_grid(CFG, ranks=[2, 4], learning_rates=[1e-2, 1e30])
    return points, _fit(synth, CFG, hyper=hyper)


OUTLIER_YEAR = 2003  # training year of window 2 only; validation year of windows 0 and 1


@pytest.fixture(scope="module")
def outlier(synth):
    """Two factor values of 1e18 in a 2003 row: their interaction ``x_0 x_1 <v_0, v_1>`` (~1e32)
    squared overflows float32 in window 2's training loss. The row is removed from the
    validation masks of windows 0/1, so it is masked out of everything they compute."""
    i = int(np.flatnonzero(synth.years == OUTLIER_YEAR)[0])
    X = synth.X.copy()
    X[i, :2] = 1e18
    valid = synth.valid.copy()
    valid[:, i] = False
    assert synth.train[:, i].tolist() == [False, False, True]
    res = fit_windows(X, synth.r, synth.train, valid, CFG)
    return i, X, valid, jax.block_until_ready(res)


@pytest.fixture(scope="module")
def huber_loop(synth):
    return _loop(synth, CFG_H)


# ----------------------------------------------------------------------------- (a) vmap == loop


def _compare_to_loop(res: TrainResult, loop):
    for w, st in enumerate(loop):
        for name in ("w0", "w", "V"):
            np.testing.assert_allclose(
                np.asarray(getattr(res.params, name))[0, w],
                np.asarray(getattr(st.best_params, name)),
                rtol=0,
                atol=ATOL32,
                err_msg=f"window {w} {name}",
            )
        np.testing.assert_allclose(float(res.best_valid_r2[0, w]), float(st.best_valid_r2), atol=ATOL32)
        assert int(res.best_epoch[0, w]) == int(st.best_epoch), f"window {w}"
        np.testing.assert_allclose(np.asarray(res.valid_r2)[0, w], np.asarray(st.valid_r2), atol=ATOL32)
        assert bool(res.diverged[0, w]) == bool(st.diverged)
    # The parity must be about trained models, not about the OLS start.
    assert (np.asarray(res.best_epoch) > 0).all()


def test_fit_windows_matches_per_window_loop_full_batch(full, full_loop):
    _compare_to_loop(full, full_loop)


def test_fit_windows_matches_per_window_loop_minibatch(minibatch, minibatch_loop, synth):
    assert n_batches_for(CFG_MB, synth.train) > 1
    _compare_to_loop(minibatch, minibatch_loop)


def test_minibatch_differs_from_full_batch(full, minibatch):
    # Mini-batch steps (and seed) differ: trajectories must differ by far more than float32
    # noise (1e-3 on R², vs ATOL32), while the OLS start (no randomness) is identical.
    E = CFG_MB.epochs
    assert np.max(np.abs(np.asarray(full.valid_r2)[..., :E] - np.asarray(minibatch.valid_r2))) > 1e-3
    np.testing.assert_array_equal(np.asarray(full.linear_valid_r2), np.asarray(minibatch.linear_valid_r2))


# ----------------------------------------------------------------------------- (b), (c) bookkeeping


def _all_results(full, minibatch, sweep, diverge_lr):
    return {"full": full, "minibatch": minibatch, "sweep": sweep[2], "diverge_lr": diverge_lr[1]}


def test_best_never_worse_than_linear_start(full, minibatch, sweep, diverge_lr):
    saw_zero = saw_pos = False
    for name, res in _all_results(full, minibatch, sweep, diverge_lr).items():
        best = np.asarray(res.best_valid_r2)
        lin = np.asarray(res.linear_valid_r2)
        assert np.isfinite(best).all() and np.isfinite(lin).all(), name
        assert (best >= lin).all(), name  # exact: the OLS start is the first candidate
        epochs = np.asarray(res.best_epoch)
        V = np.asarray(res.params.V)
        S, Wn = epochs.shape
        for s in range(S):
            for w in range(Wn):
                if epochs[s, w] == 0:
                    saw_zero = True
                    assert (V[s, w] == 0).all(), (name, s, w)
                    assert best[s, w] == lin[s, w], (name, s, w)
                else:
                    saw_pos = True
                    assert np.abs(V[s, w]).max() > 0, (name, s, w)
                    # The kept model is the one recorded at its epoch; no later epoch beats it.
                    traj = np.asarray(res.valid_r2)[s, w]
                    assert traj[epochs[s, w] - 1] == best[s, w], (name, s, w)
                    assert np.nanmax(traj) == best[s, w], (name, s, w)
    assert saw_zero and saw_pos  # both branches were exercised


def test_best_valid_r2_equals_numpy_recomputation(full, minibatch, sweep, synth):
    for res in (full, minibatch, sweep[2]):
        S = np.asarray(res.best_valid_r2).shape[0]
        for s in range(S):
            for w in range(W):
                w0, wv, V = _to_np_params(res.params, s, w)
                vm = synth.valid[w]
                r2 = _np_r2(synth.r[vm], _np_predict(w0, wv, V, synth.X[vm]))
                # float32 sums over ~700 rows vs float64: ~1e-6; 1e-5 abs on R².
                np.testing.assert_allclose(float(res.best_valid_r2[s, w]), r2, atol=1e-5)


def test_linear_start_is_ols_on_training_rows(full, synth):
    for w in range(W):
        tm, vm = synth.train[w], synth.valid[w]
        ols = LinearRegression().fit(synth.X[tm].astype(np.float64), synth.r[tm].astype(np.float64))
        r2 = _np_r2(synth.r[vm], ols.predict(synth.X[vm].astype(np.float64)))
        # float32 OLS (standardized normal equations) vs float64 sklearn: 1e-5 abs on R².
        np.testing.assert_allclose(float(full.linear_valid_r2[0, w]), r2, atol=1e-5)
    # FAPM must beat OLS here: the synthetic returns have strong interactions.
    assert (np.asarray(full.best_valid_r2) > np.asarray(full.linear_valid_r2) + 0.01).all()


def test_train_r2_trajectory_matches_recomputation_at_best_epoch(full, synth):
    for w in range(W):
        e = int(full.best_epoch[0, w])
        w0, wv, V = _to_np_params(full.params, 0, w)
        tm = synth.train[w]
        r2 = _np_r2(synth.r[tm], _np_predict(w0, wv, V, synth.X[tm]))
        np.testing.assert_allclose(float(full.train_r2[0, w, e - 1]), r2, atol=1e-5)  # float32, see above


# ----------------------------------------------------------------------------- (d) divergence


def test_huge_learning_rate_diverges_only_affected_settings(diverge_lr):
    points, res = diverge_lr
    div = np.asarray(res.diverged)
    de = np.asarray(res.diverged_epoch)
    for s, p in enumerate(points):
        if p["learning_rate"] > 1:
            assert div[s].all(), p
            assert (de[s] >= 1).all() and (de[s] <= CFG.epochs).all(), p
            assert (np.asarray(res.best_epoch)[s] == 0).all(), p
            # After divergence the trajectory is NaN, never a bogus finite number.
            for w in range(W):
                assert np.isnan(np.asarray(res.valid_r2)[s, w, de[s, w] - 1 :]).all()
        else:
            assert not div[s].any(), p
            assert (de[s] == -1).all(), p
    for leaf in _leaves(res.params):
        assert np.isfinite(leaf).all()  # kept params are finite everywhere


def test_overflowing_data_diverges_only_the_window_that_trains_on_it(outlier, full):
    i, X, valid, res = outlier
    div = np.asarray(res.diverged)[0]
    assert div.tolist() == [False, False, True]
    assert int(res.diverged_epoch[0, 2]) >= 1
    assert (np.asarray(res.diverged_epoch)[0, :2] == -1).all()
    for leaf in _leaves(res.params):
        assert np.isfinite(leaf).all()
    # Windows 0 and 1 never see the row (masked out everywhere): same compiled program and
    # exact-zero contributions, so they reproduce the clean run (1e-7 abs, i.e. float32 noise).
    for name in ("w0", "w", "V"):
        np.testing.assert_allclose(
            np.asarray(getattr(res.params, name))[0, :2],
            np.asarray(getattr(full.params, name))[0, :2],
            rtol=0,
            atol=1e-7,
        )


def test_overflow_window_kept_model_is_consistent(outlier, synth):
    """Window 2's kept model is a finite candidate whose validation R² is what it claims."""
    i, X, valid, res = outlier
    w0, wv, V = _to_np_params(res.params, 0, 2)
    vm = valid[2]
    r2 = _np_r2(synth.r[vm], _np_predict(w0, wv, V, X[vm]))
    np.testing.assert_allclose(float(res.best_valid_r2[0, 2]), r2, atol=1e-5)  # float32 vs float64


# ----------------------------------------------------------------------------- (e) seeds


def test_same_seed_is_bitwise_reproducible(full, synth, minibatch_runs):
    again = _fit(synth, CFG)
    for a, b in zip(_leaves(full), _leaves(again)):
        np.testing.assert_array_equal(a, b)
    # Mini-batch order is random too, but drawn from the seed.
    for a, b in zip(_leaves(minibatch_runs["first"]), _leaves(minibatch_runs["second"])):
        np.testing.assert_array_equal(a, b)


def test_different_seed_gives_different_V(full, synth):
    other = _fit(
        synth,
        CFG,
        hyper=jax.tree_util.tree_map(lambda a: a[None], hyper_from_config(dataclasses.replace(CFG, seed=1))),
    )
    assert int(other.hyper.seed[0]) == 1
    for w in range(W):
        assert not np.allclose(np.asarray(other.params.V)[0, w], np.asarray(full.params.V)[0, w])
    # Each window draws its own V: the initial states of different windows differ.
    h = jax.tree_util.tree_map(lambda a: a[None], hyper_from_config(CFG))
    st = init_windows(
        jnp.asarray(synth.X),
        jnp.asarray(synth.r),
        jnp.asarray(synth.train, jnp.float32),
        jnp.asarray(synth.valid, jnp.float32),
        h,
        window_correlations(synth.X, synth.r, synth.train),
        config=CFG,
    )
    V0 = np.asarray(st.params.V)[0]
    assert not np.allclose(V0[0], V0[1]) and not np.allclose(V0[1], V0[2])
    # init_scale: the draw has standard deviation ≈ 0.01 (60 values: ±30% is > 3 sigma).
    assert abs(V0.std() / CFG.init_scale - 1) < 0.3


# ----------------------------------------------------------------------------- (f) sweeps


def test_sweep_grid_points_and_hyper():
    hyper, points = sweep_grid(CFG, **SWEEP)
    assert points == [
        dict(rank=k, learning_rate=lr, init_scale=0.01, seed=0, epochs=CFG.epochs)
        for k in SWEEP["ranks"]
        for lr in SWEEP["learning_rates"]
    ]
    assert hyper.epochs is None  # no epoch axis: every setting runs config.epochs
    np.testing.assert_array_equal(
        np.asarray(hyper.rank_mask),
        np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]], np.float32),
    )
    np.testing.assert_array_equal(np.asarray(hyper.learning_rate), np.float32([1e-2, 3e-2, 1e-2, 3e-2]))
    np.testing.assert_array_equal(np.asarray(hyper.seed), [0, 0, 0, 0])
    with pytest.raises(ConfigError, match="ranks"):
        sweep_grid(CFG, ranks=[0, 2])
    with pytest.raises(ConfigError, match="learning_rates"):
        sweep_grid(CFG, learning_rates=[-1.0])
    _, pts = sweep_grid(CFG, init_scales=[0.0], seeds=[3, 4])
    assert [p["seed"] for p in pts] == [3, 4] and all(p["init_scale"] == 0.0 for p in pts)
    with pytest.raises(ConfigError, match="epochs"):
        sweep_grid(CFG, epochs=[0, 3])


def test_epoch_budgets_in_one_program_equal_separate_runs(synth):
    """``epochs=[2, 5]``: one program of 5 epochs in which the first setting stops after 2
    equals a 2-epoch run and a 5-epoch run, window by window."""
    cfg5 = dataclasses.replace(CFG, epochs=5)
    hyper, points = sweep_grid(cfg5, epochs=[2, 5])
    assert [p["epochs"] for p in points] == [2, 5]
    np.testing.assert_array_equal(np.asarray(hyper.epochs), [2, 5])
    res = _fit(synth, cfg5, hyper=hyper)
    for s, e in enumerate((2, 5)):
        alone = _fit(synth, dataclasses.replace(CFG, epochs=e))
        for a, b in zip(jax.tree_util.tree_leaves(res.params), jax.tree_util.tree_leaves(alone.params)):
            # float32, summed in another order by the two programs: ~10 ulps of parameters ≤ 0.1
            np.testing.assert_allclose(np.asarray(a)[s], np.asarray(b)[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(res.best_epoch)[s], np.asarray(alone.best_epoch)[0])
    assert np.all(np.isnan(np.asarray(res.valid_r2)[0, :, 2:]))  # nothing recorded past its budget


def test_sweep_equals_individual_runs(sweep, singles):
    hyper, points, res = sweep
    for s, (p, single) in enumerate(zip(points, singles)):
        k = p["rank"]
        for w, st in enumerate(single):
            V = np.asarray(res.params.V)[s, w]
            assert V.shape[-1] == 4
            np.testing.assert_array_equal(V[:, k:], 0.0)  # padded columns stay exactly zero
            assert np.asarray(st.best_params.V).shape[-1] == k
            assert float(st.opt_state.hyperparams["learning_rate"]) == np.float32(p["learning_rate"])
            # Same float32 ops, batched differently (vmap over settings and windows, padded
            # rank): ATOL32, as for the vmap-vs-loop test.
            np.testing.assert_allclose(V[:, :k], np.asarray(st.best_params.V), atol=ATOL32, err_msg=str(p))
            np.testing.assert_allclose(
                np.asarray(res.params.w)[s, w], np.asarray(st.best_params.w), atol=ATOL32
            )
            np.testing.assert_allclose(float(res.params.w0[s, w]), float(st.best_params.w0), atol=ATOL32)
            np.testing.assert_allclose(float(res.best_valid_r2[s, w]), float(st.best_valid_r2), atol=ATOL32)
            assert int(res.best_epoch[s, w]) == int(st.best_epoch), (p, w)
    # The grid points are genuinely different models.
    b = np.asarray(res.best_valid_r2)
    assert np.min(np.abs(b[0] - b[3])) > 1e-4


def test_select_picks_argmax_per_window(sweep):
    _, _, res = sweep
    chosen, idx = res.select()
    ref = np.argmax(np.asarray(res.best_valid_r2), axis=0)
    np.testing.assert_array_equal(idx, ref)
    for w in range(W):
        np.testing.assert_array_equal(np.asarray(chosen.V)[w], np.asarray(res.params.V)[ref[w], w])
        np.testing.assert_array_equal(np.asarray(chosen.w)[w], np.asarray(res.params.w)[ref[w], w])


def test_select_on_hand_made_result():
    """A result whose best setting differs per window, with a known answer."""
    S, Wn, n, k = 3, 4, 2, 1
    best = np.array([[0.1, 0.5, 0.2, 0.0], [0.3, 0.1, 0.2, -1.0], [0.2, 0.4, 0.9, -0.5]], np.float32)
    tag = np.arange(S * Wn, dtype=np.float32).reshape(S, Wn)  # identifies (s, w) in the params
    params = FAPMParams(
        w0=jnp.asarray(tag),
        w=jnp.asarray(np.repeat(tag[..., None], n, -1)),
        V=jnp.asarray(np.repeat(tag[..., None, None], n, -2).repeat(k, -1)),
    )
    z = jnp.zeros((S, Wn))
    res = TrainResult(
        params=params,
        best_valid_r2=jnp.asarray(best),
        best_epoch=z,
        linear_valid_r2=z,
        diverged=z,
        diverged_epoch=z,
        valid_r2=z,
        train_r2=z,
        hyper=None,
    )
    chosen, idx = res.select()
    assert idx.tolist() == [1, 0, 2, 0]
    np.testing.assert_array_equal(np.asarray(chosen.w0), [tag[1, 0], tag[0, 1], tag[2, 2], tag[0, 3]])


# ----------------------------------------------------------------------------- (g) compilation


def test_no_recompilation_on_repeat_calls(minibatch_runs):
    snaps = minibatch_runs["snaps"]
    # The first call traced each jitted program once (the config is new to this session): the
    # start, and a window's epoch functions in the epochs program and in the finishing pass ...
    assert snaps[0] == {"init_state": 1, "epoch_fns": 2}
    # ... the same call again, and a call with new values of the same shapes, trace nothing.
    assert snaps[1] == snaps[0]
    assert snaps[2] == snaps[0]


def test_progress_callback(minibatch_runs):
    # One chunk of all epochs: called once, after the last epoch, with the live state.
    E = CFG_MB.epochs
    assert minibatch_runs["progress"] == [(E, E, E)]


def test_new_values_same_shapes_give_new_results(minibatch_runs):
    # Guards the no-retrace check: the third call really ran on different data.
    a, c = minibatch_runs["first"], minibatch_runs["third"]
    assert not np.allclose(np.asarray(a.best_valid_r2), np.asarray(c.best_valid_r2))


# ----------------------------------------------------------------------------- (h) validation


@pytest.mark.parametrize(
    "field, value",
    [
        ("rank", 0),
        ("rank", -2),
        ("rank", 2.0),
        ("learning_rate", 0.0),
        ("learning_rate", -1e-3),
        ("learning_rate", math.nan),
        ("learning_rate", math.inf),
        ("epochs", 0),
        ("batch_size", 0),
        ("batch_size", 1.5),
        ("init_scale", -0.1),
        ("init_scale", math.inf),
        ("optimizer", "adamax"),
        ("loss", "mse"),
        ("huber_quantile", 0.3),
        ("huber_quantile", 1.0),
        ("huber_delta", 0.0),
        ("linear_lr_scale", -0.5),
        ("linear_lr_scale", math.inf),
    ],
)
def test_train_config_rejects_bad_option(field, value):
    with pytest.raises(ConfigError, match=rf"TrainConfig\.{field}="):
        TrainConfig(**{field: value})


def test_train_config_accepts_valid_options():
    for opt in OPTIMIZERS:
        assert TrainConfig(optimizer=opt).optimizer == opt
    c = TrainConfig(rank=1, batch_size=1, init_scale=0.0, loss="huber", huber_delta=0.5, huber_quantile=0.5)
    assert c.huber_delta == 0.5
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ConfigError, match="adamax"):
        make_optimizer("adamax")


def test_check_masks_rejects_bad_windows(synth):
    tm, vm = synth.train.copy(), synth.valid.copy()
    _check_masks(tm, vm)  # the good masks pass
    empty = tm.copy()
    empty[1] = False
    with pytest.raises(ConfigError, match=r"window\(s\) \[1\] have no training rows"):
        _check_masks(empty, vm)
    empty = vm.copy()
    empty[0] = False
    empty[2] = False
    with pytest.raises(ConfigError, match=r"window\(s\) \[0, 2\] have no validation rows"):
        _check_masks(tm, empty)
    overlap = vm.copy()
    overlap[2] |= tm[2]
    with pytest.raises(ConfigError, match=r"window\(s\) \[2\] share rows"):
        _check_masks(tm, overlap)
    with pytest.raises(ConfigError, match="must both be"):
        _check_masks(tm, vm[:2])
    with pytest.raises(ConfigError, match="must both be"):
        _check_masks(tm[0], vm[0])
    # fit_windows checks before any compilation.
    empty = tm.copy()
    empty[0] = False
    with pytest.raises(ConfigError, match="no training rows"):
        fit_windows(synth.X, synth.r, empty, vm, CFG)
    # Masks over the wrong rows (e.g. over years instead of stock-months) name both sizes.
    with pytest.raises(ConfigError, match=rf"has 50 columns, but the panel has N = {synth.X.shape[0]} rows"):
        fit_windows(synth.X, synth.r, tm[:, :50], vm[:, :50], CFG)


# ----------------------------------------------------------------------------- (i) Huber


def test_huber_training_runs(huber_loop, full, full_loop):
    for w, st in enumerate(huber_loop):
        assert not bool(st.diverged)
        e = int(st.best_epoch)
        assert e > 0
        assert float(st.valid_r2[e - 1]) == float(st.best_valid_r2)
        # It learns the interactions: well above the OLS start (same OLS as the R² run).
        assert float(st.best_valid_r2) > float(full.linear_valid_r2[0, w]) + 0.01
        # Same seed, learning rate and epochs as the R² run, only the loss differs: the
        # trajectories must differ by far more than float32 noise.
        diff = np.abs(np.asarray(st.valid_r2) - np.asarray(full_loop[w].valid_r2))
        assert diff.max() > 1e-4


def test_huber_delta_is_quantile_of_ols_residuals(huber_loop, synth):
    from fapm_jax.core.linear import fit_ols

    ols32 = jax.jit(fit_ols)
    for w in range(W):
        tm = synth.train[w]
        delta = float(huber_loop[w].huber_delta)
        w0, wv = ols32(jnp.asarray(synth.X), jnp.asarray(synth.r), jnp.asarray(tm, jnp.float32))
        resid = np.abs(
            synth.r[tm] - (float(w0) + synth.X[tm].astype(np.float64) @ np.asarray(wv, np.float64))
        )
        ref = np.quantile(resid, CFG_H.huber_quantile, method="lower")
        # Same float32 OLS start, residuals rounded differently (float32 vs float64): 1e-6 abs.
        np.testing.assert_allclose(delta, ref, atol=1e-6)
        # And against an independent float64 OLS (1e-5 abs: float32 OLS error).
        ols = LinearRegression().fit(synth.X[tm].astype(np.float64), synth.r[tm].astype(np.float64))
        ref_sk = np.quantile(
            np.abs(synth.r[tm] - ols.predict(synth.X[tm].astype(np.float64))),
            CFG_H.huber_quantile,
            method="lower",
        )
        np.testing.assert_allclose(delta, ref_sk, atol=1e-5)
        # A 0.9 quantile clips ~10% of the residuals.
        assert 0.05 < np.mean(resid > delta) < 0.15


# ----------------------------------------------------------------------------- mini-batches


def test_n_batches_for():
    tm = np.zeros((2, 50), bool)
    tm[0, :20] = True
    tm[1, :33] = True
    assert n_batches_for(TrainConfig(batch_size=8), tm) == 5  # ceil(33 / 8)
    assert n_batches_for(TrainConfig(batch_size=100), tm) == 1
    assert n_batches_for(TrainConfig(), tm) == 1


def test_hyper_from_config_pads_rank():
    h = hyper_from_config(TrainConfig(rank=2, learning_rate=0.5, seed=7), max_rank=5)
    assert isinstance(h, Hyper)
    np.testing.assert_array_equal(np.asarray(h.rank_mask), [1, 1, 0, 0, 0])
    assert float(h.learning_rate) == 0.5 and int(h.seed) == 7


def test_fit_windows_rejects_non_finite_data(synth):
    # A NaN in a row that no window trains on would still poison ``mask * resid²``.
    X = np.array(synth.X, copy=True)
    X[7, 2] = np.nan
    with pytest.raises(ConfigError, match="non-finite factor value at row 7, column 2"):
        fit_windows(X, synth.r, synth.train, synth.valid, CFG)
    r = np.array(synth.r, copy=True)
    r[11] = np.inf
    with pytest.raises(ConfigError, match="non-finite return at row 11"):
        fit_windows(synth.X, r, synth.train, synth.valid, CFG)


def test_interrupted_run_resumes_from_checkpoint(synth, tmp_path):
    cfg = dataclasses.replace(CFG, epochs=6)
    ref = fit_windows(synth.X, synth.r, synth.train, synth.valid, cfg, epochs_per_call=2)
    ckpt = tmp_path / "state.npz"

    class Stop(Exception):
        pass

    def stop_after_4(done, total, state):
        if done == 4:
            raise Stop

    with pytest.raises(Stop):
        fit_windows(
            synth.X,
            synth.r,
            synth.train,
            synth.valid,
            cfg,
            epochs_per_call=2,
            checkpoint=ckpt,
            progress=stop_after_4,
        )
    assert ckpt.exists()
    seen = []
    res = fit_windows(
        synth.X,
        synth.r,
        synth.train,
        synth.valid,
        cfg,
        epochs_per_call=2,
        checkpoint=ckpt,
        progress=lambda d, t, s: seen.append(d),
    )
    assert seen == [4, 6]  # resumed after epoch 4, not from scratch
    # Bitwise the same models as the uninterrupted run.
    for a, b in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(res)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not ckpt.exists()  # removed on completion


def test_checkpoint_of_another_run_is_ignored(synth, tmp_path):
    ckpt = tmp_path / "state.npz"
    cfg = dataclasses.replace(CFG, epochs=4)

    def stop(done, total, state):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_windows(
            synth.X, synth.r, synth.train, synth.valid, cfg, epochs_per_call=2, checkpoint=ckpt, progress=stop
        )
    other = dataclasses.replace(cfg, learning_rate=cfg.learning_rate * 2)
    seen = []
    fit_windows(
        synth.X,
        synth.r,
        synth.train,
        synth.valid,
        other,
        epochs_per_call=2,
        checkpoint=ckpt,
        progress=lambda d, t, s: seen.append(d),
    )
    assert seen == [2, 4]  # started from scratch


# ----------------------------------------------------------------------------- precision


def test_reduced_precision_training(synth):
    """``TrainConfig.precision``: TF32 (emulated on a CPU) and bfloat16 GEMMs train the same
    models to within their rounding — best validation R² within 2e-3 of float32's, the
    parameters moved — full batch and mini-batch; the moment trainer refuses them and
    ``method="auto"`` then picks the row trainer."""
    X, r, tm, vm = synth.X, synth.r, synth.train, synth.valid
    base = fit_windows(X, r, tm, vm, CFG, method="rows")
    for precision in ("tf32", "bfloat16"):
        cfg = dataclasses.replace(CFG, precision=precision)
        got = fit_windows(X, r, tm, vm, cfg)  # auto: rows
        np.testing.assert_allclose(np.asarray(got.best_valid_r2), np.asarray(base.best_valid_r2), atol=2e-3)
        assert not np.array_equal(np.asarray(got.params.V), np.asarray(base.params.V))
    mb = fit_windows(X, r, tm, vm, dataclasses.replace(CFG_MB, precision="bfloat16"))
    mb_base = fit_windows(X, r, tm, vm, CFG_MB)
    np.testing.assert_allclose(np.asarray(mb.best_valid_r2), np.asarray(mb_base.best_valid_r2), atol=2e-3)
    with pytest.raises(ConfigError, match="precision='tf32': its moments are float64"):
        fit_windows(X, r, tm, vm, dataclasses.replace(CFG, precision="tf32"), method="moments")
    with pytest.raises(
        ConfigError, match=r"TrainConfig.precision='fp8': must be one of highest, tf32, bfloat16"
    ):
        TrainConfig(precision="fp8")
