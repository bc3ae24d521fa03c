"""Training over a mesh of devices (fapm_jax/sharding.py) against one device.

The suite runs with four host CPU devices (tests/conftest.py forces them through
``XLA_FLAGS``). Every check is in float64: the row-split trainer adds the same row sums in
another order, so its models equal one device's to float rounding (1e-10 after 12 epochs of
Adam), with the same best epochs; splitting only windows or settings changes nothing at all.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import count_compiles, one_line_error

import fapm_jax as fj
from fapm_jax.core.config import Hyper, TrainConfig, hyper_from_config, sweep_grid
from fapm_jax.core.errors import ConfigError
from fapm_jax.core.fit import fit_windows

CFG = TrainConfig(rank=3, epochs=12, learning_rate=0.01, chunk_rows=256)


def _data(synth, n_rows=None):
    n_rows = n_rows or synth.X.shape[0]
    return (
        synth.X[:n_rows].astype(np.float64),
        synth.r[:n_rows].astype(np.float64),
        synth.train[:, :n_rows],
        synth.valid[:, :n_rows],
    )


def _assert_same(a, b, tol):
    np.testing.assert_array_equal(a.best_epoch, b.best_epoch)
    np.testing.assert_array_equal(a.diverged, b.diverged)
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        assert x.shape == y.shape
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)
    for name in ("best_valid_r2", "linear_valid_r2", "valid_r2", "train_r2"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=tol, atol=tol, err_msg=name)


def test_four_host_devices():
    assert len(jax.devices()) >= 4, "tests/conftest.py should force four host devices"


def test_rows_split_over_four_devices(synth, x64):
    """Data parallel: each device holds a quarter of the rows (2398 rows: padded to 2400 with
    rows outside every mask), sums its rows' loss, gradient and R², and the sums are added
    once per epoch; several chunks per device."""
    X, r, tm, vm = _data(synth, 2398)
    one = fit_windows(X, r, tm, vm, CFG)
    four = fit_windows(X, r, tm, vm, CFG, mesh=fj.make_mesh(rows=4))
    _assert_same(one, four, 1e-10)
    assert (np.asarray(one.best_epoch) > 0).all()  # the V part trained in every window


def test_windows_and_settings_split(synth, x64):
    """Model parallel: 3 settings × 3 windows on a 2 × 2 mesh (both padded to 4, the padding
    dropped), all rows on each device — the same numbers as one device; with
    ``settings_batch=1`` each device trains its block's settings one at a time, the same again."""
    X, r, tm, vm = _data(synth)
    hyper, _ = sweep_grid(CFG, ranks=[2, 3], learning_rates=[0.01, 0.003])
    hyper = jax.tree_util.tree_map(lambda a: a[:3], hyper)
    one = fit_windows(X, r, tm, vm, CFG, hyper=hyper)
    mesh = fit_windows(X, r, tm, vm, CFG, hyper=hyper, mesh=fj.make_mesh(settings=2, windows=2))
    assert mesh.best_valid_r2.shape == (3, 3)
    _assert_same(one, mesh, 1e-12)
    cfg = dataclasses.replace(CFG, settings_batch=1)
    _assert_same(
        one, fit_windows(X, r, tm, vm, cfg, hyper=hyper, mesh=fj.make_mesh(settings=2, windows=2)), 1e-12
    )


def test_mini_batches_with_windows_split(synth, x64):
    """Mini-batch training needs all rows on a device, but windows can still be split: the
    same batches (same keys) and models as one device."""
    X, r, tm, vm = _data(synth)
    cfg = dataclasses.replace(CFG, batch_size=400, epochs=4)
    _assert_same(
        fit_windows(X, r, tm, vm, cfg), fit_windows(X, r, tm, vm, cfg, mesh=fj.make_mesh(windows=4)), 1e-12
    )


