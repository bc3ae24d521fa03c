"""The Gibbs sampler of the Bayesian FAPM (fapm_jax.core.gibbs, Rendle 2012 section 4.3):
the analytic Bayesian linear regression posterior at rank 0, row masks, vmap against a loop,
seeds, recovery of a planted interaction, and agreement with myFM's MCMC FM."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from helpers import count_compiles

from fapm_jax.core.errors import ConfigError, DataError
from fapm_jax.core.gibbs import (
    RESTART_SCALE,
    GibbsConfig,
    _init,
    chain_key,
    sample_window,
    sample_windows,
)
from fapm_jax.core.gibbs_inputs import degenerate
from fapm_jax.core.gibbs_summaries import posterior_interactions, posterior_predict
from fapm_jax.core.model import FAPMParams


def _fm_data(rng, N, n, w0=0.2, w=None, planted=((0, 1, 1.0),), noise=0.5):
    """A dense panel from a known FM: linear part plus the planted ``B_ij x_i x_j``."""
    X = rng.normal(size=(N, n))
    w = rng.normal(scale=0.3, size=n) if w is None else np.asarray(w)
    y = w0 + X @ w + noise * rng.normal(size=N)
    for i, j, b in planted:
        y = y + b * X[:, i] * X[:, j]
    return X, y


def _batch_se(draws, n_batches=20):
    """Monte Carlo standard errors of the means of ``draws`` ``[C, K, p]`` by batch means
    (``n_batches`` per chain), and the effective sample sizes they imply."""
    C, K, p = draws.shape
    bm = draws[:, : K - K % n_batches].reshape(C, n_batches, -1, p).mean(axis=2).reshape(-1, p)
    se = bm.std(axis=0, ddof=1) / np.sqrt(bm.shape[0])
    return se, draws.reshape(-1, p).var(axis=0) / se**2


def _assert_gaussian(d, mean, cov, draws_per_chain=2000):
    """The draws of ``(w0, w)`` of window 0 (4 chains × ``draws_per_chain``) against
    ``N(mean, cov)``: the means within 5 Monte Carlo standard errors (batch means), the
    covariances within 5 of their standard errors at the effective sample size ``S_eff``
    (√((Σ_jj Σ_ll + Σ_jl²)/S_eff))."""
    p = mean.size
    draws = np.concatenate([np.asarray(d.params.w0)[0][..., None], np.asarray(d.params.w)[0]], axis=-1)
    assert draws.shape == (4, draws_per_chain, p)
    se, s_eff = _batch_se(draws)
    sd = np.sqrt(np.diag(cov))
    assert (se < 0.05 * sd).all(), "too few effective draws for a meaningful tolerance"
    np.testing.assert_array_less(np.abs(draws.reshape(-1, p).mean(0) - mean), 5 * se)
    emp = np.cov(draws.reshape(-1, p), rowvar=False)
    tol = 5 * np.sqrt((np.outer(sd**2, sd**2) + cov**2) / s_eff.min())
    np.testing.assert_array_less(np.abs(emp - cov), tol)


def test_rank0_equals_bayesian_linear_regression(x64):
    """Rank 0, known α and λ, μ = 0: (w0, w) | y ~ N((αZᵀZ + λI)⁻¹ αZᵀy, (αZᵀZ + λI)⁻¹) with
    Z = [1, X]. 4 chains × 2000 draws (S = 8000); the means must lie within 5 Monte Carlo
    standard errors (batch means, 80 batches of 100 draws), the covariances within 5 of their
    standard errors at the effective sample size ``S_eff`` (√((Σ_jj Σ_ll + Σ_jl²)/S_eff))."""
    rng = np.random.default_rng(1)
    N, n, alpha, lam = 30, 3, 1.0, 10.0  # the prior weighs about a third of the data
    X = rng.normal(size=(N, n))
    X[:, 1] += 0.6 * X[:, 0]  # correlated columns: the coordinate-wise sampler must still be exact
    y = 2.0 + X @ np.array([1.5, -1.0, 0.8]) + rng.normal(size=N) / np.sqrt(alpha)
    Z = np.column_stack([np.ones(N), X])
    cov = np.linalg.inv(alpha * Z.T @ Z + lam * np.eye(n + 1))
    mean = cov @ (alpha * Z.T @ y)

    cfg = GibbsConfig(
        rank=0, n_sweeps=2100, burn_in=100, n_chains=4, fixed_alpha=alpha, fixed_prec=lam, w0_prec=lam
    )
    d = sample_windows(X, y, np.ones((1, N), bool), cfg)
    _assert_gaussian(d, mean, cov)
    np.testing.assert_array_equal(np.asarray(d.alpha), alpha)  # fixed: never sampled


@pytest.mark.parametrize(
    "collapsed, intercept, sweeps", [(True, True, 1100), (True, False, 1100), (False, True, 2100)]
)
def test_month_random_slopes_equal_the_mixed_model_posterior(x64, collapsed, intercept, sweeps):
    """Rank 0, known α, λ and λ_u, a random intercept (or none) and a random slope on factor 0
    per month: ``y_t ~ N(Z̃_t β, I/α + Z_t Λ_u⁻¹ Z_tᵀ)`` marginally, so (w0, w) | y is the
    generalised least squares posterior with precision ``Σ_t Z̃_tᵀ V_t⁻¹ Z̃_t + λI`` (Laird and
    Ware 1982) — for the collapsed sweep (the slopes integrated out of every conditional) and
    the plain one (given the slopes; twice the sweeps: it mixes slower). Tolerances as the
    i.i.d. test above. A month without training rows keeps slopes 0, and a later month added
    outside the mask changes no draw (beyond float rounding)."""
    rng = np.random.default_rng(11)
    T, per, n, alpha, lam, lam_u = 7, 10, 3, 1.0, 10.0, 4.0
    labels = np.array([199001, 199002, 199003, 199005, 199006, 199007, 199008])
    month = np.repeat(labels, per)[rng.permutation(T * per)]  # rows in any order
    N = month.size
    X = rng.normal(size=(N, n))
    Z = np.column_stack([np.ones(N), X[:, 0]])
    u = rng.normal(size=(T, 2)) / np.sqrt(lam_u)
    y = 0.5 + X @ np.array([1.0, -0.5, 0.3]) + np.sum(Z * u[np.searchsorted(labels, month)], axis=1)
    y = y + rng.normal(size=N) / np.sqrt(alpha)
    Z = Z if intercept else Z[:, 1:]  # the model the sampler is told
    mask = month != 199003  # one month without training rows
    Zt = np.column_stack([np.ones(N), X])
    P, b = lam * np.eye(n + 1), np.zeros(n + 1)
    for t in labels[labels != 199003]:
        r = month == t
        Vinv = np.linalg.inv(np.eye(r.sum()) / alpha + Z[r] @ Z[r].T / lam_u)
        P, b = P + Zt[r].T @ Vinv @ Zt[r], b + Zt[r].T @ Vinv @ y[r]
    cov = np.linalg.inv(P)
    mean = cov @ b

    cfg = GibbsConfig(
        rank=0,
        n_sweeps=sweeps,
        burn_in=100,
        n_chains=4,
        fixed_alpha=alpha,
        fixed_prec=lam,
        w0_prec=lam,
        fixed_slope_prec=lam_u,
        collapsed=collapsed,
    )
    kw = dict(months=month, slopes=[0], month_intercept=intercept)
    d = sample_windows(X, y, mask[None], cfg, **kw)
    _assert_gaussian(d, mean, cov, sweeps - 100)
    # the i.i.d. posterior is narrower: the months' slopes are information it counts N times
    iid = np.linalg.inv(alpha * Zt[mask].T @ Zt[mask] + lam * np.eye(n + 1))
    assert np.diag(iid)[1] < 0.8 * cov[1, 1]
    np.testing.assert_array_equal(np.asarray(d.lambda_u), lam_u)  # fixed: never sampled
    if not (collapsed and intercept):
        return
    # a later month outside the mask: same draws (its normals are its own)
    X2, y2 = np.vstack([X, rng.normal(size=(3, n))]), np.concatenate([y, [9.0, 9.0, 9.0]])
    m2 = np.concatenate([month, [199012] * 3])
    cfg2 = GibbsConfig(**{**cfg.__dict__, "n_sweeps": 30, "burn_in": 10, "fixed_slope_prec": None})
    a = sample_windows(X, y, mask[None], cfg2, months=month, slopes=[0])
    b2 = sample_windows(X2, y2, np.concatenate([mask, [False] * 3])[None], cfg2, months=m2, slopes=[0])
    jax.tree_util.tree_map(lambda p, q: np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12), a, b2)
    assert np.all(np.asarray(a.lambda_u) > 0) and not np.allclose(np.asarray(a.lambda_u), 1.0)


def test_collapsed_terms_equal_the_dense_marginal_covariance(x64):
    """The collapsed conditionals' ``Hᵀ Σ⁻¹ H`` and ``Hᵀ Σ⁻¹ r`` (Woodbury, from month sums)
    against the dense inverse of each month's ``I/α + Z_t Λ_u⁻¹ Z_tᵀ``, at rank-2 blocks."""
    import jax.numpy as jnp

    from fapm_jax.core.random_slopes import gls_terms, marginal_inverse, month_design, month_sums

    rng = np.random.default_rng(5)
    T, size, alpha = 4, 23, 2.5
    month = np.sort(rng.integers(0, T - 1, size))  # month T-1 has no rows
    X = rng.normal(size=(size, 3))
    ok = np.ones(size, bool)
    ok[-3:] = False  # empty slots
    month[-3:] = T - 1
    lam_u = np.array([3.0, 0.5, 8.0])
    H, r = rng.normal(size=(size, 2)) * ok[:, None], rng.normal(size=size) * ok
    design = month_design(jnp.asarray(X), jnp.asarray(ok), jnp.asarray(month), (0, 2), T)
    Minv = marginal_inverse(design, alpha, jnp.asarray(lam_u))
    P, c = gls_terms(
        month_sums(design, jnp.asarray(H)), H.T @ H, H.T @ r, month_sums(design, jnp.asarray(r)), Minv, alpha
    )
    Z = np.column_stack([np.ones(size), X[:, [0, 2]]])
    P0, c0 = np.zeros((2, 2)), np.zeros(2)
    for t in range(T):
        s = (month == t) & ok
        if s.any():
            Si = np.linalg.inv(np.eye(s.sum()) / alpha + Z[s] @ np.diag(1 / lam_u) @ Z[s].T)
            P0, c0 = P0 + H[s].T @ Si @ H[s], c0 + H[s].T @ Si @ r[s]
    np.testing.assert_allclose(P, P0, rtol=1e-10)
    np.testing.assert_allclose(c, c0, rtol=1e-10)


