"""The embedded default data: a simulated GKX-style stock panel with a known truth.

Characteristics follow the Gu, Kelly and Xiu (2020, Internet Appendix A) design: each stock's
latent characteristic is a persistent AR(1), ``c̄_t = ρ_j c̄_{t−1} + N(0, 1 − ρ_j²)`` with
``ρ_j ~ U[0.9, 1]``, and the factor is its monthly cross-sectional rank mapped into
``[−1, 1]`` (``2 rank / (N + 1) − 1``); a fraction of values is "missing" and set to the
cross-sectional median, 0, as GKX do. The eight macro predictors are the REAL Welch–Goyal
series (expanding ranks, without look-ahead: see :mod:`fapm_jax.data.macro`). Stocks leave the
panel at a constant hazard and are replaced by new ones, so identifiers come and go as in CRSP.

Next-month excess returns are ``r = g(x) + e``: ``g`` holds linear effects,
characteristic × characteristic, characteristic × macro and macro × macro interactions and one
squared term (which a plain factorization machine cannot express); ``e`` is a market shock, a
three-factor structure with characteristic betas, and Student-t(5) idiosyncratic noise whose
scale is set so that the oracle's predictive R² (zero benchmark) is ``target_r2``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .gkx_files import gkx_characteristic_names
from .macro import MACRO_NAMES, macro_panel
from .panel import Panel

#: Characteristics every simulated panel carries (the ones the paper's analyses name).
CORE_CHARS: tuple[str, ...] = ("mvel1", "bm", "mom1m", "mom12m", "operprof", "agr")

#: The true expected-return function ``g``: coefficients in monthly return units.
TRUE_LINEAR: dict[str, float] = {
    "mom1m": -0.0060,
    "mom12m": 0.0040,
    "mvel1": -0.0030,
    "bm": 0.0035,
    "operprof": 0.0025,
    "agr": -0.0025,
    "tms": 0.0020,
}
TRUE_INTERACTIONS: dict[tuple[str, str], float] = {
    ("mvel1", "mom12m"): -0.0060,  # momentum is stronger among small stocks
    ("bm", "operprof"): 0.0050,  # characteristic x characteristic
    ("bm", "bm_macro"): 0.0060,  # the value premium moves with aggregate book-to-market
    ("mom1m", "svar"): -0.0050,  # reversal is stronger in volatile markets
    ("ntis", "bm_macro"): 0.0030,  # macro x macro, as the paper's top interaction bm-ntis
}
TRUE_SQUARES: dict[str, float] = {"mom1m": 0.0060}
TRUE_BIAS: float = 0.004


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Size and noise of the simulated panel. Defaults keep ``fapm run`` to a few minutes.

    Attributes:
        n_stocks: stocks alive in each month.
        n_chars: number of characteristics (the :data:`CORE_CHARS` first, then the GKX list).
        first_month, last_month: the forecast origins ``t`` covered, as ``YYYYMM``.
        exit_rate: monthly probability that a stock leaves and a new one takes its place.
        missing_rate: fraction of characteristic values set to the cross-sectional median.
        target_r2: the oracle's expected predictive R² against a zero forecast.
        market_share: share of the noise variance due to a market-wide monthly shock (0 as
            in GKX's design: a common shock is unpredictable and only blurs the comparison).
        factor_share: share of the noise variance due to the three-factor structure
            ``β·v`` with betas the stock's ``mvel1``, ``bm`` and ``mom12m``.
        noise_df: degrees of freedom of the Student-t idiosyncratic noise.
        seed: the random seed; the same seed gives the same panel.
    """

    n_stocks: int = 200
    n_chars: int = 30
    first_month: int = 195701
    last_month: int = 201612
    exit_rate: float = 1.0 / 120.0
    missing_rate: float = 0.05
    target_r2: float = 0.03
    market_share: float = 0.0
    factor_share: float = 0.3
    noise_df: float = 5.0
    seed: int = 0

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"SimConfig.{name}={getattr(self, name)!r}: {why}")

        if self.n_stocks < 10:
            bad("n_stocks", "must be at least 10")
        n_all = len(gkx_characteristic_names())
        if not len(CORE_CHARS) <= self.n_chars <= n_all:
            bad("n_chars", f"must lie in [{len(CORE_CHARS)}, {n_all}]")
        if self.last_month < self.first_month:
            bad("last_month", "must not precede first_month")
        if not 0 <= self.exit_rate < 1:
            bad("exit_rate", "must lie in [0, 1)")
        if not 0 <= self.missing_rate < 1:
            bad("missing_rate", "must lie in [0, 1)")
        if not 0 < self.target_r2 < 1:
            bad("target_r2", "must lie in (0, 1)")
        if not (
            0 <= self.market_share and 0 <= self.factor_share and self.market_share + self.factor_share < 1
        ):
            bad("factor_share", "market_share and factor_share must be >= 0 and sum to less than 1")
        if self.noise_df <= 2:
            bad("noise_df", "must exceed 2 (finite variance)")


