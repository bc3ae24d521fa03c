"""Row-masked primitives shared by every trainer: quantiles, mini-batches and compact row sets.

Windows (and simulation blocks) are 0/1 row masks over one panel (see
:mod:`~fapm_jax.data.windows`), so statistics and batches are taken over the masked rows of the
full array; everything here is pure and vmaps over masks. A trainer that passes over a
window's rows many times (the networks' every-epoch validation) gathers them once into a
fixed-size block with :func:`compact_rows`, so each pass touches the window's rows only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


def masked_quantile(x: Float[Array, " N"], mask: Float[Array, " N"], q: float) -> Float[Array, ""]:
    """The ``q`` quantile of ``x`` over the rows where ``mask > 0`` (lower interpolation)."""
    n = jnp.sum(mask > 0)
    xs = jnp.sort(jnp.where(mask > 0, x, jnp.inf))
    i = jnp.clip(jnp.floor(q * (n - 1).astype(x.dtype)).astype(jnp.int32), 0, x.shape[0] - 1)
    return xs[i]


def shuffled_batches(
    key: PRNGKeyArray, train_mask: Float[Array, " N"], batch_size: int, n_batches: int
) -> tuple[Int[Array, "B S"], Bool[Array, "B S"]]:
    """Row indices ``[n_batches, batch_size]`` of a random permutation of the training rows,
    and a 0/1 mask of which slots hold a real training row (the last batch may be short).

    Up to 2²⁰ rows the permutation is one sort of single ``uint32`` keys
    ``[not training | random | row]`` (training rows first, then by ``31 − b`` random bits,
    ``b`` = the bits of a row index, then by row), which XLA sorts on a CPU about 7× faster
    than an ``argsort`` of random floats (a two-operand sort, which was most of a network
    epoch's time). Rows that draw the same random bits (≥ 11 of them) keep their relative
    order, which matters only for rows straddling a batch boundary. Larger arrays use the
    ``argsort`` of uniform draws.
    """
    n = train_mask.shape[0]
    b = max(1, (n - 1).bit_length())
    if b <= 20:
        rand = jax.random.bits(key, (n,), jnp.uint32) >> jnp.uint32(b + 1)
        outside = jnp.where(train_mask > 0, jnp.uint32(0), jnp.uint32(1 << 31))
        packed = outside | (rand << jnp.uint32(b)) | jnp.arange(n, dtype=jnp.uint32)
        order = (jax.lax.sort(packed) & jnp.uint32((1 << b) - 1)).astype(jnp.int32)
    else:
        u = jax.random.uniform(key, (n,))
        order = jnp.argsort(jnp.where(train_mask > 0, u, 2.0))
    total = n_batches * batch_size
    order = jnp.resize(order, (total,)) if total > order.shape[0] else order[:total]
    slot_ok = jnp.arange(total) < jnp.sum(train_mask > 0)
    return order.reshape(n_batches, batch_size), slot_ok.reshape(n_batches, batch_size)


def compact_rows(mask: Float[Array, " N"], size: int) -> tuple[Int[Array, " S"], Bool[Array, " S"]]:
    """The indices of the rows with ``mask > 0``, in order, in ``size`` static slots, and which
    slots hold one. Slots past the count point at row 0 (``ok`` False); rows past ``size`` are
    dropped, so ``size`` must be at least the largest count (callers size it from the data)."""
    idx = jnp.nonzero(mask > 0, size=size, fill_value=0)[0]
    ok = jnp.arange(size) < jnp.sum(mask > 0)
    return idx, ok


def window_rows(masks: np.ndarray, max_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``[W, R]`` and 0/1 weights ``[W, R]`` of each mask's rows (host numpy): all of
    them, or ``max_rows`` evenly spaced; shorter rows are padded with weight-0 copies of row 0.
    Evaluating a window on its gathered rows costs ``O(R)``, not ``O(N)``."""
    masks = np.asarray(masks) > 0
    rows = [np.flatnonzero(m) for m in masks]
    if any(r.size == 0 for r in rows):
        raise ValueError(
            f"window_rows: window {next(i for i, r in enumerate(rows) if r.size == 0)} has no rows"
        )
    if max_rows is not None:
        if max_rows < 1:
            raise ValueError(f"window_rows: max_rows must be positive, got {max_rows}")
        rows = [
            r if r.size <= max_rows else r[np.linspace(0, r.size - 1, max_rows).round().astype(np.int64)]
            for r in rows
        ]
    R = max(r.size for r in rows)
    idx = np.zeros((len(rows), R), np.int64)
    wt = np.zeros((len(rows), R), np.float32)
    for w, r in enumerate(rows):
        idx[w, : r.size] = r
        wt[w, : r.size] = 1.0
    return idx, wt