def test_masked_rows_contribute_nothing(x64):
    """Rows outside the training mask, even huge or NaN, leave every draw bitwise unchanged; and
    the draws equal those of the training rows alone (up to the order of float sums)."""
    rng = np.random.default_rng(2)
    X, y = _fm_data(rng, 60, 4)
    mask = np.arange(60) % 3 != 0
    cfg = GibbsConfig(rank=2, n_sweeps=20, burn_in=10, self_interactions=True)
    key = chain_key(0, 0, 0)
    base = sample_window(X, y, mask, key, cfg)
    X2, y2 = X.copy(), y.copy()
    X2[~mask] = 1e300
    X2[np.flatnonzero(~mask)[:5], 1] = np.nan
    y2[~mask] = -1e300
    y2[0] = np.nan  # row 0 is outside the mask
    jax.tree_util.tree_map(np.testing.assert_array_equal, base, sample_window(X2, y2, mask, key, cfg))
    alone = sample_window(X[mask], y[mask], np.ones(mask.sum(), bool), key, cfg)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12), base, alone)
    assert np.isfinite(np.asarray(base.params.V)).all()


def test_vmapped_windows_and_chains_equal_loop_and_seeds(x64):
    """``sample_windows`` (windows × chains in one program) equals a loop of ``sample_window``
    with ``chain_key(seed, w, c)``; the same seed gives bitwise the same draws, another seed
    other draws. Three hyperparameter groups; thinning by 2."""
    rng = np.random.default_rng(3)
    X, y = _fm_data(rng, 90, 5)
    rows = np.arange(90)
    masks = np.stack([rows < 40, (rows >= 25) & (rows < 65), rows >= 50])  # 40 rows each: one program
    groups = np.array([0, 0, 1, 1, 2])
    cfg = GibbsConfig(rank=2, n_sweeps=12, burn_in=4, thin=2, n_chains=2, seed=7)
    d = sample_windows(X, y, masks, cfg, groups=groups)
    assert d.params.V.shape == (3, 2, 4, 5, 2) and d.lambda_V.shape == (3, 2, 4, 3, 2)
    for w in range(3):
        for c in range(2):
            one = sample_window(X, y, masks[w], chain_key(7, w, c), cfg, groups=groups)
            jax.tree_util.tree_map(
                lambda a, b: np.testing.assert_allclose(a[w, c], b, rtol=1e-10, atol=1e-12), d, one
            )
    again = sample_windows(X, y, masks, cfg, groups=groups)
    jax.tree_util.tree_map(np.testing.assert_array_equal, d, again)
    other = sample_windows(X, y, masks, GibbsConfig(**{**cfg.__dict__, "seed": 8}), groups=groups)
    assert not np.allclose(np.asarray(d.params.w), np.asarray(other.params.w))
    # the two chains of a window are different chains
    assert not np.allclose(np.asarray(d.params.w)[:, 0], np.asarray(d.params.w)[:, 1])


