"""Row-masked primitives shared by every trainer: quantiles and mini-batches over masked rows.

Windows (and simulation blocks) are 0/1 row masks over one panel (see
:mod:`~fapm_jax.windows`), so statistics and batches are taken over the masked rows of the
full array, never over a gathered copy; everything here is pure and vmaps over masks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray


def masked_quantile(x: Float[Array, " N"], mask: Float[Array, " N"], q: float) -> Float[Array, ""]:
    """The ``q`` quantile of ``x`` over the rows where ``mask > 0`` (lower interpolation)."""
    n = jnp.sum(mask > 0)
    xs = jnp.sort(jnp.where(mask > 0, x, jnp.inf))
    i = jnp.clip(jnp.floor(q * (n - 1)).astype(jnp.int32), 0, x.shape[0] - 1)
    return xs[i]


def shuffled_batches(
    key: PRNGKeyArray, train_mask: Float[Array, " N"], batch_size: int, n_batches: int
) -> tuple[Int[Array, "B S"], Bool[Array, "B S"]]:
    """Row indices ``[n_batches, batch_size]`` of a random permutation of the training rows,
    and a 0/1 mask of which slots hold a real training row (the last batch may be short)."""
    u = jax.random.uniform(key, train_mask.shape)
    order = jnp.argsort(jnp.where(train_mask > 0, u, 2.0))
    total = n_batches * batch_size
    order = jnp.resize(order, (total,)) if total > order.shape[0] else order[:total]
    slot_ok = jnp.arange(total) < jnp.sum(train_mask > 0)
    return order.reshape(n_batches, batch_size), slot_ok.reshape(n_batches, batch_size)
