"""The Gu, Kelly and Xiu (2020) Monte Carlo design (Internet Appendix A).

Data-generating process, exactly as GKX (2020), Internet Appendix A, and the authors' DGP code:

* characteristics ``c[ij,t] = 2/(N+1) · CSrank(c̄[ij,t]) − 1`` (ranks ``1..N``), with the latent
  ``c̄[ij,t] = ρ_j c̄[ij,t−1] + N(0, 1 − ρ_j²)``, ``ρ_j ~ U[0.9, 1]``, ``c̄[ij,1] ~ N(0, 1)``;
* one macro series ``x[t] = 0.95 x[t−1] + N(0, 1 − 0.95²)``, ``x[1] ~ N(0, 1)``;
* covariates ``z[i,t] = (1, x[t]) ⊗ c[i,t]``: ``P = 2·Pc`` columns ``[c, c·x]``;
* returns ``r[i,t+1] = g(z[i,t]) + e[i,t+1]``, ``e[i,t+1] = β[i,t] · v[t+1] + ε[i,t+1]`` with
  ``β[i,t] = (c[i1,t], c[i2,t], c[i3,t])``, ``v ~ N(0, 0.05² I_3)`` and ``ε = 0.05 · t(5)``;
* model (a): ``g = 0.02 c1 + 0.02 c2 + 0.02 c3·x``;
  model (b): ``g = 0.04 c1² + 0.03 c1·c2 + 0.012 sign(c3·x)``;
* ``N = 200`` stocks, ``T = 180`` months, split into three consecutive 60-month blocks
  (training, validation, test). ``Pc = 50`` reuses the first 50 characteristics of the
  ``Pc = 100`` draw: 100 characteristics are always drawn and then sliced, so for a given seed
  the returns, ``g`` and the oracle regressors do not depend on ``Pc``.

In this simulation R² is measured against the TRAINING-sample mean
(:func:`r2_vs_train_mean`), unlike the zero benchmark of the empirical part, and the authors
preprocess by dividing each covariate by its training standard deviation and demeaning ``y`` by
its training mean (:func:`preprocess_gkx_sim`). The oracle (:func:`oracle_r2`) is a pooled OLS
of ``r`` on the three true regressors without intercept; GKX Table A.1 reports 6.22 / 5.52 %
(model a) and 5.86 / 5.40 % (model b) in / out of sample.

Array layout: month-major, ``[T, N, ...]``; row ``t`` of ``z`` pairs with ``r[t]``, the return
of the following month.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

#: Characteristics always drawn; ``Pc = 50`` takes the first 50 of them.
_PC_MAX = 100
#: Volatility of the factor shocks ``v`` and scale of the t(5) idiosyncratic noise.
_SIGMA_V = 0.05
_SIGMA_EPS = 0.05
_T_DOF = 5
_RHO_X = 0.95
#: Length of each of the three consecutive blocks (training, validation, test), in months.
_BLOCK = 60


@dataclasses.dataclass(frozen=True)
class GKXSimConfig:
    """One GKX (2020, Internet Appendix A) Monte Carlo draw.

    ``model`` is ``"a"`` (linear) or ``"b"`` (nonlinear with interactions); ``n_chars`` is
    ``Pc`` (50 or 100); ``n_stocks`` is ``N``; ``n_months`` is ``T`` (the three consecutive
    60-month blocks need ``T = 180``); ``seed`` seeds :func:`numpy.random.default_rng`.
    """

    model: str = "a"
    n_chars: int = 100
    n_stocks: int = 200
    n_months: int = 180
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in ("a", "b"):
            raise ValueError(f"model must be 'a' or 'b', got {self.model!r}")
        if isinstance(self.n_chars, bool) or self.n_chars not in (50, 100):
            raise ValueError(f"n_chars must be 50 or 100, got {self.n_chars!r}")
        if isinstance(self.n_stocks, bool) or not isinstance(self.n_stocks, int) or self.n_stocks < 2:
            raise ValueError(f"n_stocks must be an int >= 2, got {self.n_stocks!r}")
        if self.n_months != 3 * _BLOCK:
            raise ValueError(f"n_months must be {3 * _BLOCK} (three 60-month blocks), got {self.n_months!r}")
        seed_ok = isinstance(self.seed, (int, np.integer)) and not isinstance(self.seed, bool)
        if not seed_ok or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")


class GKXSim(NamedTuple):
    """One simulated panel (GKX 2020, Internet Appendix A); all arrays float64, month-major.

    ``c`` [T, N, Pc] rank characteristics in ``(−1, 1)``; ``x`` [T] macro series;
    ``z`` [T, N, 2·Pc] covariates ``[c, c·x]``; ``r`` [T, N] the return following each ``z`` row;
    ``g`` [T, N] its conditional mean; ``oracle_x`` [T, N, 3] the true regressors (model a:
    ``c1, c2, c3·x``; model b: ``c1², c1·c2, sign(c3·x)``); ``rho`` [Pc] the AR(1) persistences;
    ``train``/``valid``/``test`` the month indices of the three consecutive 60-month blocks.
    """

    c: np.ndarray
    x: np.ndarray
    z: np.ndarray
    r: np.ndarray
    g: np.ndarray
    oracle_x: np.ndarray
    rho: np.ndarray
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    config: GKXSimConfig


class GKXPreprocessed(NamedTuple):
    """The authors' preprocessing (GKX 2020, Internet Appendix A).

    ``z`` = raw covariates divided by ``z_scale`` (each column's training standard deviation,
    pooled over stocks and training months, ``ddof=0``); ``y`` = ``r − y_mean`` (training mean).
    """

    z: np.ndarray
    y: np.ndarray
    z_scale: np.ndarray
    y_mean: float


class OracleR2(NamedTuple):
    """Oracle fit (GKX 2020, Table A.1 "Oracle" row): R² as fractions, vs the training mean."""

    r2_is: float
    r2_oos: float
    coef: np.ndarray


def _true_regressors(c: np.ndarray, x: np.ndarray, model: str) -> np.ndarray:
    c1, c2, c3 = c[..., 0], c[..., 1], c[..., 2]
    xb = x[:, None]
    if model == "a":
        cols = (c1, c2, c3 * xb)
    else:
        cols = (c1**2, c1 * c2, np.sign(c3 * xb))
    return np.stack(cols, axis=-1)


_COEF = {"a": np.array([0.02, 0.02, 0.02]), "b": np.array([0.04, 0.03, 0.012])}


def simulate_gkx(config: GKXSimConfig) -> GKXSim:
    """Draw one panel of the GKX (2020) Internet Appendix A Monte Carlo design.

    Same seed, same data. The random draws are made in a fixed order (``ρ``, the initial and
    innovation draws of ``c̄`` for all 100 characteristics, ``x``, ``v``, ``ε``), so ``Pc = 50``
    is the first 50 characteristics of the ``Pc = 100`` draw and everything else is identical.
    """
    T, N, Pc = config.n_months, config.n_stocks, config.n_chars
    rng = np.random.default_rng(config.seed)

    # Latent characteristics: persistent AR(1) with unit stationary variance.
    rho = rng.uniform(0.9, 1.0, _PC_MAX)
    cbar0 = rng.standard_normal((N, _PC_MAX))
    innov = rng.standard_normal((T - 1, N, _PC_MAX))
    innov *= np.sqrt(1.0 - rho**2)
    cbar = np.empty((T, N, _PC_MAX))
    cbar[0] = cbar0
    for t in range(1, T):
        np.multiply(rho, cbar[t - 1], out=cbar[t])
        cbar[t] += innov[t - 1]

    # Macro series: AR(1) with persistence 0.95, unit stationary variance.
    x0 = rng.standard_normal()
    x_innov = rng.standard_normal(T - 1) * np.sqrt(1.0 - _RHO_X**2)
    x = np.empty(T)
    x[0] = x0
    for t in range(1, T):
        x[t] = _RHO_X * x[t - 1] + x_innov[t - 1]

    # Shocks of the month after each z row: factor shocks v[t+1] and t(5) noise eps[i,t+1].
    v = rng.standard_normal((T, 3)) * _SIGMA_V
    eps = rng.standard_t(_T_DOF, (T, N)) * _SIGMA_EPS

    # Cross-sectional ranks 1..N each month, mapped into (-1, 1).
    # (Sorted along a contiguous last axis, then scattered back: ties have probability zero.)
    order = np.ascontiguousarray(cbar.transpose(0, 2, 1)).argsort(axis=-1)
    ranks = np.empty(order.shape)
    np.put_along_axis(ranks, order, np.arange(1.0, N + 1.0), axis=-1)
    c_all = 2.0 / (N + 1) * ranks.transpose(0, 2, 1) - 1.0
    c = c_all[..., :Pc]
    rho = rho[:Pc]

    z = np.concatenate([c, c * x[:, None, None]], axis=-1)
    oracle_x = _true_regressors(c_all, x, config.model)
    g = oracle_x @ _COEF[config.model]
    beta = c_all[..., :3]
    e = np.einsum("tnk,tk->tn", beta, v) + eps
    r = g + e

    months = np.arange(T)
    return GKXSim(
        c=c,
        x=x,
        z=z,
        r=r,
        g=g,
        oracle_x=oracle_x,
        rho=rho,
        train=months[:_BLOCK],
        valid=months[_BLOCK : 2 * _BLOCK],
        test=months[2 * _BLOCK :],
        config=config,
    )


def preprocess_gkx_sim(sim: GKXSim) -> GKXPreprocessed:
    """The authors' preprocessing (GKX 2020, Internet Appendix A).

    Each covariate is divided by its training standard deviation (pooled over the stocks and
    months of the training block, ``ddof=0``); the return is demeaned by its training mean.
    """
    z_train = sim.z[sim.train].reshape(-1, sim.z.shape[-1])
    z_scale = z_train.std(axis=0)
    if np.any(z_scale == 0):
        raise ValueError("z has a constant column in the training block")
    y_mean = float(sim.r[sim.train].mean())
    return GKXPreprocessed(z=sim.z / z_scale, y=sim.r - y_mean, z_scale=z_scale, y_mean=y_mean)


def r2_vs_train_mean(y: np.ndarray, y_hat: np.ndarray, train_mean: float) -> float:
    """R² against the training mean, ``1 − Σ(y − ŷ)² / Σ(y − ȳ_train)²`` (GKX 2020, IA A).

    The simulation's benchmark, unlike the zero benchmark of the empirical part. Returned as a
    fraction (Table A.1 reports percent).
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    y_hat = np.asarray(y_hat, dtype=np.float64).ravel()
    if y.shape != y_hat.shape:
        raise ValueError(f"y_hat must have the shape of y, got {y_hat.shape} vs {y.shape}")
    return float(1.0 - np.sum((y - y_hat) ** 2) / np.sum((y - train_mean) ** 2))


def oracle_r2(sim: GKXSim) -> OracleR2:
    """The oracle of GKX (2020) Table A.1: pooled OLS of ``r`` on the three true regressors.

    No intercept, fitted on the training block; R² (fractions) in the training block and in the
    test block, both against the training mean of ``r``.
    """
    X_tr = sim.oracle_x[sim.train].reshape(-1, 3)
    y_tr = sim.r[sim.train].ravel()
    coef, *_ = np.linalg.lstsq(X_tr, y_tr, rcond=None)
    mean_tr = float(y_tr.mean())
    X_te = sim.oracle_x[sim.test].reshape(-1, 3)
    y_te = sim.r[sim.test].ravel()
    return OracleR2(
        r2_is=r2_vs_train_mean(y_tr, X_tr @ coef, mean_tr),
        r2_oos=r2_vs_train_mean(y_te, X_te @ coef, mean_tr),
        coef=coef,
    )
