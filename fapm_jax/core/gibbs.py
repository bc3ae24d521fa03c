"""Bayesian FAPM by Gibbs sampling: the MCMC factorization machine of Rendle (2012),
"Factorization Machines with libFM", section 4.3 (also myFM's ``MyFMGibbsRegressor``).

Model (Rendle 2012, Eq. 25–27): ``y ~ N(ŷ(x), 1/α)`` with ``ŷ`` the FAPM of
:func:`~fapm_jax.core.model.predict`; priors ``w0 ~ N(μ0_w0, 1/λ0)`` (flat for ``λ0 = 0``),
``w_i ~ N(μ_w,g, 1/λ_w,g)``, ``v_if ~ N(μ_f,g, 1/λ_f,g)`` and ``d_i ~ N(μ_d,g, 1/λ_d,g)`` with
one set of hyperparameters per factor group ``g``; hyperpriors ``α ~ Gamma(α0/2, β0/2)``,
``λ ~ Gamma(α_λ/2, β_λ/2)``, ``μ ~ N(μ0, 1/(γ0 λ))`` (libFM's shape/rate convention).

Every parameter ``θ`` enters ``ŷ`` linearly, ``ŷ = g_θ + θ h_θ`` (Eq. 8–10), so its full
conditional is Normal with precision ``α Σ h² + λ`` and mean
``(α Σ h (y − g) + λ μ) / precision`` (Eq. 32–33); one sweep draws ``α``, ``w0``, the
hyperparameters and every ``w_i`` and ``d_i`` in turn from these conditionals, then each latent
vector ``v_i`` as one block — ``ŷ`` is linear in ``v_i`` given the other vectors, with design
``x_i q⁽⁻ⁱ⁾``, so its exact conditional is ``k``-variate normal (a ``k × k`` Cholesky) — using
the residuals ``e = y − ŷ`` and ``Q = X V`` (Eq. 11–14) so that one draw costs ``O(N k²)``. The
same posterior as Rendle's coordinate-wise sweep, in ``n`` steps instead of ``n k`` (fewer, wider
steps). A window is a 0/1 row mask over the shared panel: its rows are gathered and the empty
slots zeroed, so they contribute nothing (not even a NaN). All windows × chains run in one
compiled program (:func:`sample_windows`: chains vmapped, windows vmapped on an accelerator
and in a ``lax.map`` on a CPU, ``lax.scan`` over sweeps). Optionally the likelihood has
month-specific random slopes on chosen factors (:mod:`~fapm_jax.core.random_slopes`). By
default (``collapsed``) every FAPM parameter is then drawn with the slopes integrated out — its
conditional under each month's marginal covariance ``I/α + Z_t Λ_u⁻¹ Z_tᵀ`` — and the slopes
after the latent vectors, given the parameters: a partially collapsed Gibbs sampler (van Dyk
and Park 2008, "Partially collapsed Gibbs samplers"), whose steps that condition on the slopes
(``α``, ``λ_u``) come after the slopes' draw and before the collapsed steps.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .errors import ConfigError
from .gibbs_conditionals import Likelihood, draw_block, draw_hyper, draw_scalar
from .gibbs_inputs import check_data, check_months, check_start, degenerate, window_size
from .masked import compact_rows
from .model import FAPMParams, predict
from .random_slopes import (
    MonthDesign,
    draw_slope_precision,
    draw_slopes,
    marginal_inverse,
    month_design,
    month_sums,
    slope_effect,
)

#: The scale, relative to ``init_scale``, at which a degenerate start's zero latent vectors are
#: drawn (:func:`_init`): small beside a MAP fit's vectors (singular values 0.05–0.23 on the
#: embedded default), and far above √eps of float32, so that no block's design loses a rank.
RESTART_SCALE = 0.1


@dataclasses.dataclass(frozen=True)
class GibbsConfig:
    """Options of the Gibbs sampler; defaults as libFM/myFM (``α0 = β0 = γ0 = 1``, init sd 0.1).

    Attributes:
        rank: ``k`` (0 allowed: Bayesian linear regression).
        n_sweeps: total sweeps per chain, burn-in included (myFM's ``n_iter``).
        burn_in: sweeps discarded before the first kept draw.
        thin: keep every ``thin``-th sweep after burn-in; ``(n_sweeps − burn_in) // thin`` draws.
        n_chains: independent chains per window.
        seed: root of every draw; same seed, same draws.
        init_scale: sd of the normal start of ``V`` (``w0``, ``w``, ``d`` start at 0).
        alpha_0, beta_0: the noise-precision hyperprior ``α ~ Gamma(α0/2, β0/2)``.
        alpha_lambda, beta_lambda: the prior-precision hyperprior ``λ ~ Gamma(α_λ/2, β_λ/2)``.
        gamma_0, mu_0: the prior-mean hyperprior ``μ ~ N(μ0, 1/(γ0 λ))``.
        w0_prec, w0_mean: the prior ``w0 ~ N(w0_mean, 1/w0_prec)``; ``w0_prec = 0`` is flat
            (myFM's ``reg_0``).
        self_interactions: sample ``d`` (``x_i²`` weights) too.
        fixed_alpha: a known noise precision ``α`` (not sampled).
        fixed_prec: a known prior precision of ``w``, ``V`` and ``d`` with ``μ = 0`` (not sampled).
        fixed_slope_prec: a known prior precision ``λ_u`` of the month random slopes (not
            sampled; used only with ``months`` and ``slopes``).
        collapsed: with month random slopes, draw the FAPM parameters with the slopes
            integrated out (exact conditionals under the months' marginal covariance; mixes
            where the slopes are well determined by each month's stocks); ``False``: given the
            current slopes (the plain sweep, which mixes slowly there).
    """

    rank: int = 4
    n_sweeps: int = 200
    burn_in: int = 100
    thin: int = 1
    n_chains: int = 1
    seed: int = 0
    init_scale: float = 0.1
    alpha_0: float = 1.0
    beta_0: float = 1.0
    alpha_lambda: float = 1.0
    beta_lambda: float = 1.0
    gamma_0: float = 1.0
    mu_0: float = 0.0
    w0_prec: float = 1.0
    w0_mean: float = 0.0
    self_interactions: bool = False
    fixed_alpha: float | None = None
    fixed_prec: float | None = None
    fixed_slope_prec: float | None = None
    collapsed: bool = True

    def __post_init__(self):
        def bad(name, why):
            raise ConfigError(f"GibbsConfig.{name}={getattr(self, name)!r}: {why}")

        for name in ("rank", "burn_in"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                bad(name, "must be a non-negative integer")
        for name in ("n_sweeps", "thin", "n_chains"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                bad(name, "must be a positive integer")
        if self.n_draws < 1:
            bad("n_sweeps", f"keeps no draw after burn_in={self.burn_in} with thin={self.thin}")
        for name in ("alpha_0", "beta_0", "alpha_lambda", "beta_lambda", "gamma_0"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                bad(name, "must be a positive finite number")
        if not (self.init_scale > 0 and math.isfinite(self.init_scale)):
            bad("init_scale", "must be a positive finite number (V = 0 is a degenerate start)")
        if not (self.w0_prec >= 0 and math.isfinite(self.w0_prec)):
            bad("w0_prec", "must be a non-negative finite number")
        for name in ("mu_0", "w0_mean"):
            if not math.isfinite(getattr(self, name)):
                bad(name, "must be finite")
        for name in ("fixed_alpha", "fixed_prec", "fixed_slope_prec"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                bad(name, "must be None (sampled) or a positive finite number")

    @property
    def n_draws(self) -> int:
        """Kept draws per chain."""
        return (self.n_sweeps - self.burn_in) // self.thin


class GibbsState(NamedTuple):
    """One chain between sweeps: the model and its hyperparameters (``G`` groups), and the
    month random slopes ``u`` with their precisions (``q = 0`` without them)."""

    params: FAPMParams
    alpha: Float[Array, ""]
    lambda_w: Float[Array, " G"]
    mu_w: Float[Array, " G"]
    lambda_V: Float[Array, "G k"]
    mu_V: Float[Array, "G k"]
    lambda_d: Float[Array, " G"]
    mu_d: Float[Array, " G"]
    u: Float[Array, "T q"]
    lambda_u: Float[Array, " q"]


class GibbsDraws(NamedTuple):
    """Kept draws, each leaf with leading axes ``[..., C, K]`` (chains, draws per chain):
    ``[K]`` from :func:`sample_window`, ``[W, C, K]`` from :func:`sample_windows`."""

    params: FAPMParams
    alpha: Float[Array, "... K"]
    lambda_w: Float[Array, "... K G"]
    lambda_V: Float[Array, "... K G k"]
    lambda_u: Float[Array, "... K q"] | None = None


def chain_key(seed: int, window: int, chain: int) -> PRNGKeyArray:
    """The key of one (window, chain): the same in :func:`sample_windows` and a loop."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), window), chain)


def _residuals(params, X, y, m):
    """``e = y − ŷ`` on the training rows, exactly 0 elsewhere."""
    return jnp.where(m, y - predict(params, jnp.where(m[:, None], X, 0.0)), 0.0)


def _sweep(
    state: GibbsState, key, X, XT, y, m, groups, onehot, design: MonthDesign | None, cfg: GibbsConfig
) -> GibbsState:
    """One Gibbs sweep (Rendle 2012, Algorithm 4, with the latent vectors drawn as blocks):
    ``α``, ``w0``, ``(λ_w, μ_w)``, each ``w_i``, ``(λ_d, μ_d)``, each ``d_i``, every
    ``(λ_f, μ_f)``, then each latent vector ``v_i`` from its exact ``k``-variate conditional;
    with a month ``design``, ``λ_u`` after ``α`` and every month's slopes ``u_t`` last (the
    parameters drawn given the slopes or, ``cfg.collapsed``, with them integrated out). ``e``
    is recomputed from the model at the start so rounding cannot drift."""
    p = state.params
    n, k = p.V.shape
    dt = p.w.dtype
    G = onehot.shape[1]
    mf = m.astype(dt)
    # every random number of the sweep at once (one gamma sampler in the program): the gamma
    # shapes are known before the sweep, only the rates depend on the state
    kz, kh, kg = jax.random.split(key, 3)
    z = jax.random.normal(kz, (2 * n + n * k + 1,), dt)
    zw, zd, zV, z0 = z[:n], z[n : 2 * n], z[2 * n : -1].reshape(n, k), z[-1]
    zh = jax.random.normal(kh, (G, k + 2), dt)
    shapes = jnp.concatenate(
        [
            jnp.broadcast_to(
                (cfg.alpha_lambda + jnp.sum(onehot, 0)[:, None] + 1.0) / 2.0, (G, k + 2)
            ).ravel(),
            jnp.atleast_1d((cfg.alpha_0 + jnp.sum(mf)) / 2.0),
        ]
    )
    gam = jax.random.gamma(kg, shapes, dtype=dt)
    gh, ga = gam[:-1].reshape(G, k + 2), gam[-1]
    col = lambda i: XT[i]  # the rows outside the mask are zero in XT (see _run)
    e = _residuals(p, X, y, m)
    eu = e if design is None else e - slope_effect(design, state.u)
    alpha = state.alpha
    if cfg.fixed_alpha is None:  # Eq. 34
        alpha = ga / ((cfg.beta_0 + jnp.dot(eu, eu)) / 2.0)
    u, lam_u = state.u, state.lambda_u
    if design is not None:  # λ_u | u here: a step given u precedes those that integrate it out
        ku, kl = jax.random.split(jax.random.fold_in(key, 7))
        if cfg.fixed_slope_prec is None:
            shape = (cfg.alpha_lambda + jnp.sum(design.used)) / 2.0
            gam_u = jax.random.gamma(kl, jnp.broadcast_to(shape, lam_u.shape).astype(dt), dtype=dt)
            lam_u = draw_slope_precision(gam_u, u, design, cfg.beta_lambda)
    if design is not None and cfg.collapsed:
        lik = Likelihood(alpha, design, marginal_inverse(design, alpha, lam_u))
        r = (e, month_sums(design, e))
    else:
        lik, r = Likelihood(alpha), (eu, None)
    w0, r = draw_scalar(lik, p.w0, mf, r, z0, cfg.w0_prec, cfg.w0_mean)

    hyp = lambda j, th, lam, mu: draw_hyper(gh[:, j], zh[:, j], th, onehot, lam, mu, cfg)
    lam_w, mu_w = hyp(slice(0, 1), p.w[:, None], state.lambda_w[:, None], state.mu_w[:, None])
    lam_w, mu_w = lam_w[:, 0], mu_w[:, 0]

    def linear(i, c, h_of, lam, mu, z):
        theta, r = c
        t, r = draw_scalar(lik, theta[i], h_of(col(i)), r, z[i], lam[groups[i]], mu[groups[i]])
        return theta.at[i].set(t), r

    w, r = jax.lax.fori_loop(0, n, lambda i, c: linear(i, c, lambda x: x, lam_w, mu_w, zw), (p.w, r))
    d, lam_d, mu_d = p.d, state.lambda_d, state.mu_d
    if d is not None:
        lam_d, mu_d = hyp(slice(1, 2), d[:, None], lam_d[:, None], mu_d[:, None])
        lam_d, mu_d = lam_d[:, 0], mu_d[:, 0]
        d, r = jax.lax.fori_loop(0, n, lambda i, c: linear(i, c, lambda x: x * x, lam_d, mu_d, zd), (d, r))

    V, lam_V, mu_V = p.V, state.lambda_V, state.mu_V
    if k > 0:
        lam_V, mu_V = hyp(slice(2, None), V, lam_V, mu_V)

        # Block Gibbs over latent vectors: ŷ is linear in v_i given the other vectors
        # (x_i <v_i, q⁽⁻ⁱ⁾>, q⁽⁻ⁱ⁾ = Σ_{l≠i} v_l x_l, Rendle 2012 Eq. 11–14), so v_i's exact
        # conditional is a k-variate normal: one draw per factor instead of k coordinate draws.
        def feature(i, c):
            V, r, Q = c
            x, v, g = col(i), V[i], groups[i]
            Qm = Q - x[:, None] * v[None, :]
            H = x[:, None] * Qm  # [size, k]
            new, r = draw_block(lik, v, H, r, zV[i], lam_V[g], mu_V[g])
            return V.at[i].set(new), r, Qm + x[:, None] * new[None, :]

        Q = jnp.where(m[:, None], X @ V, 0.0)
        V, r, _ = jax.lax.fori_loop(0, n, feature, (V, r, Q))
    if design is not None:  # the month slopes (their own stream: the other draws stay as without them)
        r_ = r[0] if cfg.collapsed else r[0] + slope_effect(design, u)
        # a month's normals depend on its id only, so months added later change no earlier draw
        zu = jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(ku, t), u.shape[1:], dt))(
            jnp.arange(u.shape[0])
        )
        u = draw_slopes(zu, r_, design, alpha, lam_u)
    params = FAPMParams(w0=w0, w=w, V=V, d=d)
    return GibbsState(params, alpha, lam_w, mu_w, lam_V, mu_V, lam_d, mu_d, u, lam_u)


def _init(key, n, n_groups, dt, cfg: GibbsConfig, T: int = 0, q: int = 0, start=None) -> GibbsState:
    """The start of a chain: ``V ~ N(0, init_scale²)``, everything else 0 (the ``[T, q]`` month
    slopes too), or the FAPM parameters ``start`` as given (e.g. a window's MAP fit, whose
    dropped latent vectors are 0) unless its ``V`` is degenerate (``gibbs_inputs.degenerate``), where
    the zero rows are the default start's draws times :data:`RESTART_SCALE`; ``α = 1``,
    ``λ = 1`` (or the fixed values), ``μ = 0``."""
    V = cfg.init_scale * jax.random.normal(key, (n, cfg.rank), dt)
    if start is None:
        d = jnp.zeros((n,), dt) if cfg.self_interactions else None
        params = FAPMParams(w0=jnp.zeros((), dt), w=jnp.zeros((n,), dt), V=V, d=d)
    else:
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), start)
        redraw = degenerate(params.V) & jnp.all(params.V == 0, axis=1, keepdims=True)
        params = dataclasses.replace(params, V=jnp.where(redraw, RESTART_SCALE * V, params.V))
    alpha = jnp.asarray(cfg.fixed_alpha or 1.0, dt)
    lam, zero = jnp.full((n_groups,), cfg.fixed_prec or 1.0, dt), jnp.zeros((n_groups,), dt)
    lamV, zeroV = (
        jnp.full((n_groups, cfg.rank), cfg.fixed_prec or 1.0, dt),
        jnp.zeros((n_groups, cfg.rank), dt),
    )
    u, lam_u = jnp.zeros((T, q), dt), jnp.full((q,), cfg.fixed_slope_prec or 1.0, dt)
    return GibbsState(params, alpha, lam, zero, lamV, zeroV, lam, zero, u, lam_u)


