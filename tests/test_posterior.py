"""Credible bands of the window-averaged interactions (fapm_jax.evaluation.posterior): a hand
computation over draws, one window against the per-window posterior of fapm_jax.core.gibbs, and
the tables' order and flags."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fapm_jax.core.errors import ConfigError
from fapm_jax.core.gibbs import GibbsDraws
from fapm_jax.core.gibbs_summaries import posterior_interactions
from fapm_jax.core.model import FAPMParams
from fapm_jax.evaluation.posterior import averaged_posterior, posterior_factor_table, posterior_pair_table


def _draws(rng, W, C, K, n, k, self_interactions=True):
    p = FAPMParams(
        w0=jnp.asarray(rng.normal(size=(W, C, K))),
        w=jnp.asarray(rng.normal(size=(W, C, K, n))),
        V=jnp.asarray(rng.normal(loc=0.3, size=(W, C, K, n, k))),
        d=jnp.asarray(rng.normal(size=(W, C, K, n))) if self_interactions else None,
    )
    return GibbsDraws(p, jnp.ones((W, C, K)), jnp.ones((W, C, K, 1)), jnp.ones((W, C, K, 1, k)))


def test_independent_bands_are_quantiles_of_the_window_mean_per_draw(x64):
    """By hand: for each paired draw s, the window mean of B = V Vᵀ (off the diagonal) + diag d,
    its partner-average |B|; posterior mean and 5/95% quantiles over s."""
    rng = np.random.default_rng(0)
    W, C, K, n, k = 3, 2, 40, 5, 2
    draws = _draws(rng, W, C, K, n, k)
    got = averaged_posterior(draws, level=0.9, coupling="independent")
    V = np.asarray(draws.params.V).reshape(W, C * K, n, k)
    d = np.asarray(draws.params.d).reshape(W, C * K, n)
    Bs, avgs = [], []
    for s in range(C * K):
        B = np.mean([V[w, s] @ V[w, s].T * (1 - np.eye(n)) + np.diag(d[w, s]) for w in range(W)], axis=0)
        Bs.append(B)
        A = np.abs(B) * (1 - np.eye(n))
        avgs.append(A.sum(1) / (n - 1))
    Bs, avgs = np.array(Bs), np.array(avgs)
    np.testing.assert_allclose(got.B_mean, Bs.mean(0), rtol=1e-10)
    np.testing.assert_allclose(got.B_lo, np.quantile(Bs, 0.05, axis=0), rtol=1e-10)
    np.testing.assert_allclose(got.B_hi, np.quantile(Bs, 0.95, axis=0), rtol=1e-10)
    np.testing.assert_allclose(got.avg_mean, avgs.mean(0), rtol=1e-10)
    np.testing.assert_allclose(got.avg_lo, np.quantile(avgs, 0.05, axis=0), rtol=1e-10)
    np.testing.assert_allclose(got.avg_hi, np.quantile(avgs, 0.95, axis=0), rtol=1e-10)


def test_comonotone_bands_are_the_mean_of_the_windows_bands(x64):
    """The default coupling: each B_ij's band is the mean over windows of the windows' own
    quantiles (by hand from each window's draws), the posterior mean is the independent
    coupling's, Table 6's statistic is taken on the entry-sorted draws, and the band is wider
    than the independent one; a wrong coupling is one clear error."""
    rng = np.random.default_rng(3)
    W, C, K, n, k = 4, 2, 30, 5, 2
    draws = _draws(rng, W, C, K, n, k)
    got = averaged_posterior(draws, level=0.9)
    V = np.asarray(draws.params.V).reshape(W, C * K, n, k)
    d = np.asarray(draws.params.d).reshape(W, C * K, n)
    B = np.einsum("wsik,wsjk->wsij", V, V) * (1 - np.eye(n)) + d[..., None] * np.eye(n)  # [W, S, n, n]
    np.testing.assert_allclose(got.B_lo, np.quantile(B, 0.05, axis=1).mean(0), rtol=1e-10)
    np.testing.assert_allclose(got.B_hi, np.quantile(B, 0.95, axis=1).mean(0), rtol=1e-10)
    np.testing.assert_allclose(got.B_mean, B.mean(axis=(0, 1)), rtol=1e-10)
    Bs = np.sort(B, axis=1).mean(0)  # [S, n, n]
    avgs = (np.abs(Bs) * (1 - np.eye(n))).sum(-1) / (n - 1)
    np.testing.assert_allclose(got.avg_lo, np.quantile(avgs, 0.05, axis=0), rtol=1e-10)
    np.testing.assert_allclose(got.avg_mean, avgs.mean(0), rtol=1e-10)
    ind = averaged_posterior(draws, level=0.9, coupling="independent")
    np.testing.assert_allclose(ind.B_mean, got.B_mean, rtol=1e-10)
    off = ~np.eye(n, dtype=bool)
    assert np.all((got.B_hi - got.B_lo)[off] > (ind.B_hi - ind.B_lo)[off])
    with pytest.raises(ConfigError, match="coupling"):
        averaged_posterior(draws, coupling="paired")


def test_one_window_equals_the_per_window_posterior(x64):
    """With one window the band of the window mean is that window's own credible band
    (core.gibbs.posterior_interactions, an independent implementation)."""
    rng = np.random.default_rng(1)
    draws = _draws(rng, 1, 2, 30, 4, 3, self_interactions=False)
    ref = posterior_interactions(draws)
    for coupling in ("comonotone", "independent"):
        got = averaged_posterior(draws, coupling=coupling)
        np.testing.assert_allclose(got.B_mean, ref.B_mean[0], rtol=1e-10)
        np.testing.assert_allclose(got.B_lo, ref.B_lo[0], rtol=1e-10)
        np.testing.assert_allclose(got.B_hi, ref.B_hi[0], rtol=1e-10)


def test_tables_order_and_credible_flags(x64):
    rng = np.random.default_rng(2)
    names, macro = ["a", "b", "m1", "m2"], ["m1", "m2"]
    post = averaged_posterior(_draws(rng, 2, 1, 50, 4, 2))
    t = posterior_pair_table(post, names, macro)
    assert t.height == 6
    assert np.all(np.diff(np.abs(t["mean"].to_numpy())) <= 0)
    want = (t["ci_low"].to_numpy() > 0) | (t["ci_high"].to_numpy() < 0)
    assert t["credible"].to_list() == want.tolist()
    row = t.filter((t["a"] == "m1") & (t["b"] == "m2")).row(0, named=True)
    assert row["kind"] == "macro×macro"
    assert row["mean"] == pytest.approx(float(post.B_mean[2, 3]))
    f = posterior_factor_table(post, names)
    assert f["share"].sum() == pytest.approx(1.0)
    assert np.all(np.diff(f["average"].to_numpy()) <= 0)
    assert np.all(f["ci_low"].to_numpy() <= f["average"].to_numpy())


def test_errors(x64):
    draws = _draws(np.random.default_rng(3), 2, 1, 5, 3, 2)
    with pytest.raises(ConfigError, match="level"):
        averaged_posterior(draws, level=1.5)
    one_window = jax.tree_util.tree_map(lambda a: a[0], draws.params)
    with pytest.raises(ConfigError, match="windows, chains, draws"):
        averaged_posterior(draws._replace(params=one_window))
