"""The network of NN1–NN5 (GKX 2020, section 1.7): layers, batch normalisation, forward pass
and penalised loss, as pure functions of an equinox pytree.

Architecture. ``NNk`` has ``k`` fully connected hidden layers of 32, 16, 8, 4, 2 units
(geometric pyramid, GKX section 1.7), ReLU activations and a linear output unit. Every hidden
unit's input is batch-normalised before the ReLU, with a learnable scale and shift (GKX
"batch normalization", section 1.7 and Table A.5). Layers are :class:`equinox.nn.Linear`
modules (hidden ones without bias: BN's shift replaces it, see :class:`MLP`); the network is
the equinox pytree :class:`MLP`.

Batch normalisation, functionally. GKX (following Ioffe and Szegedy 2015) normalise each
hidden pre-activation by its mean and variance over the current mini-batch while training,
and by population statistics at prediction time. Deep-learning libraries track the latter as
a running average of batch statistics, which is mutable state. We keep every function pure:

* in training, the statistics are the (biased) mean and variance of the pre-activation over
  the mini-batch's **valid** rows (a 0/1 mask; padded slots of a short batch do not count);
* for validation, test and prediction, they are the population mean and (biased) variance
  over **all training rows of the window**, recomputed from those rows with the current
  weights (a full pass over the window's training rows). The statistics of the returned
  (best-on-validation) network
  are stored with it in :class:`BNStats`, so :meth:`NN.predict` needs no training mask.

This equals the running-average scheme in its limit (its running averages estimate exactly
these population moments), has no momentum hyperparameter, and makes the fit a pure function
of ``(X, y, masks, key)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

#: Variance offset ``ε`` of batch normalisation (PyTorch's default; Keras uses 1e-3).
BN_EPS = 1e-5


# ----------------------------------------------------------------------------- the network


class MLP(eqx.Module):
    """A ReLU network with batch-normalised hidden units and a linear output.

    ``hidden[i]`` (a bias-free ``Linear``) maps layer ``i``'s input to its pre-activation
    ``z``; ``scale[i]`` and ``shift[i]`` are the learnable BN parameters ``γ, β`` of
    ``relu(γ·(z − μ)/√(σ² + ε) + β)``; ``out`` maps the last hidden layer (or the inputs, with no hidden
    layer) to the forecast.
    Every leaf is an array, so the module is an ordinary pytree for ``grad``/``vmap``/optax.

    Hidden layers have no bias: BN subtracts each unit's mean, so a bias would have no effect
    on any forecast and a zero gradient up to rounding, which Adam (a scale-free step) would
    turn into a random walk; BN's shift ``β`` takes its place (Ioffe and Szegedy 2015, 3.2).
    """

    hidden: tuple[eqx.nn.Linear, ...]
    scale: tuple[Float[Array, " H"], ...]
    shift: tuple[Float[Array, " H"], ...]
    out: eqx.nn.Linear


class BNStats(NamedTuple):
    """Per hidden layer, the mean and (biased) variance of each unit's pre-activation."""

    mean: tuple[Float[Array, " H"], ...]
    var: tuple[Float[Array, " H"], ...]


class NNParams(NamedTuple):
    """A fitted ensemble: networks and their population BN statistics, leading axis ``[M]``
    (members) on every leaf. The forecast is the average over members."""

    net: MLP
    stats: BNStats


class MemberFit(NamedTuple):
    """One trained member (one grid point, one seed).

    ``net``/``stats``: the best-on-validation network and its population BN statistics.
    ``valid_mse``: its validation MSE. ``best_epoch``: the epoch that produced it (0 = the
    initialised network). ``stop_epoch``: epochs completed when training stopped (early
    stopping, divergence or the epoch limit). ``diverged``: a non-finite loss, parameter or
    validation MSE was met. ``valid_history[e]``: validation MSE after epoch ``e`` (index 0 =
    initialisation; NaN for epochs not run or diverged).
    """

    net: MLP
    stats: BNStats
    valid_mse: Float[Array, ""]
    best_epoch: Int[Array, ""]
    stop_epoch: Int[Array, ""]
    diverged: Bool[Array, ""]
    valid_history: Float[Array, " E1"]


class NNInfo(NamedTuple):
    """Diagnostics of :meth:`NN.fit_with_info`, axes ``[G, M]`` = (grid point, member).

    ``l1``/``learning_rate``: the grid ``[G]`` in :meth:`NN.grid` order. The other fields are
    those of :class:`MemberFit`.
    """

    l1: Float[Array, " G"]
    learning_rate: Float[Array, " G"]
    valid_mse: Float[Array, "G M"]
    best_epoch: Int[Array, "G M"]
    stop_epoch: Int[Array, "G M"]
    diverged: Bool[Array, "G M"]
    valid_history: Float[Array, "G M E1"]


def _linear(weight: Float[Array, "O I"], bias: Float[Array, " O"] | None) -> eqx.nn.Linear:
    """An :class:`equinox.nn.Linear` holding the given arrays (``bias=None``: no bias). Its
    skeleton is built by ``eval_shape``, so no random draw is traced or compiled."""
    o, i = weight.shape
    use_bias = bias is not None
    skeleton = eqx.filter_eval_shape(
        lambda: eqx.nn.Linear(i, o, use_bias=use_bias, dtype=weight.dtype, key=jax.random.key(0))
    )
    if not use_bias:
        return eqx.tree_at(lambda lin: lin.weight, skeleton, weight)
    return eqx.tree_at(lambda lin: (lin.weight, lin.bias), skeleton, (weight, bias))