@dataclasses.dataclass(frozen=True, eq=False)
class SimTruth:
    """The data-generating process of a simulated panel.

    Attributes:
        bias, linear, interactions, squares: the terms of ``g`` (see module docstring).
        g: ``[N]`` the true conditional expected return of each panel row.
        idio_vol: the calibrated scale of the Student-t noise (its standard deviation).
    """

    bias: float
    linear: dict[str, float]
    interactions: dict[tuple[str, str], float]
    squares: dict[str, float]
    g: np.ndarray
    idio_vol: float

    def linear_weights(self, feature_names) -> np.ndarray:
        """True first-order weights ``w`` aligned with ``feature_names``."""
        return np.array([self.linear.get(f, 0.0) for f in feature_names])

    def interaction_matrix(self, feature_names) -> np.ndarray:
        """True ``B`` aligned with ``feature_names``: symmetric, zero diagonal, ``B_ij`` the
        coefficient of ``x_i x_j`` (the object :func:`fapm_jax.interaction_matrix` estimates)."""
        idx = {f: i for i, f in enumerate(feature_names)}
        B = np.zeros((len(feature_names),) * 2)
        for (a, b), c in self.interactions.items():
            if a in idx and b in idx:
                B[idx[a], idx[b]] = B[idx[b], idx[a]] = c
        return B

    def oracle_r2(self, r: np.ndarray, mask: np.ndarray | None = None) -> float:
        """R² (zero benchmark) of the true ``g`` as the forecast of ``r`` over ``mask``."""
        m = np.ones_like(r, dtype=bool) if mask is None else np.asarray(mask, bool)
        resid = r[m] - self.g[m]
        return float(1.0 - np.sum(resid.astype(np.float64) ** 2) / np.sum(r[m].astype(np.float64) ** 2))


