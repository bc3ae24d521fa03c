"""Feed-forward neural networks NN1–NN5 (GKX 2020, section 1.7; Internet Appendix Table A.5).

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
  weights (a full pass over the window's training rows). The statistics of the returned (best-on-validation) network
  are stored with it in :class:`BNStats`, so :meth:`NN.predict` needs no training mask.

This equals the running-average scheme in its limit (its running averages estimate exactly
these population moments), has no momentum hyperparameter, and makes the fit a pure function
of ``(X, y, masks, key)``.

Training (Table A.5). Loss: mean squared error over the mini-batch's valid rows plus
``λ1 · Σ|W|`` over the weight matrices of every layer (not biases, not BN scale/shift). Adam
with default betas; batch size 10000; at most 100 epochs; early stopping with patience 5 on
the validation MSE, keeping the best-validation parameters. The initialised network (epoch 0)
is the first candidate, so a member that diverges in its first epoch still returns finite
parameters; a member stops once ``patience`` epochs pass without a strict improvement. An
ensemble of 10 networks from different seeds is averaged (GKX section 1.7). Hyperparameters:
``λ1 ∈ {1e-5, 1e-3}`` × learning rate ``∈ {0.001, 0.01}``, chosen by the validation SSE of
the ensemble-average forecast (:func:`~fapm_jax.baselines.base.choose`).

Batching. :meth:`NN.fit` is written for one data set and one window (0/1 row masks over the
full ``X``); inside, members × grid points are one ``vmap``-ed program, and
:func:`~fapm_jax.baselines.base.fit_rolling` vmaps ``fit`` over windows. A member's training
is a ``lax.while_loop`` over epochs (continue while ``epoch < epochs`` and not stopped); under
``vmap`` the loop runs until every member has stopped and a stopped member's carry is frozen,
so the result equals per-member early stopping. The number of mini-batches per epoch is
static: ``ceil(N / batch_size)`` (every window's training rows are at most ``N``) or the
``n_batches`` field; slots of the shuffled order that hold no training row are skipped, and a
batch without any training row makes no optimizer step. A member gathers its window's
training and validation rows once into static blocks (:func:`~fapm_jax.core.masked.compact_rows`;
``n_batches · batch_size`` and ``n_valid`` slots), so every epoch's shuffle, BN population pass
and validation pass touch those rows only, not the whole panel —
:func:`~fapm_jax.studies.comparison.run_comparison` sizes both from the largest window.

Divergence. A step whose loss or new parameters are non-finite is discarded and the member is
frozen (flagged ``diverged``) with its best parameters; a non-finite validation MSE counts as
divergence. Non-finite validation SSEs of the ensemble never win in ``choose``.

Randomness. Member ``m`` uses ``jax.random.fold_in(key, m)`` for its initial weights and
mini-batch order, the same for every grid point (grid points then differ only in their
hyperparameters); the order of epoch ``e`` is drawn from ``fold_in(shuffle_key, e)``. The same
key gives a bitwise identical fit.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..core.masked import compact_rows, shuffled_batches
from .base import Fit, choose

#: Hidden layer widths of NN1–NN5 (GKX section 1.7: a geometric pyramid from 32 units).
NN_HIDDEN: dict[str, tuple[int, ...]] = {
    "NN1": (32,),
    "NN2": (32, 16),
    "NN3": (32, 16, 8),
    "NN4": (32, 16, 8, 4),
    "NN5": (32, 16, 8, 4, 2),
}

#: Variance offset ``ε`` of batch normalisation (PyTorch's default; Keras uses 1e-3).
BN_EPS = 1e-5


# ----------------------------------------------------------------------------- the network


class MLP(eqx.Module):
    """A ReLU network with batch-normalised hidden units and a linear output.

    ``hidden[i]`` (a bias-free ``Linear``) maps layer ``i``'s input to its pre-activation
    ``z``; ``scale[i]`` and ``shift[i]`` are the learnable BN parameters ``γ, β`` of
    ``relu(γ·(z − μ)/√(σ² + ε) + β)``; ``out`` maps the last hidden layer (or the inputs, with no hidden layer) to the forecast.
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