def _start(rng, W, n, k, d=True):
    """Random per-window FAPM parameters ``[W, ...]`` (a chain's first state)."""
    return FAPMParams(
        w0=rng.normal(size=W),
        w=rng.normal(size=(W, n)),
        V=rng.normal(scale=0.5, size=(W, n, k)),
        d=rng.normal(size=(W, n)) if d else None,
    )


def _start_problem(seed):
    """The panel, windows and sampler of the two start tests below: the same shapes and
    configuration (the seed is not compiled), so that on one worker their start programs are
    compiled once."""
    rng = np.random.default_rng(seed)
    X, y = _fm_data(rng, 120, 4)
    rows = np.arange(120)
    masks = np.stack([rows < 100, rows < 30, (rows >= 20) & (rows < 90), rows >= 70])
    cfg = GibbsConfig(rank=2, n_sweeps=3, burn_in=0, n_chains=2, seed=seed, self_interactions=True)
    return rng, X, y, masks, cfg


@pytest.mark.xdist_group("gibbs_start")  # one worker: the start programs are shared
def test_start_is_where_each_windows_chains_begin(x64):
    """``start``: a zero start equals the default start at ``RESTART_SCALE`` times its scale
    (its zero latent vectors drawn as there) and is finite, a start with one zero ``v_i``
    gives finite draws, and a random start gives other draws than the default start. (That
    chain ``c`` of window ``w`` begins at the start, windows vmapped or in size buckets, is
    the test below: a ``[W]`` start is the ``[W, C]`` start repeated over the chains.)"""
    rng, X, y, masks, cfg = _start_problem(2)
    zero = jax.tree_util.tree_map(np.zeros_like, _start(rng, 4, 4, 2))
    small = sample_windows(X, y, masks, dataclasses.replace(cfg, init_scale=cfg.init_scale * RESTART_SCALE))
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
        small,
        sample_windows(X, y, masks, cfg, start=zero),
    )
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree_util.tree_leaves(small))
    one_zero = _start(rng, 4, 4, 2, d=True)
    one_zero.V[:, 2] = 0.0  # factor 2 dropped in every window; the other three span rank 2
    first = sample_windows(X, y, masks, cfg, start=one_zero)  # the start program: nothing compiled
    assert all(np.isfinite(np.asarray(a)).all() for a in jax.tree_util.tree_leaves(first))
    side = sample_windows(X, y, masks, cfg, start=_start(rng, 4, 4, 2))
    assert not np.allclose(np.asarray(side.params.V), np.asarray(small.params.V))


