"""One full-batch pass over a window's rows, in chunks: loss, gradient and both R² at once.

The full-batch R² loss of a window (paper section 2.3) is a sum over its rows, and so is its
gradient: ``Σ_t m_t ℓ(r_t − ŷ_t)`` over the training rows, divided by ``Σ m_t r_t²``. The pass
walks the panel in chunks of ``chunk_rows`` rows (a ``lax.scan``), and in each chunk computes
the prediction once (:func:`~fapm_jax.core.model.predict`: one product with ``[w | V]`` and one with
``x ⊙ x``, formed once per chunk and used by the forward and the backward product), the
chunk's loss and its gradient, and the squared errors over the training and validation rows.
The temporaries are one chunk's, whatever the panel's size: ``vmap``-ed over 30 windows on the
GKX panel (4.1 million rows) a whole-panel pass would hold ``30 × N × (k + 1)`` activations.

Because the same prediction gives the validation R², the trainer needs one pass per epoch
instead of two (a fused epoch of :func:`fapm_jax.core.engine.epoch_step`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .losses import huber
from .model import FAPMParams, predict

#: Rows per chunk when none is given, by backend: on a CPU small chunks keep each chunk's
#: activations in cache (measured on 2 cores, 500k rows × 176 factors × 30 windows, rank 8:
#: 57 GFLOP/s at 8192 rows, 51 at 16384, 29 at 262144); an accelerator wants large products.
CHUNK_ROWS = {"cpu": 8192}
CHUNK_ROWS_ACCELERATOR = 131_072


def default_chunk_rows() -> int:
    """:data:`CHUNK_ROWS` of the default backend."""
    return CHUNK_ROWS.get(jax.default_backend(), CHUNK_ROWS_ACCELERATOR)


class PassSums(NamedTuple):
    """Row sums of one pass (divide by ``Σ m r²`` for the loss and ``1 − R²``)."""

    loss: Float[Array, ""]  # Σ train_mask · ℓ(r − ŷ)
    sse_train: Float[Array, ""]  # Σ train_mask · (r − ŷ)²
    sse_valid: Float[Array, ""]  # Σ valid_mask · (r − ŷ)²


def chunk_sums(
    params: FAPMParams,
    X: Float[Array, "C n"],
    r: Float[Array, " C"],
    train_mask: Float[Array, " C"],
    valid_mask: Float[Array, " C"],
    huber_delta: Float[Array, ""] | None = None,
    precision: str = "highest",
) -> PassSums:
    """The sums of :class:`PassSums` over one chunk of rows (``ℓ`` squared error, or GKX's
    Huber function when ``huber_delta`` is given; ``precision`` of the products as in
    :func:`~fapm_jax.core.model.predict`)."""
    # A row outside both masks contributes exactly 0, even if its prediction overflows.
    e = jnp.where(_selected(train_mask) | _selected(valid_mask), r - predict(params, X, precision), 0.0)
    sse_train = masked_sum(train_mask, e * e)
    loss = sse_train if huber_delta is None else masked_sum(train_mask, huber(e, huber_delta))
    return PassSums(loss, sse_train, masked_sum(valid_mask, e * e))


def _selected(mask: Array) -> Array:
    """The rows a 0/1 or boolean mask selects, as booleans."""
    return mask if mask.dtype == jnp.bool_ else mask != 0


def masked_sum(mask: Array, values: Float[Array, " C"]) -> Float[Array, ""]:
    """``Σ mask · values``; a boolean mask selects instead of multiplying, so that no float
    copy of it is formed (XLA would hoist a whole-panel ``[W, N]`` conversion out of the scan)."""
    if mask.dtype == jnp.bool_:
        return jnp.sum(jnp.where(mask, values, 0.0))
    return jnp.sum(mask * values)


def chunk_layout(N: int, chunk_rows: int | None) -> tuple[int, int, int]:
    """``(C, full, rest)``: ``N`` rows as ``full`` chunks of ``C`` rows and ``rest`` rows left."""
    chunk_rows = default_chunk_rows() if chunk_rows is None else chunk_rows
    C = N if chunk_rows >= N else int(chunk_rows)
    return C, N // C, N - (N // C) * C


def row_pass(
    params: FAPMParams,
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    train_mask: Float[Array, " N"],
    valid_mask: Float[Array, " N"],
    huber_delta: Float[Array, ""] | None = None,
    *,
    chunk_rows: int | None = None,
    grad: bool = True,
    axis_name: str | None = None,
    precision: str = "highest",
) -> tuple[PassSums, FAPMParams | None]:
    """The sums of :func:`chunk_sums` over all ``N`` rows and, with ``grad``, the gradient of
    ``PassSums.loss`` with respect to ``params`` — accumulated chunk by chunk.

    ``chunk_rows`` (``None``: :func:`default_chunk_rows`) sets the temporaries' size and the
    speed (``≥ N``: one chunk); the result does not depend
    on it beyond float rounding. The last ``N mod chunk_rows`` rows form a smaller chunk (no
    padded copy of ``X``).

    ``axis_name``: the rows are one device's shard of the panel, split along that mesh axis
    (:mod:`~fapm_jax.core.sharding`); the sums and gradients are summed over the axis (``psum``).
    ``precision``: of the products (:data:`~fapm_jax.core.model.PRECISIONS`).
    """
    N = X.shape[0]
    C, n_full, rest = chunk_layout(N, chunk_rows)

    def one(Xc, rc, tc, vc):
        if not grad:
            return chunk_sums(params, Xc, rc, tc, vc, huber_delta, precision), None
        (loss, aux), g = jax.value_and_grad(
            lambda p: (lambda s: (s.loss, s))(chunk_sums(p, Xc, rc, tc, vc, huber_delta, precision)),
            has_aux=True,
        )(params)
        return aux, g

    def add(a, b):
        return jax.tree_util.tree_map(jnp.add, a, b)

    def total(acc):
        return acc if axis_name is None else jax.lax.psum(acc, axis_name)

    if n_full == 1 and rest == 0:
        return total(one(X, r, train_mask, valid_mask))

    def body(acc, i):
        sl = lambda a: jax.lax.dynamic_slice_in_dim(a, i * C, C, axis=0)  # noqa: E731
        return add(acc, one(sl(X), sl(r), sl(train_mask), sl(valid_mask))), None

    zero = jax.tree_util.tree_map(
        lambda a: jnp.zeros(a.shape, a.dtype),
        jax.eval_shape(lambda: one(X[:C], r[:C], train_mask[:C], valid_mask[:C])),
    )
    acc, _ = jax.lax.scan(body, zero, jnp.arange(n_full))
    if rest:
        s = slice(n_full * C, N)
        acc = add(acc, one(X[s], r[s], train_mask[s], valid_mask[s]))
    return total(acc)