def _chain(key, X, XT, y, m, groups, design, start, *, n_groups: int, cfg: GibbsConfig) -> GibbsDraws:
    """One chain of one window from ``start`` (``None``: :func:`_init`'s random start): burn-in,
    then ``n_draws`` records ``thin`` sweeps apart."""
    n = X.shape[1]
    onehot = (groups[:, None] == jnp.arange(n_groups)).astype(X.dtype)
    k_init, k_run = jax.random.split(key)
    sweep = lambda s, t: (
        _sweep(s, jax.random.fold_in(k_run, t), X, XT, y, m, groups, onehot, design, cfg),
        None,
    )
    Tq = (0, 0) if design is None else design.gram.shape[:2]
    state, _ = jax.lax.scan(
        sweep, _init(k_init, n, n_groups, X.dtype, cfg, *Tq, start=start), jnp.arange(cfg.burn_in)
    )

    def keep(s, j):
        s, _ = jax.lax.scan(sweep, s, cfg.burn_in + j * cfg.thin + jnp.arange(cfg.thin))
        return s, GibbsDraws(s.params, s.alpha, s.lambda_w, s.lambda_V, s.lambda_u)

    return jax.lax.scan(keep, state, jnp.arange(cfg.n_draws))[1]


def _static(cfg: GibbsConfig) -> GibbsConfig:
    """The configuration as the compiled program sees it: the seed enters through the keys
    and the chain count through their shape, so neither recompiles."""
    return dataclasses.replace(cfg, seed=0, n_chains=1)