def mlp_from_arrays(
    weights: list[Float[Array, "O I"]],
    out_bias: Float[Array, " 1"],
    scales: list[Float[Array, " H"]] | None = None,
    shifts: list[Float[Array, " H"]] | None = None,
) -> MLP:
    """An :class:`MLP` from its arrays: ``weights[i]`` is ``[out, in]``, the last one the
    output layer's ``[1, H]``; ``out_bias`` the output bias; BN ``γ``/``β`` default to 1/0."""
    dtype = weights[0].dtype
    widths = [w.shape[0] for w in weights[:-1]]
    return MLP(
        hidden=tuple(_linear(w, None) for w in weights[:-1]),
        scale=tuple(scales) if scales is not None else tuple(jnp.ones(h, dtype) for h in widths),
        shift=tuple(shifts) if shifts is not None else tuple(jnp.zeros(h, dtype) for h in widths),
        out=_linear(weights[-1], out_bias),
    )


def init_mlp(key: PRNGKeyArray, n_inputs: int, hidden: tuple[int, ...], dtype=jnp.float32) -> MLP:
    """Equinox's default ``Linear`` initialisation, uniform on ``±1/√fan_in``, with BN
    ``γ = 1``, ``β = 0`` — except the output layer, which starts at zero: the network starts at
    the zero forecast (R² = 0, the benchmark) instead of at an output of standard deviation
    ~0.6 from the batch-normalised hidden units, tens of times the spread of monthly returns,
    which early stopping with few steps per epoch would never unlearn.

    All draws come from one ``uniform`` call sliced into the layers: the distribution is
    equinox's, but the program holds one random-number kernel instead of one or two per layer
    (threefry kernels dominate the CPU compile time of the fit).
    """
    sizes = (n_inputs, *hidden, 1)
    shapes = [(sizes[i + 1], sizes[i]) for i in range(len(sizes) - 1)]
    total = sum(o * i for o, i in shapes) + 1
    u = jax.random.uniform(key, (total,), dtype, minval=-1.0, maxval=1.0)
    weights, at = [], 0
    for o, i in shapes:
        weights.append(u[at : at + o * i].reshape(o, i) / math.sqrt(i))
        at += o * i
    weights[-1] = jnp.zeros_like(weights[-1])
    return mlp_from_arrays(weights, jnp.zeros_like(u[at:]))


def _masked_moments(
    z: Float[Array, "N H"], mask: Float[Array, " N"]
) -> tuple[Float[Array, " H"], Float[Array, "N H"], Float[Array, " H"]]:
    """Mean ``μ`` and biased variance of ``z``'s columns over the rows with ``mask > 0``, and
    ``z − μ``. Rows outside the mask must be finite (they are weighted by zero): both moments
    are matrix–vector products with the 0/1 weights, which XLA runs far faster on a CPU than
    masked column reductions (two passes, so no ``E[z²] − μ²`` cancellation)."""
    w = (mask > 0).astype(z.dtype)
    n = jnp.maximum(jnp.sum(w), 1.0)
    mu = (w @ z) / n
    d = z - mu
    return mu, d, (w @ (d * d)) / n


def forward(
    net: MLP,
    X: Float[Array, "N P"],
    mask: Float[Array, " N"] | None = None,
    stats: BNStats | None = None,
) -> tuple[Float[Array, " N"], BNStats]:
    """The network's forecast for every row of ``X`` and the BN statistics it used.

    Give either ``mask`` (statistics over the rows with ``mask > 0``, recomputed layer by
    layer: a mini-batch in training, a window's training rows for evaluation; rows outside the
    mask must be finite) or ``stats`` (fixed statistics, e.g. those stored in
    :class:`NNParams`).
    """
    h = X
    means, variances = [], []
    for i, lin in enumerate(net.hidden):
        z = h @ lin.weight.T
        if stats is None:
            mu, d, var = _masked_moments(z, mask)
        else:
            mu, var = stats.mean[i], stats.var[i]
            d = z - mu
        means.append(mu)
        variances.append(var)
        h = jax.nn.relu(d * (net.scale[i] * jax.lax.rsqrt(var + BN_EPS)) + net.shift[i])
    y_hat = (h @ net.out.weight.T + net.out.bias)[:, 0]
    return y_hat, BNStats(tuple(means), tuple(variances))


def l1_norm(net: MLP) -> Float[Array, ""]:
    """``Σ|W|`` over the weight matrices of all layers (biases and BN parameters excluded)."""
    ws = [lin.weight for lin in net.hidden] + [net.out.weight]
    return sum(jnp.sum(jnp.abs(w)) for w in ws)


def nn_loss(
    net: MLP,
    X: Float[Array, "S P"],
    y: Float[Array, " S"],
    mask: Float[Array, " S"],
    l1: Float[Array, ""],
) -> Float[Array, ""]:
    """GKX's training objective on one mini-batch: the MSE over the rows with ``mask > 0``
    (BN statistics over those rows too) plus ``l1 · Σ|W|``."""
    y_hat, _ = forward(net, X, mask=mask)
    return _masked_mse(y, y_hat, mask) + l1 * l1_norm(net)


def _masked_mse(y, y_hat, mask):
    """Mean of ``(y − ŷ)²`` over the rows with ``mask > 0``; other rows (even NaN) ignored."""
    ok = mask > 0
    d = jnp.where(ok, y - y_hat, 0.0)
    return jnp.sum(d * d) / jnp.maximum(jnp.sum(ok), 1).astype(y_hat.dtype)


def ensemble_predict(params: NNParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
    """The ensemble-average forecast: each member with its stored population statistics."""
    preds = jax.vmap(lambda net, st: forward(net, X, stats=st)[0])(params.net, params.stats)
    return jnp.mean(preds, axis=0)
