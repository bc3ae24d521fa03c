"""Penalised FAPM (MAP): L2, L1 and group-L1 penalties on ``w``, ``V`` and ``d``.

The trained objective of a window becomes ``1 − R²_is + P(θ)`` with

    P = λ2w ‖w‖² + λ2v ‖V‖² + λ2d ‖d‖² + λ1w Σ|w_i| + λ1d Σ|d_i| + λgv Σ_i ‖v_i‖,

``w0`` unpenalised. Because the data term is divided by ``Σ r²`` (the R² loss of section 2.3),
a weight ``λ`` here is ``λ · Σ r²`` in the units of a sum of squared errors (scikit-learn's
``Ridge(alpha=λ Σr²)``; ``Lasso(alpha=λ Σr² / (2N))``). The group norm makes a factor take part
in interactions or not (the whole ``v_i`` is zero); the L1 terms select first-order and
self-interaction weights.

The smooth L2 part enters the gradient; the L1 and group-L1 parts are applied by their
proximal operators after each optimizer step, with the step's learning rate (the linear part's
scaled by ``TrainConfig.linear_lr_scale``) in the optimizer's own metric — with plain gradient
descent this is the proximal gradient method (ISTA), whose fixed point is the exact penalised
optimum; with Adam the threshold of each coordinate is scaled by Adam's step multiplier
``1/(√v̂ + ε)`` (scaled proximal gradient), whose fixed points are also the lasso's. The
weights are arrays in :class:`~fapm_jax.core.config.Hyper` (``Hyper.penalty``), so a sweep
over them is one compiled program and changing them compiles nothing. Each weight is a scalar
or, per factor group (characteristics, macro predictors, SIC2 dummies …), an ``[n]`` vector:
``λ Σ|w_i|`` becomes ``Σ λ_i |w_i|`` and so on (``"l1_w@macro"`` keys, :func:`penalty_of`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float

from .errors import ConfigError
from .model import FAPMParams

PENALTY_FIELDS = ("l2_w", "l2_v", "l2_d", "l1_w", "l1_d", "group_v")


class Penalty(NamedTuple):
    """Penalty weights of one setting (``0`` switches a term off): scalars, or ``[n]`` vectors
    — one weight per factor, from per-group weights (:func:`penalty_of` with ``groups``)."""

    l2_w: Float[Array, ""]
    l2_v: Float[Array, ""]
    l2_d: Float[Array, ""]
    l1_w: Float[Array, ""]
    l1_d: Float[Array, ""]
    group_v: Float[Array, ""]


def penalty_of(values: dict | None = None, dtype=jnp.float32, groups=None) -> Penalty:
    """A :class:`Penalty` from a ``{term: weight}`` dict (missing terms: 0).

    With ``groups`` (a group label per factor, e.g. ``("char", …, "macro", …)``) every weight
    is an ``[n]`` vector and a key ``"term@group"`` sets ``term``'s weight for that group's
    factors (the others keep ``term``'s weight): e.g. ``{"group_v": 0.03, "group_v@macro":
    0.01}`` lets the macro predictors interact at a third of the characteristics' price."""
    values = dict(values or {})
    terms = {k.split("@", 1)[0] for k in values}
    unknown = sorted(terms - set(PENALTY_FIELDS))
    if unknown:
        raise ConfigError(
            f"penalty: unknown term(s) {', '.join(unknown)}; known: {', '.join(PENALTY_FIELDS)}"
        )
    scoped = [k for k in values if "@" in k]
    if groups is None:
        if scoped:
            raise ConfigError(f"penalty: {scoped[0]!r} names a factor group, but no factor groups were given")
        return Penalty(*(jnp.asarray(values.get(f, 0.0), dtype) for f in PENALTY_FIELDS))
    groups = [str(g) for g in groups]
    for k in scoped:
        if k.split("@", 1)[1] not in groups:
            known = sorted(set(groups))
            raise ConfigError(f"penalty: {k!r}: no factor group {k.split('@', 1)[1]!r}; groups: {known}")
    out = []
    for f in PENALTY_FIELDS:
        base = values.get(f, 0.0)
        out.append(jnp.asarray([values.get(f"{f}@{g}", base) for g in groups], dtype))
    return Penalty(*out)


def smooth_penalty(params: FAPMParams, pen: Penalty) -> Float[Array, ""]:
    """The differentiable (L2) part of ``P``."""
    out = jnp.sum(pen.l2_w * params.w * params.w) + jnp.sum(pen.l2_v[..., None] * params.V * params.V)
    if params.d is not None:
        out = out + jnp.sum(pen.l2_d * params.d * params.d)
    return out


def nonsmooth_penalty(params: FAPMParams, pen: Penalty) -> Float[Array, ""]:
    """The L1 and group-L1 part of ``P`` (applied by :func:`prox`)."""
    out = jnp.sum(pen.l1_w * jnp.abs(params.w)) + jnp.sum(pen.group_v * _row_norms(params.V))
    if params.d is not None:
        out = out + jnp.sum(pen.l1_d * jnp.abs(params.d))
    return out


def penalty_value(params: FAPMParams, pen: Penalty) -> Float[Array, ""]:
    """``P(θ)``: what the penalised objective adds to ``1 − R²``."""
    return smooth_penalty(params, pen) + nonsmooth_penalty(params, pen)


def _row_norms(V: Float[Array, "n k"]) -> Float[Array, " n"]:
    return jnp.sqrt(jnp.sum(V * V, axis=-1))


def soft_threshold(x: Float[Array, ...], t: Float[Array, ""]) -> Float[Array, ...]:
    """The proximal operator of ``t Σ|x_i|``."""
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0.0)


def group_shrink(V: Float[Array, "n k"], t: Float[Array, "*n"]) -> Float[Array, "n k"]:
    """The proximal operator of ``t Σ_i ‖v_i‖``: each row shrunk towards 0 by ``t`` (or its own
    ``t_i``) in norm."""
    norm = _row_norms(V)
    factor = jnp.where(norm > t, 1.0 - t / jnp.where(norm > 0, norm, 1.0), 0.0)
    return V * factor[:, None].astype(V.dtype)


def prox(
    params: FAPMParams,
    pen: Penalty,
    step: Float[Array, ""],
    linear_step: Float[Array, ""],
    metric: FAPMParams | None = None,
) -> FAPMParams:
    """The proximal step of the non-smooth terms after an optimizer step of size ``step``
    (``linear_step`` for ``w``, whose learning rate is scaled).

    ``metric`` (``None``: plain gradient steps): the optimizer's per-coordinate step multiplier
    ``D`` (:func:`~fapm_jax.core.engine.preconditioner`), so that the threshold of coordinate
    ``i`` is ``step · λ · D_i`` — the scaled proximal step of an adaptive method. The group
    norm has no closed-form prox in a diagonal metric; each row uses the mean of its ``D``."""
    dt = params.w.dtype
    Dw = 1.0 if metric is None else metric.w
    Dv = 1.0 if metric is None else jnp.mean(metric.V, axis=-1)
    w = soft_threshold(params.w, (linear_step * pen.l1_w * Dw).astype(dt))
    V = group_shrink(params.V, (step * pen.group_v * Dv).astype(dt))
    d = None
    if params.d is not None:
        Dd = 1.0 if metric is None else metric.d
        d = soft_threshold(params.d, (step * pen.l1_d * Dd).astype(dt))
    return FAPMParams(w0=params.w0, w=w, V=V, d=d)
