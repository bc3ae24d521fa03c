"""Training configuration (Algorithm 2): :class:`TrainConfig`, a frozen dataclass whose
defaults are the package's FAPM recipe, and :class:`Hyper`, one sweep setting as arrays so that
settings can be ``vmap``-ed (:func:`sweep_grid`)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .errors import ConfigError
from .model import PRECISIONS
from .penalties import PENALTY_FIELDS, Penalty, penalty_of

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "lamb")


LOSSES = ("r2", "huber")

#: FAPM's estimators (:mod:`~fapm_jax.studies.estimators`): the paper's training recipe,
#: penalised FAPM tuned per window, and the seed ensemble.
ESTIMATORS = ("paper", "map", "ensemble")

#: Where a rolling run's forecast level comes from (:func:`~fapm_jax.studies.rolling.run_rolling`):
#: the model (the paper), or each window's training mean with the model fit to each month's
#: cross-sectional deviations (no timing of the market's level).
LEVELS = ("model", "train-mean")


#: How :func:`fit_windows` trains: on the panel's rows, or from per-window moments
#: (:mod:`~fapm_jax.core.moments`: full-batch R² loss, small factor sets; the same models), or
#: ``"auto"``: moments where they apply and fit memory.
METHODS = ("rows", "moments", "auto")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training options (Algorithm 2). The paper does not publish its rank, learning rate or
    epoch count; the defaults are ours, chosen on the simulated panel (docs/training.md).

    Attributes:
        rank: ``k``, the number of latent dimensions of ``V``.
        learning_rate: optimizer step size.
        epochs: passes over each window's training rows.
        batch_size: rows per step; ``None`` is full batch (one step per epoch).
        init_scale: standard deviation of the normal draw of ``V``.
        optimizer: an optax optimizer name, one of :data:`OPTIMIZERS`.
        loss: ``"r2"`` (the paper's ``1 − R²_is``) or ``"huber"`` (GKX's "+H").
        huber_quantile: with ``loss="huber"`` and no ``huber_delta``, the threshold is this
            quantile of the OLS start's absolute training residuals (GKX use 99.9%).
        huber_delta: a fixed Huber threshold, overriding ``huber_quantile``.
        seed: the root of every random draw (``V`` and mini-batch order).
        linear_lr_scale: multiplier of the learning rate of the linear part ``(w0, w)``.
            The linear part starts at its OLS optimum and its coefficients are an order of
            magnitude smaller than the latent vectors ``v_i``; Adam moves every parameter by
            about ``learning_rate`` per step whatever its scale, so a full-size step knocks
            the OLS start off its optimum. 1.0 treats all parameters alike.
        self_interactions: add ``x_i²`` terms with free weights ``d`` (starting at 0) to the
            model (:class:`~fapm_jax.core.model.FAPMParams`); the paper's FAPM has none.
        chunk_rows: full-batch training reads the panel in chunks of this many rows
            (:mod:`~fapm_jax.core.rowpass`), which bounds its temporaries and sets its speed;
            ``None``: by backend (:func:`~fapm_jax.core.rowpass.default_chunk_rows`: 8192 rows on a
            CPU, 131072 on an accelerator). The fitted models do not depend on it beyond float
            rounding.
        precision: arithmetic of the training products (:data:`~fapm_jax.core.model.PRECISIONS`):
            ``"highest"`` (default) the panel's own precision — float32 products, not the
            TF32 a GPU would otherwise use; ``"tf32"`` a GPU's tensor cores (on a CPU the same
            roundings, emulated, to measure their effect); ``"bfloat16"`` bfloat16 operands,
            accumulated in the panel's precision. The row trainer only; predictions after
            training are computed at ``"highest"``.
        settings_batch: a sweep's settings trained this many at a time (``None``: all side
            by side): peak memory of about ``settings_batch`` settings' intermediates instead of
            all of them (row and moment trainers, on one device or per device of a mesh). The
            same models up to float rounding — which in float32 can flip a window's choice
            between near-tied settings (``python -m benchmarks --only settings``).
        estimator: which estimator a rolling run trains (:data:`ESTIMATORS`): ``"paper"``
            (this recipe), ``"map"`` (penalised, tuned per window), ``"ensemble"`` (seeds
            averaged); :func:`~fapm_jax.studies.estimators.make_estimator`.
        level: where the forecast's level comes from (:data:`LEVELS`): ``"model"`` (the paper:
            FAPM forecasts ``r``) or ``"train-mean"`` (FAPM is fit to ``r − r̄_t``, each month's
            deviation from its cross-sectional mean, and every forecast of a window adds that
            window's mean training return: the model prices the cross-section and does not time
            the market, whose out-of-sample predictability by the macro predictors is weak,
            Welch and Goyal 2008); :func:`~fapm_jax.studies.rolling.run_rolling`.
        l2_w, l2_v, l2_d, l1_w, l1_d, group_v: penalty weights of penalised FAPM (MAP,
            :mod:`~fapm_jax.core.penalties`): L2 on ``w``, ``V``, ``d``; L1 on ``w``, ``d``; the
            group norm of each latent vector ``v_i``. All 0 (the paper's FAPM) by default; they
            travel as arrays (``Hyper.penalty``), so :func:`sweep_grid` can sweep them.
    """

    rank: int = 4
    learning_rate: float = 1e-3
    epochs: int = 100
    batch_size: int | None = None
    init_scale: float = 0.01
    optimizer: str = "adam"
    loss: str = "r2"
    huber_quantile: float = 0.999
    huber_delta: float | None = None
    seed: int = 0
    linear_lr_scale: float = 0.1
    self_interactions: bool = False
    chunk_rows: int | None = None
    precision: str = "highest"
    l2_w: float = 0.0
    l2_v: float = 0.0
    l2_d: float = 0.0
    l1_w: float = 0.0
    l1_d: float = 0.0
    group_v: float = 0.0
    #: Read by :mod:`~fapm_jax.studies` (which settings a rolling run trains, which target it
    #: fits), not by the trainer: out of ``repr`` so that the fingerprints of saved results stay
    #: valid, and out of ``==`` / ``hash`` so that the trainer's compiled programs (the config is
    #: a static argument) are shared across them.
    estimator: str = dataclasses.field(default="paper", repr=False, compare=False)
    level: str = dataclasses.field(default="model", repr=False, compare=False)
    #: The memory budget of a sweep: train ``settings_batch`` settings at a time (a scan over
    #: groups of vmapped settings, :func:`~fapm_jax.core.engine.over_settings`) instead of all
    #: side by side (``None``). The same models up to float rounding, so out of ``repr`` (saved
    #: results stay valid); in ``==`` / ``hash``: it is the compiled program's structure.
    settings_batch: int | None = dataclasses.field(default=None, repr=False)

    def penalty(self) -> dict[str, float]:
        """The nonzero penalty weights (:mod:`~fapm_jax.core.penalties`)."""
        return {f: getattr(self, f) for f in PENALTY_FIELDS if getattr(self, f) != 0.0}

    def __post_init__(self):
        def bad(name, why):
            raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r}: {why}")

        if not isinstance(self.rank, int) or self.rank < 1:
            bad("rank", "must be a positive integer")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            bad("learning_rate", "must be a positive finite number")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            bad("epochs", "must be a positive integer")
        if self.settings_batch is not None and (
            not isinstance(self.settings_batch, int) or self.settings_batch < 1
        ):
            bad("settings_batch", "must be a positive integer or None (every setting at once)")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            bad("batch_size", "must be a positive integer or None (full batch)")
        if not (self.init_scale >= 0 and math.isfinite(self.init_scale)):
            bad("init_scale", "must be a non-negative finite number")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        if self.loss not in LOSSES:
            bad("loss", f"must be one of {', '.join(LOSSES)}")
        if not 0.5 <= self.huber_quantile < 1:
            bad("huber_quantile", "must lie in [0.5, 1)")
        if self.huber_delta is not None and not self.huber_delta > 0:
            bad("huber_delta", "must be positive")
        if not (self.linear_lr_scale >= 0 and math.isfinite(self.linear_lr_scale)):
            bad("linear_lr_scale", "must be a non-negative finite number")
        if self.chunk_rows is not None and (not isinstance(self.chunk_rows, int) or self.chunk_rows < 1):
            bad("chunk_rows", "must be a positive integer or None (by backend)")
        if self.precision not in PRECISIONS:
            bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.estimator not in ESTIMATORS:
            bad("estimator", f"must be one of {', '.join(ESTIMATORS)}")
        if self.level not in LEVELS:
            bad("level", f"must be one of {', '.join(LEVELS)}")
        for f in PENALTY_FIELDS:
            v = getattr(self, f)
            if not (isinstance(v, int | float) and v >= 0 and math.isfinite(v)):
                bad(f, "must be a non-negative finite number (a penalty weight)")