def test_all_three_axes_with_factor_masks_and_huber(synth, x64):
    """Settings × windows × rows = 1 × 2 × 2 with per-window factor subsets (FAPM-m's
    ``Hyper.features``), per-setting epoch budgets and the Huber loss, whose threshold is a
    quantile of all shards' residuals."""
    X, r, tm, vm = _data(synth)
    cfg = dataclasses.replace(CFG, loss="huber", huber_quantile=0.9)
    rng = np.random.default_rng(0)
    features = (rng.random((2, 3, X.shape[1])) < 0.7).astype(np.float32)
    features[..., 2:4] = 1  # keep the planted interaction
    h = hyper_from_config(cfg)
    hyper = Hyper(
        learning_rate=jnp.stack([h.learning_rate] * 2),
        init_scale=jnp.stack([h.init_scale] * 2),
        rank_mask=jnp.stack([h.rank_mask] * 2),
        seed=jnp.asarray([0, 1]),
        features=jnp.asarray(features),
        epochs=jnp.asarray([12, 7]),
    )
    one = fit_windows(X, r, tm, vm, cfg, hyper=hyper)
    mesh = fit_windows(X, r, tm, vm, cfg, hyper=hyper, mesh=fj.make_mesh(windows=2, rows=2))
    _assert_same(one, mesh, 1e-10)
    assert np.isnan(np.asarray(mesh.valid_r2)[1, :, 7:]).all()  # the 7-epoch budget held
    V = np.asarray(mesh.params.V)
    assert (V[features == 0] == 0).all()  # dropped factors stay out


def test_checkpointed_chunks_and_no_recompile(synth, x64, tmp_path):
    """``epochs_per_call`` chunks on a mesh give the one-call result; the second run (other
    data, same shapes) compiles nothing."""
    X, r, tm, vm = _data(synth)
    mesh = fj.make_mesh(rows=2, windows=2)
    whole = fit_windows(X, r, tm, vm, CFG, mesh=mesh)
    chunks = fit_windows(X, r, tm, vm, CFG, mesh=mesh, epochs_per_call=4, checkpoint=tmp_path / "ck.npz")
    _assert_same(whole, chunks, 1e-12)
    with jax.log_compiles(True), count_compiles() as n:
        fit_windows(X * 0.5, r, tm, vm, CFG, mesh=mesh, epochs_per_call=4)
    assert n() == 0


def test_bad_mesh_options(synth):
    X, r, tm, vm = synth.X, synth.r, synth.train, synth.valid
    one_line_error(ConfigError, lambda: fj.make_mesh(rows=64), "64 devices", "available")
    one_line_error(ConfigError, lambda: fj.make_mesh(rows=0), "positive integers")
    one_line_error(
        ConfigError,
        lambda: fit_windows(
            X, r, tm, vm, dataclasses.replace(CFG, batch_size=100), mesh=fj.make_mesh(rows=2)
        ),
        "batch_size",
    )
    one_line_error(
        ConfigError,
        lambda: fit_windows(X, r, tm, vm, CFG, mesh=fj.make_mesh(rows=2), method="moments"),
        "method='rows'",
    )
    # Masks of the wrong width are refused before any collective could wait on a missing row.
    one_line_error(
        ConfigError,
        lambda: fit_windows(X, r, tm[:, :60], vm[:, :60], CFG, mesh=fj.make_mesh(rows=2)),
        "60 columns",
    )
    other = jax.sharding.Mesh(np.asarray(jax.devices()[:2]), ("data",))
    one_line_error(ConfigError, lambda: fit_windows(X, r, tm, vm, CFG, mesh=other), "axes must be")


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_non_finite_panel_on_a_mesh(synth, bad):
    """The host-side finiteness check of a panel kept on the host for a mesh names the cell."""
    X = synth.X.copy()
    X[17, 3] = float(bad)
    one_line_error(
        ConfigError,
        lambda: fit_windows(X, synth.r, synth.train, synth.valid, CFG, mesh=fj.make_mesh(rows=2)),
        "row 17, column 3",
    )


def test_two_processes_equal_one_device(tmp_path):
    """``experiments/multihost.py``: two processes joined by ``jax.distributed`` (Gloo
    collectives on the CPU), one device each, the rows split over both, fit the models one
    device fits (float32, 1e-4; same best epochs)."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    script = Path(__file__).parents[1] / "experiments" / "multihost.py"
    run = subprocess.run(
        [
            sys.executable,
            str(script),
            "--coordinator",
            f"localhost:{port}",
            "--epochs",
            "2",
            "--stocks",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "same best epochs: True" in run.stdout
