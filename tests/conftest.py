"""Shared fixtures for the core-module tests (model, losses, linear, windows, panel, train).

* The XLA:CPU backend optimisation level of the whole suite (below, ``FAPM_TEST_XLA_OPT``)
  and its four host devices (the mesh of tests/test_sharding.py).
* ``x64``: run one test in float64 through the ``jax.enable_x64`` context manager, so the
  setting is restored afterwards and cannot leak into other tests (the fixture checks this).
* ``synth``: a small synthetic stock panel (float32 ``X``/``r``, years 2000–2006) with the
  masks of a 3-window :class:`~fapm_jax.data.windows.WindowSpec` that it covers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

# The suite is compile-bound: small data, many distinct programs. XLA:CPU's backend (LLVM)
# optimisation at level 0 (and without its expensive passes) compiles about twice as fast and
# changes nothing but float rounding;
# FAPM_TEST_XLA_OPT=3 tests the default optimised code instead (set before JAX starts).
# Four host "devices" on the CPU, so that tests/test_sharding.py can split training over a mesh
# (every other test runs on the first, as it would without the flag).
os.environ["XLA_FLAGS"] = " ".join(
    [
        os.environ.get("XLA_FLAGS", ""),
        f"--xla_backend_optimization_level={os.environ.get('FAPM_TEST_XLA_OPT', '0')}",
        # LLVM's costliest passes off as well: about a tenth less compile time in the suite
        "--xla_llvm_disable_expensive_passes=true",
        "--xla_force_host_platform_device_count=4",
    ]
).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fapm_jax.data.windows import Window, WindowSpec, rolling_windows, window_masks  # noqa: E402


@contextlib.contextmanager
def float64():
    """Enable JAX float64 inside the block only; the previous setting is restored on exit."""
    with jax.enable_x64(True):
        assert jax.config.jax_enable_x64
        yield


@pytest.fixture
def x64():
    was = bool(jax.config.jax_enable_x64)
    with float64():
        yield
    assert bool(jax.config.jax_enable_x64) == was, "x64 mode leaked out of the fixture"


@pytest.fixture
def strict_promotion():
    """JAX's strict dtype promotion for one test: mixing float32 with float64 (or ints with
    floats) is an error instead of a silent widening. The numerics tests of the model, losses,
    OLS and masks use it; the trainers' tests cannot, as optax's Adam mixes its int32 step
    count with float64 parameters."""
    with jax.numpy_dtype_promotion("strict"):
        yield


# The small rolling scheme the synthetic panel covers:
#   window 0: train 2000-2001 / valid 2002-2003 / test 2004
#   window 1: train 2000-2002 / valid 2003-2004 / test 2005
#   window 2: train 2000-2003 / valid 2004-2005 / test 2006
SMALL_SPEC = WindowSpec(first_year=2000, valid_years=2, first_test_year=2004, n_windows=3)


@dataclasses.dataclass(frozen=True)
class Synthetic:
    X: np.ndarray  # [N, n] float32, uniform in [-1, 1]
    r: np.ndarray  # [N] float32
    years: np.ndarray  # [N] int, sorted
    spec: WindowSpec
    windows: list[Window]
    train: np.ndarray  # [W, N] bool
    valid: np.ndarray  # [W, N] bool
    test: np.ndarray  # [W, N] bool


def make_synthetic(seed: int = 0, n_rows: int = 2400, n_features: int = 5) -> Synthetic:
    """Returns = small linear signal + one pairwise interaction + noise."""
    rng = np.random.default_rng(seed)
    years = np.sort(rng.integers(2000, 2007, n_rows))
    X = rng.uniform(-1.0, 1.0, (n_rows, n_features))
    r = (
        0.05 * X[:, 0]
        - 0.03 * X[:, 1]
        + 0.15 * X[:, 2] * X[:, 3]
        - 0.08 * X[:, 1] * X[:, 4]
        + 0.1 * rng.standard_normal(n_rows)
    )
    windows = rolling_windows(SMALL_SPEC)
    train, valid, test = window_masks(years, windows)
    return Synthetic(
        X=X.astype(np.float32),
        r=r.astype(np.float32),
        years=years,
        spec=SMALL_SPEC,
        windows=windows,
        train=train,
        valid=valid,
        test=test,
    )


@pytest.fixture(scope="session")
def synth() -> Synthetic:
    return make_synthetic()


@dataclasses.dataclass(frozen=True)
class DefaultRun:
    panel: object  # fapm_jax.Panel
    truth: object  # fapm_jax.SimTruth
    run: object  # fapm_jax.RollingRun


@pytest.fixture(scope="session")
def default_run() -> DefaultRun:
    """FAPM with its default configuration on the embedded default panel (200 stocks × 30
    characteristics + 8 macro, 1957–2016, 30 windows): the models ``fapm run`` fits, trained
    from moments (the same models up to float rounding, tests/test_moments.py; ~15 s instead of
    ~45 s). Shared by the interaction and importance tests, which check the known truth."""
    import fapm_jax as fj

    panel, truth = fj.simulate_panel(fj.SimConfig())
    return DefaultRun(
        panel, truth, fj.run_rolling(panel, fj.TrainConfig(), fj.WindowSpec(), method="moments")
    )