class Hyper(NamedTuple):
    """One hyperparameter setting as arrays, so that settings can be ``vmap``-ed.

    ``rank_mask`` switches latent columns on (1) or off (0); a sweep over ranks pads ``V`` to
    the largest rank. ``features`` (``None``: every factor) switches factors on or off per
    window, ``[W, n]`` for all windows (one window's trainer sees its row ``[n]``): the
    FAPM-m subsets (:mod:`~fapm_jax.studies.fapm_m`), chosen inside each window. ``epochs``
    (``None``: ``config.epochs``) stops a setting after that many epochs, so a sweep over
    epoch budgets runs in one program of ``max(epochs)`` epochs; a stopped setting keeps its
    state (its best-on-validation model among its own epochs). ``penalty`` (``None``: the
    paper's unpenalised loss) holds the penalty weights of penalised FAPM
    (:mod:`~fapm_jax.core.penalties`). ``solve_steps`` (``None``: none) adds, after the epochs,
    the penalised objective minimised to convergence from the last iterate, in at most that
    many proximal-gradient iterations (:mod:`~fapm_jax.core.solve`; moment trainer), as one
    more candidate of the best-on-validation rule.
    """

    learning_rate: Float[Array, ""]
    init_scale: Float[Array, ""]
    rank_mask: Float[Array, " k"]
    seed: Int[Array, ""]
    features: Float[Array, "W n"] | None = None
    epochs: Int[Array, ""] | None = None
    penalty: Penalty | None = None
    solve_steps: Int[Array, ""] | None = None