@pytest.mark.xdist_group("gibbs_start")
def test_a_start_per_chain_begins_each_chain_at_its_own_parameters(x64):
    """``start`` with ``[W, C]`` axes (an ensemble's members, one per chain): chain ``c`` of
    window ``w``, windows vmapped or in size buckets, equals a single-window chain from
    ``chain_key(seed, w, c)`` at ``start[w, c]``; a ``[W]`` start is the same start repeated
    over the chains, run by the same compiled program; a wrong chain count is one ConfigError
    naming the shapes."""
    rng, X, y, masks, cfg = _start_problem(5)
    P = [_start(rng, 4, 4, 2) for _ in range(2)]
    per_chain = jax.tree_util.tree_map(lambda *a: np.stack(a, axis=1), *P)  # [W, C]
    for vm in (True, False):
        got = sample_windows(X, y, masks, cfg, start=per_chain, vmap_windows=vm)
        for w in (1, 3):  # two windows of different sizes (each size is its own compilation)
            for c in range(2):
                start = jax.tree_util.tree_map(lambda a: a[w], P[c])
                one = sample_window(X, y, masks[w], chain_key(5, w, c), cfg, start=start)
                jax.tree_util.tree_map(
                    lambda a, b: np.testing.assert_allclose(a[w, c], b, rtol=1e-9, atol=1e-11), got, one
                )
    repeated = jax.tree_util.tree_map(lambda a: np.stack([a, a], axis=1), P[0])
    from_repeated = sample_windows(X, y, masks, cfg, start=repeated)
    with jax.log_compiles(True), count_compiles() as n:  # broadcast first: the same program
        from_one = sample_windows(X, y, masks, cfg, start=P[0])
    assert n() == 0
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14), from_repeated, from_one
    )
    three = jax.tree_util.tree_map(lambda a: np.stack([a, a, a], axis=1), P[0])
    with pytest.raises(ConfigError, match=r"\[4, 2\] \(windows, chains\)"):
        sample_windows(X, y, masks, cfg, start=three)