def _select(pred, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(pred, x, y), a, b)


def ensemble_predict(params: NNParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
    """The ensemble-average forecast: each member with its stored population statistics."""
    preds = jax.vmap(lambda net, st: forward(net, X, stats=st)[0])(params.net, params.stats)
    return jnp.mean(preds, axis=0)


# ----------------------------------------------------------------------------- the model


class _State(NamedTuple):
    theta: Float[Array, " D"]  # the network, raveled
    opt_state: optax.OptState
    best_theta: Float[Array, " D"]
    best_mse: Float[Array, ""]
    best_epoch: Int[Array, ""]
    epoch: Int[Array, ""]
    stopped: Bool[Array, ""]
    diverged: Bool[Array, ""]
    history: Float[Array, " E1"]


@dataclasses.dataclass(frozen=True)
class NN:
    """A GKX neural network ``NNk`` with its Table A.5 grid (frozen: static under ``jit``).

    Attributes:
        name: the label in tables (``"NN1"`` … ``"NN5"``).
        hidden: hidden layer widths.
        l1: the grid of L1 penalties ``λ1`` on the weight matrices.
        learning_rates: the grid of Adam learning rates.
        batch_size: rows per mini-batch (GKX: 10000); a training set smaller than this is one
            batch per epoch.
        epochs: the most epochs per member (GKX: 100).
        patience: early stopping after this many epochs without a validation improvement.
        ensemble: members (seeds) averaged per grid point (GKX: 10).
        n_batches: mini-batches per epoch; ``None``: ``ceil(N / batch_size)`` for an ``X`` of
            ``N`` rows, which covers any window's training rows. Set it smaller when every
            window's training set is known to be smaller than ``N`` (saves empty batches);
            ``n_batches · batch_size`` must cover the largest training set (rows beyond are
            never used).
        n_valid: validation slots (at least the largest validation set); ``None``: ``N``.
    """

    name: str = "NN3"
    hidden: tuple[int, ...] = (32, 16, 8)
    l1: tuple[float, ...] = (1e-5, 1e-3)
    learning_rates: tuple[float, ...] = (1e-3, 1e-2)
    batch_size: int = 10000
    epochs: int = 100
    patience: int = 5
    ensemble: int = 10
    n_batches: int | None = None
    n_valid: int | None = None
    is_jax: bool = True

    def __post_init__(self):
        def bad(field, why):
            raise ValueError(f"NN.{field}={getattr(self, field)!r}: {why}")

        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            bad("hidden", "widths must be positive integers")
        if not self.l1 or any(not (v >= 0 and math.isfinite(v)) for v in self.l1):
            bad("l1", "must be a non-empty tuple of non-negative numbers")
        if not self.learning_rates or any(not (v > 0 and math.isfinite(v)) for v in self.learning_rates):
            bad("learning_rates", "must be a non-empty tuple of positive numbers")
        for f in ("batch_size", "epochs", "ensemble"):
            if not isinstance(getattr(self, f), int) or getattr(self, f) < 1:
                bad(f, "must be a positive integer")
        if not isinstance(self.patience, int) or self.patience < 1:
            bad("patience", "must be a positive integer")
        for f in ("n_batches", "n_valid"):
            v = getattr(self, f)
            if v is not None and (not isinstance(v, int) or v < 1):
                bad(f, "must be a positive integer or None")

    # -- grid ---------------------------------------------------------------------------------

    def grid(self) -> list[tuple[float, float]]:
        """The grid points ``(λ1, learning rate)`` in the order of ``Fit.valid_sse``/``choice``
        (``λ1`` outer, learning rate inner)."""
        return list(itertools.product(self.l1, self.learning_rates))

    def _batching(self, n_rows: int) -> tuple[int, int]:
        """Static ``(batch slots, batches per epoch)`` for an ``X`` of ``n_rows`` rows."""
        size = min(self.batch_size, n_rows)
        n = self.n_batches if self.n_batches is not None else math.ceil(n_rows / size)
        return size, n

    # -- one member ---------------------------------------------------------------------------

    def train_member(
        self,
        X: Float[Array, "N P"],
        y: Float[Array, " N"],
        train: Float[Array, " N"],
        valid: Float[Array, " N"],
        key: PRNGKeyArray,
        l1: Float[Array, ""],
        learning_rate: Float[Array, ""],
    ) -> MemberFit:
        """Train one network (one seed, one grid point) with early stopping.

        ``key`` seeds both the initial weights and the mini-batch order. A ``lax.while_loop``
        over epochs: each epoch is a ``lax.scan`` of Adam steps over the shuffled training
        rows, then the validation MSE (BN statistics over all training rows) decides whether
        the network is the new best and whether to stop. The window's training and
        validation rows are gathered once (they do not depend on the member, so under
        ``vmap`` over members the gather is shared).
        """
        dtype = X.dtype
        l1 = jnp.asarray(l1, dtype)
        size, n_batches = self._batching(X.shape[0])
        tr_idx, tr_ok = compact_rows(train, size * n_batches)
        va_idx, va_ok = compact_rows(valid, self.n_valid or X.shape[0])
        Xt = jnp.where(tr_ok[:, None], X[tr_idx], 0.0)
        yt = jnp.where(tr_ok, y[tr_idx].astype(dtype), 0.0)
        Xv = jnp.where(va_ok[:, None], X[va_idx], 0.0)
        yv = jnp.where(va_ok, y[va_idx].astype(dtype), 0.0)
        tr_ok = tr_ok.astype(dtype)
        va_ok = va_ok.astype(dtype)
        keys = jax.random.split(key, self.epochs + 1)  # [0]: weights; [e]: epoch e's order
        tx = optax.adam(learning_rate=jnp.asarray(learning_rate, dtype))
        net0 = init_mlp(keys[0], X.shape[1], self.hidden, dtype)
        # Train on the flat parameter vector: one Adam/select kernel instead of one per leaf
        # (the same arithmetic, elementwise; a much smaller program to compile).
        theta0, unravel = ravel_pytree(net0)
        grad_fn = jax.value_and_grad(lambda th, *a: nn_loss(unravel(th), *a))

        def valid_mse(theta):
            net = unravel(theta)
            _, stats = forward(net, Xt, mask=tr_ok)
            y_hat, _ = forward(net, Xv, stats=stats)
            return _masked_mse(yv, y_hat, va_ok)

        def step(carry, batch):
            theta, opt_state, ok = carry
            idx, slot_ok = batch
            mb = (slot_ok & (tr_ok[idx] > 0)).astype(dtype)
            Xb = Xt[idx]
            yb = yt[idx]
            loss, grads = grad_fn(theta, Xb, yb, mb, l1)
            updates, new_opt = tx.update(grads, opt_state, theta)
            new_theta = theta + updates
            has_rows = jnp.sum(mb) > 0
            finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(new_theta))
            take = ok & has_rows & finite
            theta = jnp.where(take, new_theta, theta)
            opt_state = _select(take, new_opt, opt_state)
            return (theta, opt_state, ok & (finite | ~has_rows)), None

        def body(s: _State) -> _State:
            e = s.epoch + 1
            batches = shuffled_batches(keys[e], tr_ok, size, n_batches)
            (theta, opt_state, ok), _ = jax.lax.scan(step, (s.theta, s.opt_state, jnp.asarray(True)), batches)
            v = valid_mse(theta)
            ok = ok & jnp.isfinite(v)
            better = ok & (v < s.best_mse)
            best_epoch = jnp.where(better, e, s.best_epoch)
            return _State(
                theta=theta,
                opt_state=opt_state,
                best_theta=jnp.where(better, theta, s.best_theta),
                best_mse=jnp.where(better, v, s.best_mse),
                best_epoch=best_epoch,
                epoch=e,
                stopped=~ok | (e - best_epoch >= self.patience),
                diverged=~ok,
                history=s.history.at[e].set(jnp.where(ok, v, jnp.nan)),
            )

        def cond(s: _State):
            return (s.epoch < self.epochs) & ~s.stopped

        v0 = valid_mse(theta0)
        finite0 = jnp.isfinite(v0)
        s0 = _State(
            theta=theta0,
            opt_state=tx.init(theta0),
            best_theta=theta0,
            best_mse=jnp.where(finite0, v0, jnp.inf),
            best_epoch=jnp.asarray(0, jnp.int32),
            epoch=jnp.asarray(0, jnp.int32),
            stopped=~finite0,
            diverged=~finite0,
            history=jnp.full((self.epochs + 1,), jnp.nan, dtype).at[0].set(v0),
        )
        s = jax.lax.while_loop(cond, body, s0)
        best_net = unravel(s.best_theta)
        _, stats = forward(best_net, Xt, mask=tr_ok)
        return MemberFit(
            net=best_net,
            stats=stats,
            valid_mse=s.best_mse,
            best_epoch=s.best_epoch,
            stop_epoch=s.epoch,
            diverged=s.diverged,
            valid_history=s.history,
        )

    # -- the protocol -------------------------------------------------------------------------

    def fit_with_info(
        self,
        X: Float[Array, "N P"],
        y: Float[Array, " N"],
        train: Float[Array, " N"],
        valid: Float[Array, " N"],
        key: PRNGKeyArray,
    ) -> tuple[Fit, NNInfo]:
        """:meth:`fit` plus per-(grid point, member) diagnostics (:class:`NNInfo`)."""
        dtype = X.dtype
        grid = self.grid()
        l1s = jnp.asarray([g[0] for g in grid], dtype)
        lrs = jnp.asarray([g[1] for g in grid], dtype)
        keys = jax.vmap(lambda m: jax.random.fold_in(key, m))(jnp.arange(self.ensemble))

        G, M = len(grid), self.ensemble
        # One vmap over the G·M (grid point, member) pairs; a single batch axis gives a smaller
        # program than nested vmaps (and the same arithmetic per member).
        flat = jax.vmap(lambda k, l1, lr: self.train_member(X, y, train, valid, k, l1, lr))(
            jnp.tile(keys, G), jnp.repeat(l1s, M), jnp.repeat(lrs, M)
        )
        members = jax.tree_util.tree_map(lambda a: a.reshape(G, M, *a.shape[1:]), flat)
        params = NNParams(members.net, members.stats)
        y_hat = jax.vmap(ensemble_predict, in_axes=(0, None))(params, X)  # [G, N]
        ok = valid > 0
        d = jnp.where(ok[None, :], y[None, :] - y_hat, 0.0)
        valid_sse = jnp.sum(d * d, axis=1)
        info = NNInfo(
            l1=l1s,
            learning_rate=lrs,
            valid_mse=members.valid_mse,
            best_epoch=members.best_epoch,
            stop_epoch=members.stop_epoch,
            diverged=members.diverged,
            valid_history=members.valid_history,
        )
        return choose(params, valid_sse), info

    def fit(
        self,
        X: Float[Array, "N P"],
        y: Float[Array, " N"],
        train: Float[Array, " N"],
        valid: Float[Array, " N"],
        key: PRNGKeyArray,
    ) -> Fit:
        """Train ``ensemble`` members at every grid point (one vmapped program) and keep the
        grid point whose ensemble-average forecast has the smallest validation SSE.

        ``Fit.params`` is an :class:`NNParams` with a leading ``[M]`` axis; ``Fit.valid_sse`` is
        ``[G]`` in :meth:`grid` order.
        """
        return self.fit_with_info(X, y, train, valid, key)[0]

    def predict(self, params: NNParams, X: Float[Array, "N P"]) -> Float[Array, " N"]:
        """The ensemble-average forecast with the stored population BN statistics."""
        return ensemble_predict(params, X)


def nn_family(**overrides) -> tuple[NN, ...]:
    """NN1 … NN5 with GKX's Table A.5 settings; ``overrides`` (e.g. ``epochs=20``) apply to
    all five."""
    return tuple(NN(name=name, hidden=h, **overrides) for name, h in NN_HIDDEN.items())


NN1, NN2, NN3, NN4, NN5 = nn_family()