def hyper_from_config(config: TrainConfig, max_rank: int | None = None) -> Hyper:
    """The single setting described by ``config`` (``V`` padded to ``max_rank``)."""
    k = max_rank or config.rank
    return Hyper(
        learning_rate=jnp.asarray(config.learning_rate, jnp.float32),
        init_scale=jnp.asarray(config.init_scale, jnp.float32),
        rank_mask=(jnp.arange(k) < config.rank).astype(jnp.float32),
        seed=jnp.asarray(config.seed, jnp.int32),
        penalty=penalty_of(config.penalty()) if config.penalty() else None,
    )


def sweep_grid(
    config: TrainConfig,
    *,
    ranks: Sequence[int] | None = None,
    learning_rates: Sequence[float] | None = None,
    init_scales: Sequence[float] | None = None,
    seeds: Sequence[int] | None = None,
    epochs: Sequence[int] | None = None,
    penalties: Sequence[dict] | None = None,
    groups: Sequence[str] | None = None,
    solve_steps: int | None = None,
) -> tuple[Hyper, list[dict]]:
    """The Cartesian grid of settings as a batched :class:`Hyper` ``[S]`` and its labels.

    Unspecified axes take the value in ``config``. With ``epochs``, train with
    ``config.epochs = max(epochs)``: each setting stops after its own budget (``Hyper.epochs``).
    ``penalties``: a list of ``{term: weight}`` dicts (terms of
    :data:`~fapm_jax.core.penalties.PENALTY_FIELDS`; ``{}`` is unpenalised) replacing
    ``config``'s penalty weights, e.g. ``[{}, {"group_v": 1e-4}, {"l1_w": 1e-5, "l2_v": 1e-3}]``.
    ``groups`` (a group label per factor): the weights become per-factor vectors and a term may
    be priced per group, ``{"group_v": 0.03, "group_v@macro": 0.01}``
    (:func:`~fapm_jax.core.penalties.penalty_of`). ``solve_steps``: every setting also gets its
    penalised optimum as a candidate (:attr:`Hyper.solve_steps`).
    """
    if solve_steps is not None and not (isinstance(solve_steps, int) and solve_steps >= 0):
        raise ConfigError(f"sweep_grid: solve_steps must be a non-negative integer, got {solve_steps!r}")
    ranks = list(ranks or [config.rank])
    lrs = list(learning_rates or [config.learning_rate])
    scales = list(init_scales or [config.init_scale])
    seeds = list(seeds if seeds is not None else [config.seed])
    budgets = list(epochs or [config.epochs])
    for name, vals in (
        ("ranks", ranks),
        ("learning_rates", lrs),
        ("init_scales", scales),
        ("epochs", budgets),
    ):
        if any(not (v > 0 or (name == "init_scales" and v == 0)) for v in vals):
            raise ConfigError(f"sweep_grid: {name} must be positive, got {vals}")
    if any(int(e) != e for e in budgets + ranks):
        raise ConfigError(f"sweep_grid: ranks and epochs must be integers, got {ranks} and {budgets}")
    pens = [dict(p) for p in penalties] if penalties is not None else [config.penalty()]
    for p in pens:
        penalty_of(p, groups=groups)  # unknown terms or groups: one line
        if any(not (v >= 0 and math.isfinite(v)) for v in p.values()):
            raise ConfigError(f"sweep_grid: penalty weights must be non-negative, got {p}")
    k_max = max(ranks)
    points = []
    for k, lr, s, sd, e, pen in itertools.product(ranks, lrs, scales, seeds, budgets, pens):
        point = dict(rank=int(k), learning_rate=float(lr), init_scale=float(s), seed=int(sd), epochs=int(e))
        if penalties is not None:  # the weights as TrainConfig's fields, every term named
            point.update({f: float(pen.get(f, 0.0)) for f in PENALTY_FIELDS})
            point.update({k: float(v) for k, v in pen.items() if "@" in k})
        points.append(point)
    any_penalty = any(pens)
    hypers = [
        hyper_from_config(
            dataclasses.replace(config, **{k: v for k, v in p.items() if k != "epochs" and "@" not in k}),
            k_max,
        )._replace(
            epochs=jnp.asarray(p["epochs"], jnp.int32) if epochs else None,
            penalty=penalty_of(pen, groups=groups) if any_penalty else None,
            solve_steps=None if solve_steps is None else jnp.asarray(solve_steps, jnp.int32),
        )
        for p, pen in zip(
            points, (pen for *_, pen in itertools.product(ranks, lrs, scales, seeds, budgets, pens))
        )
    ]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *hypers), points


def n_batches_for(config: TrainConfig, train_masks: np.ndarray) -> int:
    """Mini-batches per epoch: enough for the largest training set among the windows."""
    if config.batch_size is None:
        return 1
    return max(1, math.ceil(int(np.asarray(train_masks).sum(axis=-1).max()) / config.batch_size))