def test_a_start_is_kept_as_given_unless_its_latent_vectors_are_degenerate(x64):
    """A start's zero ``v_i`` stay 0 where every other ``V₋ᵢ`` spans the rank; where some
    ``V₋ᵢ`` does not (all zero; only ``rank`` non-zero rows; two parallel rows), its zero rows
    are the default start's draws times ``RESTART_SCALE`` and its other rows stay.
    ``GibbsConfig(init_scale=0)``, a start at ``V = 0``, is refused."""
    rng = np.random.default_rng(3)
    n, k, key = 6, 2, jax.random.key(0)
    cfg = GibbsConfig(rank=k)
    default = np.asarray(_init(key, n, 1, np.float64, cfg).params.V)
    ok = rng.normal(size=(n, k))
    ok[[1, 4]] = 0.0  # 4 rows left: every leave-one-out set spans 2 dimensions
    only_k = np.zeros((n, k))
    only_k[[0, 3]] = rng.normal(size=(2, k))  # leaving out row 0 leaves rank 1
    parallel = np.zeros((n, k))
    parallel[[0, 2, 5]] = np.outer([1.0, -2.0, 0.5], rng.normal(size=k))  # rank 1
    for V, flat in [(ok, False), (np.zeros((n, k)), True), (only_k, True), (parallel, True)]:
        assert bool(degenerate(jax.numpy.asarray(V))) == flat
        start = FAPMParams(w0=np.asarray(0.3), w=rng.normal(size=n), V=V, d=None)
        got = _init(key, n, 1, np.float64, cfg, start=start).params
        zero = (V == 0).all(axis=1)
        np.testing.assert_array_equal(got.V[~zero], V[~zero])
        np.testing.assert_array_equal(got.V[zero], RESTART_SCALE * default[zero] if flat else 0.0)
        np.testing.assert_array_equal(got.w, start.w)
    assert not bool(degenerate(jax.numpy.zeros((n, 0))))
    with pytest.raises(ConfigError, match="init_scale"):
        GibbsConfig(init_scale=0.0)


