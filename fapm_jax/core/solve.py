"""Penalised FAPM to convergence: accelerated proximal gradient with backtracking.

The MAP objective of a window (:mod:`~fapm_jax.core.penalties`) is ``F = f + h`` with ``f`` the
data loss ``1 − R²_is`` plus the L2 terms (smooth) and ``h`` the L1 and group-L1 terms (their
proximal operators are closed-form). The epoch engine's Adam steps stop at the best validation
epoch; this solver instead minimises ``F`` until the first-order optimality condition
``0 ∈ ∇f + ∂h`` holds to a tolerance, so that a penalty weight chosen on validation prices its
own optimum rather than a point on an optimisation path.

Method: FISTA (Beck & Teboulle 2009) in its monotone form (MFISTA: the iterate never raises
``F``), with the momentum restarted whenever a step would raise ``F`` (O'Donoghue & Candès
2015), and a backtracking step, one trial per iteration: the step halves when the quadratic
upper bound fails at the trial point or ``F`` would rise, and grows by :data:`GROW` after each
step that lowered ``F``. The test is the gradient mapping ``G = (y − prox(y − s∇f(y)))/s``,
zero exactly at a stationary point of ``F``: converged when ``‖G‖_∞ ≤ tol``. ``f`` is not
convex in ``V`` (``θ`` is bilinear in the latent vectors), so the limit is a stationary point,
started from the trainer's last iterate.

Everything is a ``lax.while_loop`` with the iteration budget a value: one window and setting
here, ``vmap`` over windows and settings in the trainers; a new budget or new penalty weights
compile nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PyTree

from .model import FAPMParams, with_feature_mask, with_rank_mask
from .penalties import Penalty, nonsmooth_penalty, prox

#: Convergence tolerance on ``‖G‖_∞`` (units of the R² loss per unit of a coefficient): float32
#: moments reach it on the embedded default; float64 problems can ask for far less.
TOL = 1e-5
#: The factor by which the step grows after an accepted step (backtracking halves it).
GROW = 1.5

tree_where = optax.tree_utils.tree_where


class SolveLog(NamedTuple):
    """How a solve ended: iterations run, whether ``‖G‖_∞ ≤ tol``, the last ``‖G‖_∞`` and
    ``F`` at the solution."""

    iterations: Int[Array, ""]
    converged: Bool[Array, ""]
    residual: Float[Array, ""]
    objective: Float[Array, ""]


class _State(NamedTuple):
    x: FAPMParams  # the monotone iterate (the best point so far)
    y: FAPMParams  # the extrapolated point the next gradient is taken at
    fy: Float[Array, ""]  # f and its gradient at y
    gy: FAPMParams
    Fx: Float[Array, ""]
    t: Float[Array, ""]  # FISTA's momentum sequence
    step: Float[Array, ""]
    it: Int[Array, ""]
    residual: Float[Array, ""]
    ok: Bool[Array, ""]  # False once no finite trial point is found


def _axpy(a, x, y):
    return jax.tree_util.tree_map(lambda u, v: a * u + v, x, y)


def _dot(x, y):
    return sum(jnp.vdot(u, v) for u, v in zip(jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y)))


def _max_abs(x):
    return jnp.max(jnp.stack([jnp.max(jnp.abs(u)) for u in jax.tree_util.tree_leaves(x)]))


def solve(
    params: FAPMParams,
    f: Callable[[FAPMParams], Float[Array, ""]],
    pen: Penalty | None,
    max_iter: Int[Array, ""],
    *,
    rank_mask: Float[Array, " k"],
    features: Float[Array, " n"] | None = None,
    tol: float = TOL,
    step: float = 1.0,
) -> tuple[FAPMParams, SolveLog]:
    """Minimise ``f + h`` from ``params`` (``h``: ``pen``'s non-smooth terms; ``None``: no
    penalty, ``f`` alone) for at most ``max_iter`` iterations, keeping the rank and factor
    masks (their projections are part of the proximal step). ``f`` must include the smooth
    penalty terms. Returns the solution and its :class:`SolveLog`; a non-finite start or a
    search that finds no finite point stops with ``converged = False`` at the last good point."""
    dt = params.w.dtype
    value_and_grad = jax.value_and_grad(f)

    def h(p):
        return jnp.zeros((), dt) if pen is None else nonsmooth_penalty(p, pen).astype(dt)

    def prox_step(p, s):
        if pen is not None:
            p = prox(p, pen, s, s)
        p = with_rank_mask(p, rank_mask.astype(dt))
        return p if features is None else with_feature_mask(p, features.astype(dt))

    slack = 10 * jnp.finfo(dt).eps  # rounding allowed in the sufficient-decrease test, relative
    x0 = prox_step(params, jnp.zeros((), dt))  # the masks only
    f0, g0 = value_and_grad(x0)
    F0 = f0 + h(x0)
    init = _State(
        x=x0,
        y=x0,
        fy=f0,
        gy=g0,
        Fx=F0,
        t=jnp.ones((), dt),
        step=jnp.asarray(step, dt),
        it=jnp.zeros((), jnp.int32),
        residual=jnp.asarray(jnp.inf, dt),
        ok=jnp.isfinite(F0),
    )

    def cond(st):
        return st.ok & (st.it < max_iter) & ~(st.residual <= tol)

    def body(st):
        # one trial step per iteration (under vmap every lane does the same work): a rejected
        # trial halves the step and leaves the point; an accepted one moves y and takes the
        # next gradient
        s = st.step
        z = prox_step(_axpy(-s, st.gy, st.y), s)
        dz = _axpy(-1.0, st.y, z)
        fz = f(z)
        bound = st.fy + _dot(st.gy, dz) + _dot(dz, dz) / (2 * s)
        accepted = jnp.isfinite(fz) & (fz <= bound + slack * jnp.abs(st.fy))
        Fz = fz + h(z)
        descent = accepted & (Fz <= st.Fx)
        x = tree_where(descent, z, st.x)
        t = (1 + jnp.sqrt(1 + 4 * st.t * st.t)) / 2
        # MFISTA's extrapolation; a step that raised F restarts the momentum from x
        y = _axpy((st.t - 1) / t, _axpy(-1.0, st.x, x), x)
        y = _axpy(st.t / t, _axpy(-1.0, x, z), y)
        y = tree_where(descent, y, x)
        y = tree_where(accepted, y, st.y)
        fy, gy = value_and_grad(y)
        step = jnp.where(descent, s * GROW, s * 0.5)
        return _State(
            x=x,
            y=y,
            fy=fy,
            gy=gy,
            Fx=jnp.where(descent, Fz, st.Fx),
            t=jnp.where(descent, t, jnp.where(accepted, jnp.ones((), dt), st.t)),
            step=step,
            it=st.it + 1,
            residual=jnp.where(accepted, _max_abs(dz) / s, st.residual).astype(dt),
            ok=st.ok & (step > 0) & jnp.isfinite(fy),
        )

    end = jax.lax.while_loop(cond, body, init)
    return end.x, SolveLog(end.it, end.residual <= tol, end.residual, end.Fx)


def objective(params: FAPMParams, f: Callable, pen: Penalty | None) -> Float[Array, ""]:
    """``F = f + h``: what :func:`solve` minimises."""
    return f(params) + (0.0 if pen is None else nonsmooth_penalty(params, pen))


def gradient_mapping(params: FAPMParams, f: Callable, pen: Penalty | None, s: float) -> PyTree:
    """``G_s(x) = (x − prox(x − s∇f(x)))/s``, zero exactly at a stationary point of ``F``."""
    g = jax.grad(f)(params)
    z = _axpy(-s, g, params)
    if pen is not None:
        z = prox(z, pen, s, s)
    return jax.tree_util.tree_map(lambda a, b: (a - b) / s, params, z)