@functools.partial(
    jax.jit, static_argnames=("n_groups", "cfg", "size", "vmap_windows", "slopes", "T", "intercept")
)
def _run(
    keys,
    X,
    y,
    masks,
    groups,
    months=None,
    start=None,
    *,
    n_groups: int,
    cfg: GibbsConfig,
    size: int,
    vmap_windows: bool,
    slopes: tuple | None = None,
    T: int = 0,
    intercept: bool = True,
) -> GibbsDraws:
    """All windows × chains. Each window first gathers its training rows into ``size`` slots
    (:func:`~fapm_jax.core.masked.compact_rows`; empty slots stay masked), so a sweep costs
    ``O(size)`` per coordinate instead of ``O(N)``; its chains share the gathered block.

    ``vmap_windows``: the windows side by side (an accelerator's lanes) or one after another in
    a ``lax.map`` (a CPU: a sweep is a few thousand coordinate steps, each a pass over the
    window's rows; one window's vectors stay in cache, thirty side by side do not)."""
    chain = functools.partial(_chain, n_groups=n_groups, cfg=cfg)
    over_chains = jax.vmap(chain, in_axes=(0, None, None, None, None, None, None, 0))
    y = jnp.asarray(y, X.dtype)

    def window(keys_w, m, start_w):
        idx, ok = compact_rows(m, size)
        if slopes is not None:  # month order (sorted month sums), the empty slots last
            order = jnp.argsort(jnp.where(ok, months[idx], T), stable=True)
            idx, ok = idx[order], ok[order]
        Xw = jnp.where(ok[:, None], X[idx], 0.0)  # empty slots are zero once, not per coordinate
        design = None
        if slopes is not None:
            month = jnp.where(ok, months[idx], T - 1)
            design = month_design(Xw, ok, month, slopes, T, intercept)
        return over_chains(keys_w, Xw, Xw.T, y[idx], ok, groups, design, start_w)

    if vmap_windows:
        return jax.vmap(window)(keys, masks, start)
    return jax.lax.map(lambda a: window(*a), (keys, masks, start))