def test_a_far_start_leaves_the_rank0_posterior_unchanged(x64):
    """Rank 0 started far from the posterior (every weight at +50): after the burn-in the draws
    are the analytic Bayesian linear regression posterior's (as in the test above)."""
    rng = np.random.default_rng(1)
    N, n, alpha, lam = 30, 3, 1.0, 10.0
    X = rng.normal(size=(N, n))
    y = 2.0 + X @ np.array([1.5, -1.0, 0.8]) + rng.normal(size=N)
    Z = np.column_stack([np.ones(N), X])
    cov = np.linalg.inv(alpha * Z.T @ Z + lam * np.eye(n + 1))
    mean = cov @ (alpha * Z.T @ y)
    cfg = GibbsConfig(
        rank=0, n_sweeps=2100, burn_in=100, n_chains=4, fixed_alpha=alpha, fixed_prec=lam, w0_prec=lam
    )
    far = FAPMParams(w0=np.full(1, 50.0), w=np.full((1, n), 50.0), V=np.zeros((1, n, 0)), d=None)
    d = sample_windows(X, y, np.ones((1, N), bool), cfg, start=far)
    _assert_gaussian(d, mean, cov)


def test_windows_in_size_buckets_equal_the_vmapped_windows(x64):
    """On a CPU the windows run one after another in two programs by size (the smaller half
    padded to its own largest); the draws equal those of all windows vmapped side by side, in
    the windows' own order, whatever the order of their sizes (and the side-by-side windows equal
    a loop of single-window chains: the test above)."""
    rng = np.random.default_rng(5)
    X, y = _fm_data(rng, 120, 4)
    rows = np.arange(120)
    masks = np.stack([rows < 100, rows < 30, (rows >= 20) & (rows < 90), rows >= 70, rows < 50])
    cfg = GibbsConfig(rank=2, n_sweeps=8, burn_in=3, n_chains=2, seed=4)
    side = sample_windows(X, y, masks, cfg, vmap_windows=True)
    buckets = sample_windows(X, y, masks, cfg, vmap_windows=False)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11), side, buckets
    )


def test_collapsed_month_slopes_in_padded_windows_equal_single_chains(x64):
    """With collapsed month slopes each window's rows are sorted by month and its empty slots
    put in the last month: windows of different sizes, one after another in one program padded
    to the largest, equal single-window chains (whose rows are not padded)."""
    rng = np.random.default_rng(6)
    X, y = _fm_data(rng, 120, 4)
    rows = np.arange(120)
    masks = np.stack([rows < 100, rows < 30, (rows >= 20) & (rows < 90)])  # 3 windows: one program
    cfg = GibbsConfig(rank=2, n_sweeps=8, burn_in=3, seed=4)
    kw = dict(months=(rows * 7) % 12, slopes=[1])  # the months' rows interleaved
    d = sample_windows(X, y, masks, cfg, vmap_windows=False, **kw)
    for w in (1, 2):
        one = sample_window(X, y, masks[w], chain_key(4, w, 0), cfg, **kw)
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a[w, 0], b, rtol=1e-9, atol=1e-11), d, one
        )