def _months(first: int, last: int) -> np.ndarray:
    start = (first // 100) * 12 + first % 100 - 1
    stop = (last // 100) * 12 + last % 100 - 1
    k = np.arange(start, stop + 1)
    return (k // 12) * 100 + k % 12 + 1


def _cs_rank(values: np.ndarray) -> np.ndarray:
    """GKX's cross-sectional rank map ``2 rank / (N + 1) − 1`` along axis 0 (ranks 1..N)."""
    n = values.shape[0]
    ranks = np.empty_like(values)
    order = np.argsort(values, axis=0, kind="stable")
    np.put_along_axis(ranks, order, np.arange(1, n + 1, dtype=values.dtype)[:, None], axis=0)
    return 2.0 * ranks / (n + 1) - 1.0


def simulate_panel(config: SimConfig = SimConfig()) -> tuple[Panel, SimTruth]:
    """Simulate the panel described by ``config``; return it with its :class:`SimTruth`."""
    rng = np.random.default_rng(config.seed)
    months = _months(config.first_month, config.last_month)
    T, N, P = len(months), config.n_stocks, config.n_chars
    others = [c for c in gkx_characteristic_names() if c not in CORE_CHARS]
    chars = CORE_CHARS + tuple(others[: P - len(CORE_CHARS)])

    macro = macro_panel(int(months[0]), int(months[-1]))
    M = macro.select(list(MACRO_NAMES)).to_numpy().astype(np.float64)  # [T, 8]

    rho = rng.uniform(0.9, 1.0, size=P)
    innov = np.sqrt(1.0 - rho**2)
    latent = rng.standard_normal((N, P))
    ids = np.arange(N, dtype=np.int64)
    next_id = N
    sic_codes = np.arange(1, 75)
    sic_p = 1.0 / np.arange(1, 75) ** 0.8
    sic_of = rng.choice(sic_codes, size=N, p=sic_p / sic_p.sum())

    X_c = np.empty((T, N, P))
    permno = np.empty((T, N), np.int64)
    sic2 = np.empty((T, N), np.int32)
    mktcap = np.empty((T, N))
    size_col = chars.index("mvel1")
    for t in range(T):
        if t > 0:
            latent = rho * latent + innov * rng.standard_normal((N, P))
            leave = rng.random(N) < config.exit_rate
            n_new = int(leave.sum())
            if n_new:
                latent[leave] = rng.standard_normal((n_new, P))
                ids[leave] = np.arange(next_id, next_id + n_new)
                sic_of[leave] = rng.choice(sic_codes, size=n_new, p=sic_p / sic_p.sum())
                next_id += n_new
        mktcap[t] = np.exp(5.0 + 1.8 * latent[:, size_col])  # $ millions
        X_c[t] = _cs_rank(latent)
        permno[t] = 10000 + ids
        sic2[t] = sic_of
    if config.missing_rate > 0:
        X_c[rng.random(X_c.shape) < config.missing_rate] = 0.0  # the cross-sectional median

    feature_names = chars + MACRO_NAMES
    X = np.concatenate([X_c, np.broadcast_to(M[:, None, :], (T, N, len(MACRO_NAMES)))], axis=-1)
    col = {f: X[..., i] for i, f in enumerate(feature_names)}

    g = np.full((T, N), TRUE_BIAS)
    for f, c in TRUE_LINEAR.items():
        g += c * col[f]
    for (a, b), c in TRUE_INTERACTIONS.items():
        g += c * col[a] * col[b]
    for f, c in TRUE_SQUARES.items():
        g += c * col[f] ** 2

    # Noise variance so that E[g²] / E[r²] = target_r2, split into market, factor and
    # idiosyncratic parts; E[β·β] is taken from the sample so the shares hold exactly.
    noise_var = np.mean(g**2) * (1.0 - config.target_r2) / config.target_r2
    betas = X_c[..., [chars.index("mvel1"), chars.index("bm"), chars.index("mom12m")]]
    market_vol = np.sqrt(config.market_share * noise_var)
    factor_vol = np.sqrt(config.factor_share * noise_var / np.mean(np.sum(betas**2, axis=-1)))
    idio_vol = float(np.sqrt((1.0 - config.market_share - config.factor_share) * noise_var))
    common = market_vol * rng.standard_normal(T)[:, None] + np.einsum(
        "tnj,tj->tn", betas, factor_vol * rng.standard_normal((T, 3))
    )
    df = config.noise_df
    eps = idio_vol * rng.standard_t(df, size=(T, N)) / np.sqrt(df / (df - 2.0))
    r = g + common + eps

    order = np.lexsort((permno.ravel(), np.repeat(months, N)))
    panel = Panel(
        X=X.reshape(T * N, -1)[order].astype(np.float32),
        r=r.ravel()[order].astype(np.float32),
        permno=permno.ravel()[order],
        month=np.repeat(months, N)[order].astype(np.int32),
        mktcap=mktcap.ravel()[order].astype(np.float32),
        feature_names=tuple(feature_names),
        macro_names=MACRO_NAMES,
        sic2=sic2.ravel()[order],
        name="simulated",
    )
    truth = SimTruth(
        bias=TRUE_BIAS,
        linear=dict(TRUE_LINEAR),
        interactions=dict(TRUE_INTERACTIONS),
        squares=dict(TRUE_SQUARES),
        g=g.ravel()[order],
        idio_vol=idio_vol,
    )
    return panel, truth
