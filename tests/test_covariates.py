"""fapm_jax/covariates.py: GKX's characteristics ⊗ (1, macro) + SIC2 covariates against an
explicit numpy loop, under jit and vmap; names; the 920-column count of the paper."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fapm_jax.data.covariates import covariate_blocks, gkx_covariate_names, gkx_covariates
from fapm_jax.data.gkx_files import gkx_characteristic_names
from fapm_jax.data.macro import MACRO_NAMES


def loop_reference(chars, macro, sic):
    """Column by column, written out: for each c: c, c*m1, ..., c*mM; then the dummies."""
    n, P = chars.shape
    M = macro.shape[1]
    S = 0 if sic is None else sic.shape[1]
    out = np.zeros((n, P * (1 + M) + S))
    for i in range(n):
        col = 0
        for c in range(P):
            out[i, col] = chars[i, c]
            col += 1
            for m in range(M):
                out[i, col] = chars[i, c] * macro[i, m]
                col += 1
        for s in range(S):
            out[i, col] = sic[i, s]
            col += 1
    return out


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    n, P, M, S = 7, 5, 3, 4
    chars = rng.uniform(-1, 1, (n, P)).astype(np.float32)
    macro = rng.normal(size=(n, M)).astype(np.float32)
    sic = np.eye(S, dtype=np.float32)[rng.integers(0, S, n)]
    return chars, macro, sic


@pytest.mark.parametrize("with_sic", [True, False])
def test_matches_numpy_loop(data, with_sic):
    chars, macro, sic = data
    sic = sic if with_sic else None
    got = np.asarray(gkx_covariates(chars, macro, sic))
    want = loop_reference(chars.astype(np.float64), macro.astype(np.float64), sic)
    # One float32 product per entry: relative error below 2^-24, tolerance 1e-6.
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert got.dtype == np.float32


def test_jit_and_vmap_over_batches(data):
    chars, macro, sic = data
    batches = (np.stack([chars, chars[::-1]]), np.stack([macro, macro[::-1]]), np.stack([sic, sic[::-1]]))
    f = jax.jit(jax.vmap(gkx_covariates))
    got = np.asarray(f(*batches))
    assert got.shape == (2, 7, 5 * 4 + 4)
    for b in range(2):
        want = loop_reference(*(np.asarray(x[b], np.float64) for x in batches))
        np.testing.assert_allclose(got[b], want, rtol=1e-6, atol=1e-7)
    # Leading batch axes without vmap, and a single row.
    np.testing.assert_allclose(np.asarray(jax.jit(gkx_covariates)(*batches)), got, rtol=0, atol=0)
    np.testing.assert_allclose(np.asarray(gkx_covariates(chars[0], macro[0], sic[0])), got[0, 0], rtol=1e-6)


def test_names_follow_the_columns(data):
    chars, macro, sic = data
    names = gkx_covariate_names(["a", "b"], ["x", "y"], ["sic2_01"])
    assert names == ("a", "a*x", "a*y", "b", "b*x", "b*y", "sic2_01")
    out = np.asarray(gkx_covariates(np.array([[2.0, 3.0]]), np.array([[5.0, 7.0]]), np.array([[1.0]])))
    assert dict(zip(names, out[0].tolist())) == {
        "a": 2,
        "a*x": 10,
        "a*y": 14,
        "b": 3,
        "b*x": 15,
        "b*y": 21,
        "sic2_01": 1,
    }


def test_gkx_920_covariates():
    chars = gkx_characteristic_names()
    sics = [f"sic2_{k:02d}" for k in range(1, 75)]
    names = gkx_covariate_names(chars, MACRO_NAMES, sics)
    assert len(names) == 94 * 9 + 74 == 920 and len(set(names)) == 920
    shape = jax.eval_shape(gkx_covariates, jnp.zeros((3, 94)), jnp.zeros((3, 8)), jnp.zeros((3, 74))).shape
    assert shape == (3, 920)


def test_blocks_split_a_panel_row(data):
    chars, macro, sic = data
    features = (
        ("c0", "c1", "c2", "c3", "c4") + ("m0", "m1", "m2") + ("sic2_01", "sic2_02", "sic2_03", "sic2_04")
    )
    X = np.concatenate([chars, macro, sic], axis=1)
    ci, mi, si = covariate_blocks(features, ("m0", "m1", "m2"))
    np.testing.assert_array_equal(X[:, ci], chars)
    np.testing.assert_array_equal(X[:, mi], macro)
    np.testing.assert_array_equal(X[:, si], sic)


def test_batch_shape_mismatch_is_an_error(data):
    chars, macro, _ = data
    with pytest.raises(ValueError, match="batch shapes differ"):
        gkx_covariates(chars, macro[:3])