def test_planted_interaction_recovered(x64):
    """Rank 2 on a simulated FM with B_01 = 1: the posterior-mean forecast beats the prior-mean
    forecast (ŷ = 0), the training mean and OLS out of sample; B_01's 95% interval covers 1
    and excludes 0, and the posterior sd is positive and below the noise."""
    rng = np.random.default_rng(4)
    X, y = _fm_data(rng, 800, 4, w=[0.3, -0.2, 0.0, 0.1])
    train = np.arange(800) < 600
    cfg = GibbsConfig(rank=2, n_sweeps=400, burn_in=150, n_chains=2)
    d = sample_windows(X, y, train[None], cfg)
    mean, sd = posterior_predict(d, X)
    mean, sd = np.asarray(mean)[0], np.asarray(sd)[0]
    test = ~train
    mse = lambda f: np.mean((y[test] - f) ** 2)
    Z = np.column_stack([np.ones(800), X])
    ols = Z @ np.linalg.lstsq(Z[train], y[train], rcond=None)[0]
    assert mse(mean[test]) < 0.5 * min(mse(0.0), mse(y[train].mean()), mse(ols[test]))
    assert mse(mean[test]) < 1.2 * 0.25  # near the noise variance
    assert ((sd > 0) & (sd < 0.5)).all()
    I = posterior_interactions(d)
    lo, B, hi = (np.asarray(a)[0] for a in (I.B_lo, I.B_mean, I.B_hi))
    assert 0 < lo[0, 1] < 1.0 < hi[0, 1] and B[0, 1] > 0
    assert np.allclose(B, B.T) and (np.diag(B) == 0).all()
    off = ~np.eye(4, dtype=bool)
    off[0, 1] = off[1, 0] = False
    assert np.abs(B[off]).max() < 0.2  # no other planted interaction
    assert (np.asarray(I.w_lo)[0] < np.asarray(I.w_hi)[0]).all()


def test_agrees_with_myfm(x64):
    """myFM's MCMC FM (``MyFMGibbsRegressor``, the same rank and priors up to myFM's λ
    hyperprior without the μ term) and ours give the same posterior-mean predictions within
    Monte Carlo error: correlation > 0.99 and RMS difference below 0.25 × the mean posterior sd."""
    myfm = pytest.importorskip("myfm")
    rng = np.random.default_rng(5)
    X, y = _fm_data(rng, 300, 5, planted=((0, 1, 0.8), (2, 3, -0.6)))
    Xt = rng.normal(size=(100, 5))
    ref = myfm.MyFMGibbsRegressor(rank=2, random_seed=0).fit(X, y, n_iter=3000, n_kept_samples=2500)
    theirs = ref.predict(Xt)
    cfg = GibbsConfig(rank=2, n_sweeps=1500, burn_in=300, n_chains=4)
    mean, sd = posterior_predict(sample_windows(X, y, np.ones((1, 300), bool), cfg), Xt)
    ours, sd = np.asarray(mean)[0], np.asarray(sd)[0]
    assert np.corrcoef(ours, theirs)[0, 1] > 0.99
    assert np.sqrt(np.mean((ours - theirs) ** 2)) < 0.25 * sd.mean()


def test_errors():
    """One-line ConfigError/DataError for bad options and data, before anything compiles."""
    for bad in (dict(rank=-1), dict(n_sweeps=10, burn_in=10), dict(thin=0), dict(fixed_prec=0.0)):
        with pytest.raises(ConfigError):
            GibbsConfig(**bad)
    X, y = np.zeros((5, 2)), np.zeros(5)
    with pytest.raises(DataError, match="no training rows"):
        sample_windows(X, y, np.zeros((1, 5), bool))
    X[0, 0] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        sample_windows(X, y, np.ones((1, 5), bool))
    with pytest.raises(DataError, match="groups"):
        sample_windows(np.zeros((5, 2)), y, np.ones((1, 5), bool), groups=[0, -1])
    P = _start(np.random.default_rng(0), 1, 2, 4, d=False)  # GibbsConfig(): rank 4, no d
    sample_windows(np.zeros((5, 2)), y, np.ones((1, 5), bool), GibbsConfig(n_sweeps=2, burn_in=1), start=P)
    with pytest.raises(ConfigError, match=r"start.V must be \[1, 2, 3\]"):
        sample_windows(np.zeros((5, 2)), y, np.ones((1, 5), bool), GibbsConfig(rank=3), start=P)
    with pytest.raises(ConfigError, match="start.d must be"):
        sample_windows(
            np.zeros((5, 2)), y, np.ones((1, 5), bool), GibbsConfig(self_interactions=True), start=P
        )
    with pytest.raises(DataError, match="start.w has a non-finite"):
        sample_windows(
            np.zeros((5, 2)),
            y,
            np.ones((1, 5), bool),
            start=dataclasses.replace(P, w=np.full((1, 2), np.inf)),
        )