def sample_window(
    X: Float[Array, "N n"],
    y: Float[Array, " N"],
    train_mask: Bool[Array, " N"],
    key: PRNGKeyArray,
    config: GibbsConfig = GibbsConfig(),
    *,
    groups: Int[Array, " n"] | None = None,
    months: Int[Array, " N"] | None = None,
    slopes=None,
    month_intercept: bool = True,
    start: FAPMParams | None = None,
) -> GibbsDraws:
    """One chain of one window (the rows where ``train_mask``); draws ``[K, ...]``. ``groups``:
    a hyperparameter group id per factor (default: one group); ``months``, ``slopes`` and
    ``month_intercept``: as :func:`sample_windows`; ``start``: the chain's first state (one
    window's parameters, no leading axis)."""
    g, n_groups = check_data(X, y, np.asarray(train_mask)[None], groups)
    ids, T, sl = check_months(X, months, slopes, month_intercept)
    if isinstance(start, FAPMParams):
        start = jax.tree_util.tree_map(lambda a: np.asarray(a)[None], start)
    start = check_start(start, 1, np.shape(X)[1], config.rank, config.self_interactions)
    mask = jnp.asarray(train_mask)[None]
    out = _run(
        jnp.reshape(key, (1, 1)),
        X,
        y,
        mask,
        g,
        ids,
        start,
        n_groups=n_groups,
        cfg=_static(config),
        size=window_size(mask),
        vmap_windows=True,
        slopes=sl,
        T=T,
        intercept=bool(month_intercept),
    )
    return jax.tree_util.tree_map(lambda a: a[0, 0], out)


