"""The entry point ``fit_windows`` (fapm_jax.core.fit): what recompiles and what does not, and
the equal chunks of epochs it runs."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from helpers import count_compiles

from fapm_jax.core.config import TrainConfig, sweep_grid
from fapm_jax.core.errors import ConfigError
from fapm_jax.core.fit import EPOCHS_PER_CALL, fit_windows, static_config

# Unusual sizes, so that no other test has compiled these programs before.
BASE = TrainConfig(rank=3, epochs=7, learning_rate=2e-3, init_scale=0.02, seed=5, chunk_rows=1500)
VALUES = [
    dict(learning_rate=5e-3),
    dict(init_scale=0.05),
    dict(seed=11),
    dict(epochs=3),
    dict(epochs=EPOCHS_PER_CALL + 4),  # two calls of the same program, the second mostly skipped
    dict(learning_rate=1e-2, init_scale=0.0, seed=2, epochs=12),
]


@pytest.mark.parametrize("method", ["rows", "moments"])
def test_values_compile_nothing(synth, method):
    """Changing only the learning rate, init scale, seed or number of epochs compiles nothing:
    the first three travel as arrays (``Hyper``), the epochs as a loop bound."""
    tm, vm = synth.train[:, :], synth.valid[:, :]
    X, r = synth.X[:, :4], synth.r
    fit_windows(X, r, tm, vm, BASE, method=method)
    for change in VALUES:
        cfg = dataclasses.replace(BASE, **change)
        with jax.log_compiles(True), count_compiles() as n:
            res = fit_windows(X, r, tm, vm, cfg, method=method)
        assert n() == 0, (method, change)
        assert res.valid_r2.shape[-1] == cfg.epochs
        # every epoch of the run is logged, none past it
        assert not np.isnan(np.asarray(res.valid_r2)).any()
    # the structure does recompile: the counter can fail
    with jax.log_compiles(True), count_compiles() as n:
        fit_windows(X, r, tm, vm, dataclasses.replace(BASE, rank=2), method=method)
    assert n() > 0


def test_static_config_keeps_structure_only():
    cfg = TrainConfig(
        rank=5, learning_rate=0.3, init_scale=0.2, seed=9, epochs=3, loss="huber", batch_size=64
    )
    s = static_config(cfg)
    assert (s.rank, s.loss, s.batch_size) == (5, "huber", 64)
    assert s == static_config(dataclasses.replace(cfg, learning_rate=0.1, init_scale=0.0, seed=1, epochs=50))


@pytest.mark.parametrize("per_call", [None, 2, 4, 25])
def test_chunks_of_equal_length_give_the_one_call_result(synth, per_call):
    """25 epochs in calls of 2 (13 calls, the last skipping one epoch) or 4 equal the default
    single call: same models, best epochs and R² paths, one compiled program per call length."""
    cfg = dataclasses.replace(BASE, epochs=25)
    X, r = synth.X[:, :4], synth.r
    ref = fit_windows(X, r, synth.train, synth.valid, cfg, epochs_per_call=25)
    with jax.log_compiles(True), count_compiles() as n:
        got = fit_windows(X, r, synth.train, synth.valid, cfg, epochs_per_call=per_call)
    assert n() == (0 if per_call in (None, 25) else 1)  # one program per call length
    np.testing.assert_array_equal(got.best_epoch, ref.best_epoch)
    np.testing.assert_allclose(got.valid_r2, ref.valid_r2, rtol=1e-6, atol=1e-7)
    for a, b in zip(jax.tree_util.tree_leaves(got.params), jax.tree_util.tree_leaves(ref.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", ["rows", "moments"])
def test_settings_batch_trains_the_same_models_a_few_settings_at_a_time(synth, x64, method):
    """``TrainConfig.settings_batch`` (the memory budget of a sweep): 7 settings trained 3 at a
    time (two groups and a remainder of one) give the models, best epochs and R² paths of all 7
    side by side (float64, rtol 1e-10), the moment trainer's converged candidates included; a
    new batch size is a new program, new values in the same batches compile nothing; a batch
    that is not a positive integer is one ConfigError."""
    cfg = dataclasses.replace(BASE, epochs=6, self_interactions=True)
    X, r = np.asarray(synth.X[:, :4], np.float64), np.asarray(synth.r, np.float64)
    pens = [{}, {"l1_w": 1e-3}, {"group_v": 1e-3}, {"l1_d": 1e-3}, {"l2_v": 1e-2}, {"l1_w": 1e-2}, {}]
    hyper, _ = sweep_grid(cfg, penalties=pens, solve_steps=5 if method == "moments" else None)
    hyper = hyper._replace(seed=np.arange(7))  # every setting its own V
    ref = fit_windows(X, r, synth.train, synth.valid, cfg, hyper=hyper, method=method)
    batched = dataclasses.replace(cfg, settings_batch=3)
    got = fit_windows(X, r, synth.train, synth.valid, batched, hyper=hyper, method=method)
    np.testing.assert_array_equal(got.best_epoch, ref.best_epoch)
    np.testing.assert_allclose(got.valid_r2, ref.valid_r2, rtol=1e-10, atol=1e-12)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), got.params, ref.params
    )
    assert batched != cfg and repr(batched) == repr(cfg)  # its own program; saved results stay valid
    new_values = hyper._replace(seed=np.arange(7) + 10)
    with jax.log_compiles(True), count_compiles() as n:
        fit_windows(X, r, synth.train, synth.valid, batched, hyper=new_values, method=method)
    assert n() == 0
    for bad in (0, 2.5):
        with pytest.raises(ConfigError, match="settings_batch"):
            dataclasses.replace(cfg, settings_batch=bad)
