"""Tests of fapm_jax/masked.py: the masked quantile against numpy, the shuffled mini-batches
(each training row exactly once, on both the packed-key and the argsort path; a row's batch is
uniformly distributed over many keys) and the compact row sets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fapm_jax.core.masked import compact_rows, masked_quantile, shuffled_batches

pytestmark = pytest.mark.usefixtures("strict_promotion")


def test_masked_quantile_matches_numpy_lower():
    rng = np.random.default_rng(0)
    x = rng.normal(size=57).astype(np.float32)
    mask = (rng.uniform(size=57) < 0.6).astype(np.float32)
    f = jax.jit(masked_quantile)  # q traced: one compilation for all q
    for q in (0.5, 0.9, 0.999, 0.0):
        got = float(f(jnp.asarray(x), jnp.asarray(mask), q))
        assert got == np.quantile(x[mask > 0], q, method="lower"), q  # exact: picks an element


SHUFFLE = jax.jit(shuffled_batches, static_argnums=(2, 3))


def test_batches_cover_each_training_row_once():
    N, bs = 30, 7
    mask = np.zeros(N, np.float32)
    train_rows = np.array([0, 2, 3, 5, 8, 9, 10, 13, 14, 15, 17, 18, 20, 21, 22, 25, 26, 28, 29])
    mask[train_rows] = 1
    for n_batches in (3, 6):  # 21 slots (< N) and 42 slots (> N: the permutation is tiled)
        idx, ok = (np.asarray(a) for a in SHUFFLE(jax.random.key(1), jnp.asarray(mask), bs, n_batches))
        assert idx.shape == ok.shape == (n_batches, bs)
        assert ok.sum() == len(train_rows)
        np.testing.assert_array_equal(np.sort(idx[ok]), train_rows)  # each training row once
    a, _ = SHUFFLE(jax.random.key(1), jnp.asarray(mask), bs, 3)
    b, _ = SHUFFLE(jax.random.key(2), jnp.asarray(mask), bs, 3)
    assert not np.array_equal(np.asarray(a), np.asarray(b))  # the order is random


def test_batches_on_the_argsort_path_for_large_arrays():
    """Above 2**20 rows the packed key has too few random bits; the argsort path covers too."""
    N = 2**20 + 3
    rng = np.random.default_rng(0)
    mask = (rng.uniform(size=N) < 0.01).astype(np.float32)
    n_train = int(mask.sum())
    bs = 4096
    nb = -(-n_train // bs)
    idx, ok = (np.asarray(a) for a in shuffled_batches(jax.random.key(0), jnp.asarray(mask), bs, nb))
    np.testing.assert_array_equal(np.sort(idx[ok]), np.flatnonzero(mask))


def test_batch_membership_is_uniform():
    """Over 400 keys, every training row lands in each of the 4 batches about equally often
    (binomial: 100 ± 10 expected; the bound 60..140 is a 4-sigma band), and the first
    position is not biased toward low row numbers (ties keep row order)."""
    N, bs, nb = 200, 40, 4  # 160 training rows, 4 full batches
    mask = np.zeros(N, np.float32)
    mask[::5] = 0  # rows 0, 5, 10, ... are not training rows
    mask[np.arange(N) % 5 != 0] = 1
    counts = np.zeros((N, nb))
    first = []
    for k in range(400):
        idx, ok = (np.asarray(a) for a in SHUFFLE(jax.random.key(k), jnp.asarray(mask), bs, nb))
        for b in range(nb):
            counts[idx[b][ok[b]], b] += 1
        first.append(idx[0, 0])
    train = mask > 0
    assert np.all(counts[~train] == 0)
    assert counts[train].min() >= 60 and counts[train].max() <= 140
    assert abs(np.mean(first) - np.mean(np.flatnonzero(train))) < 12  # sd of the mean ≈ 2.9


def test_compact_rows():
    mask = jnp.asarray([0, 1, 1, 0, 1, 0], jnp.float32)
    idx, ok = jax.jit(compact_rows, static_argnums=1)(mask, 5)
    np.testing.assert_array_equal(np.asarray(idx)[np.asarray(ok)], [1, 2, 4])
    np.testing.assert_array_equal(np.asarray(ok), [True, True, True, False, False])