def sample_windows(
    X: Float[Array, "N n"],
    y: Float[Array, " N"],
    train_masks: Bool[Array, "W N"],
    config: GibbsConfig = GibbsConfig(),
    *,
    groups: Int[Array, " n"] | None = None,
    months: Int[Array, " N"] | None = None,
    slopes=None,
    month_intercept: bool = True,
    vmap_windows: bool | None = None,
    start: FAPMParams | None = None,
) -> GibbsDraws:
    """``config.n_chains`` chains of every window over one shared panel in one compiled program
    (``vmap`` over chains; over windows too, or a ``lax.map`` over them: ``vmap_windows``,
    ``None`` = by backend, ``lax.map`` on a CPU); draws ``[W, C, K, ...]``. Chain ``c`` of window
    ``w`` is :func:`sample_window` with :func:`chain_key` ``(config.seed, w, c)``; the draws do
    not depend on ``vmap_windows`` beyond float rounding.

    ``months`` (each row's month label, e.g. ``YYYYMM``) and ``slopes`` (factor indices, may be
    empty): a random intercept (unless ``month_intercept=False``) and random slopes on those
    factors per month in the likelihood (:mod:`~fapm_jax.core.random_slopes`); the draws gain
    ``lambda_u``.

    ``start``: each window's first state, :class:`FAPMParams` with a leading ``[W]`` axis (e.g.
    the windows' MAP fits, ``RollingRun.params``), or each chain's, ``[W, C]`` (e.g. an
    ensemble's members, :func:`~fapm_jax.studies.rolling.member_params`), as given, latent
    vectors the fit set to zero (a group penalty drops whole ``v_i``) included, unless the
    other rows of ``V`` span fewer than ``rank`` dimensions for some ``v_i`` (e.g. ``V = 0``:
    then every block's conditional is degenerate); there the zero rows are drawn per chain,
    ``N(0, (init_scale · RESTART_SCALE)²)``. ``None``: ``V ~ N(0, init_scale²)`` and zeros.
    The start changes only where the chains begin: the burn-in still discards the first
    ``burn_in`` sweeps."""
    g, n_groups = check_data(X, y, train_masks, groups)
    ids, T, sl = check_months(X, months, slopes, month_intercept)
    W, C = np.shape(train_masks)[0], config.n_chains
    start = check_start(start, W, np.shape(X)[1], config.rank, config.self_interactions, C)
    keys = jax.vmap(lambda w: jax.vmap(lambda c: chain_key(config.seed, w, c))(jnp.arange(C)))(jnp.arange(W))
    vm = jax.default_backend() != "cpu" if vmap_windows is None else bool(vmap_windows)
    masks = np.asarray(train_masks)
    run = functools.partial(
        _run,
        X=X,
        y=y,
        groups=g,
        months=ids,
        n_groups=n_groups,
        cfg=_static(config),
        vmap_windows=vm,
        slopes=sl,
        T=T,
        intercept=bool(month_intercept),
    )
    if vm or W < SIZE_BUCKET_MIN_WINDOWS:
        return run(keys, masks=jnp.asarray(masks), start=start, size=window_size(masks))
    # One after another, a window costs its padded size: the smaller half of the windows runs
    # in its own program, padded to its own largest window (expanding windows: about 15% less
    # work than padding all to the largest), at the price of a second compilation.
    counts = masks.sum(axis=1)
    order = np.argsort(counts, kind="stable")
    parts = [order[: W // 2], order[W // 2 :]]
    part = lambda idx: None if start is None else jax.tree_util.tree_map(lambda a: a[idx], start)  # noqa: E731
    outs = [
        run(keys[idx], masks=jnp.asarray(masks[idx]), start=part(idx), size=int(counts[idx].max()))
        for idx in parts
    ]
    back = np.argsort(np.concatenate(parts))
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b])[back], *outs)


#: On a CPU (windows one after another), sample_windows splits at least this many windows into
#: two programs by size.
SIZE_BUCKET_MIN_WINDOWS = 4
