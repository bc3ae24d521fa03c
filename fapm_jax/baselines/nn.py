"""Feed-forward neural networks NN1–NN5 (GKX 2020, section 1.7; Internet Appendix Table A.5):
the model of the comparison suite; the network itself is :mod:`~fapm_jax.baselines.mlp`.

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

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..core.engine import epoch_updates, improved, tree_where
from ..core.masked import compact_rows, shuffled_batches
from .base import AbstractJaxModel, Fit, choose
from .mlp import (  # re-exported: the network's names are also this module's
    BN_EPS as BN_EPS,
)
from .mlp import (
    MLP as MLP,
)
from .mlp import (
    BNStats as BNStats,
)
from .mlp import (
    MemberFit as MemberFit,
)
from .mlp import (
    NNInfo as NNInfo,
)
from .mlp import (
    NNParams as NNParams,
)
from .mlp import (
    _masked_mse,
)
from .mlp import (
    ensemble_predict as ensemble_predict,
)
from .mlp import (
    forward as forward,
)
from .mlp import (
    init_mlp as init_mlp,
)
from .mlp import (
    l1_norm as l1_norm,
)
from .mlp import (
    mlp_from_arrays as mlp_from_arrays,
)
from .mlp import (
    nn_loss as nn_loss,
)

#: Hidden layer widths of NN1–NN5 (GKX section 1.7: a geometric pyramid from 32 units).
NN_HIDDEN: dict[str, tuple[int, ...]] = {
    "NN1": (32,),
    "NN2": (32, 16),
    "NN3": (32, 16, 8),
    "NN4": (32, 16, 8, 4),
    "NN5": (32, 16, 8, 4, 2),
}

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


class NN(AbstractJaxModel):
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

        def loss_and_grad(theta, batch):
            idx, slot_ok = batch
            mb = (slot_ok & (tr_ok[idx] > 0)).astype(dtype)
            loss, grads = grad_fn(theta, Xt[idx], yt[idx], mb, l1)
            return (loss, jnp.sum(mb) > 0), grads

        def body(s: _State) -> _State:
            e = s.epoch + 1
            batches = shuffled_batches(keys[e], tr_ok, size, n_batches)
            theta, opt_state, ok = epoch_updates(
                tx, s.theta, s.opt_state, jnp.asarray(True), loss_and_grad, batches, n_batches
            )
            v = valid_mse(theta)
            ok = ok & jnp.isfinite(v)
            better = improved(-v, -s.best_mse, ok)
            best_epoch = jnp.where(better, e, s.best_epoch)
            return _State(
                theta=theta,
                opt_state=opt_state,
                best_theta=tree_where(better, theta, s.best_theta),
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
