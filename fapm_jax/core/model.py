"""The Factorization Asset Pricing Model (paper section 2.2).

A FAPM is a second-order polynomial in the factors whose pairwise interaction matrix is
factorized, ``B = V Vᵀ`` (Equation "Factorization"), so that all ``n(n-1)/2`` interactions
are priced with ``n k`` parameters and evaluated in ``O(n k)`` time (Equation (1)).

Everything here is a pure function of a parameter pytree and is written for one example
``x`` of shape ``[n]``; batch shapes ``[..., n]`` broadcast through matrix products.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class FAPMParams(eqx.Module):
    """Parameters ``(w0, w, V)`` of a FAPM with ``n`` factors and rank ``k``.

    ``w0`` is the bias, ``w`` the first-order (linear) weights and row ``i`` of ``V``
    the latent vector ``v_i`` of factor ``i`` (the paper writes ``V`` as ``k × n``; we store
    its transpose so that ``X @ V`` is the natural batched product).

    ``d`` (optional, ``None`` in the paper's model) holds self-interaction weights: the
    variant with ``x_i²`` terms, ``ŷ += Σ_i d_i x_i²``. The factorized pairs exclude
    ``i = j`` (Equation (1)), so a plain FAPM cannot express a squared characteristic such as
    the ``c1²`` of GKX's simulated model (b); ``d`` adds those ``n`` free, signed coefficients.
    """

    w0: Float[Array, ""]
    w: Float[Array, " n"]
    V: Float[Array, "n k"]
    d: Float[Array, " n"] | None = None

    @property
    def n_features(self) -> int:
        return self.w.shape[-1]

    @property
    def rank(self) -> int:
        return self.V.shape[-1]


def init_params(
    key: PRNGKeyArray,
    n_features: int,
    rank: int,
    *,
    w0: float | Float[Array, ""] = 0.0,
    w: Float[Array, " n"] | None = None,
    init_scale: float | Float[Array, ""] = 0.01,
    self_interactions: bool = False,
    dtype=jnp.float32,
) -> FAPMParams:
    """Initial parameters: ``V ~ N(0, init_scale²)``, the linear part as given (Figure 3).

    The paper starts the first-order part from the linear (OLS) model and draws ``V`` from a
    normal distribution; pass the OLS solution as ``w0``/``w`` to do so (see
    :func:`fapm_jax.core.linear.fit_ols`). ``w=None`` starts the linear weights at zero.

    Column ``f`` of ``V`` is drawn from ``fold_in(key, f)``, so it does not depend on
    ``rank``: a rank-``k`` draw is the first ``k`` columns of any larger-rank draw, and a
    rank sweep padded to the largest rank (:func:`with_rank_mask`) starts every setting
    exactly where a run of that rank alone would.
    """
    cols = jax.vmap(lambda f: jax.random.normal(jax.random.fold_in(key, f), (n_features,), dtype=dtype))(
        jnp.arange(rank)
    )
    V = init_scale * cols.T
    w_arr = jnp.zeros((n_features,), dtype) if w is None else jnp.asarray(w, dtype)
    if w_arr.shape != (n_features,):
        raise ValueError(f"init_params: w has shape {w_arr.shape}, expected ({n_features},)")
    d = jnp.zeros((n_features,), dtype) if self_interactions else None
    return FAPMParams(w0=jnp.asarray(w0, dtype), w=w_arr, V=V.astype(dtype), d=d)


def average_models(params: FAPMParams) -> FAPMParams:
    """One FAPM whose forecast is the mean of the ``M`` FAPMs stacked on ``params``' leading
    axis (further batch axes are kept): ``w0``, ``w`` and ``d`` averaged, and
    ``V = [V_1, …, V_M] / √M`` of rank ``M k``. Exact, because Equation (1) is linear in
    ``w0``, ``w``, ``d`` and in ``B = V Vᵀ = Σ_f v_f v_fᵀ``, so the concatenation gives
    ``B = mean_m V_m V_mᵀ``: an ensemble is scored and forecast as one model."""
    M = params.w.shape[0]
    V = jnp.moveaxis(params.V, 0, -2)  # [..., n, M, k]
    V = V.reshape(*V.shape[:-2], -1) / jnp.sqrt(jnp.asarray(M, V.dtype))
    mean = lambda a: None if a is None else jnp.mean(a, axis=0)
    return FAPMParams(w0=mean(params.w0), w=mean(params.w), V=V, d=mean(params.d))


def linear_part(params: FAPMParams, X: Float[Array, "... n"]) -> Float[Array, ...]:
    """The Linear Model ``w0 + wᵀx`` (section 2.1)."""
    return params.w0 + X @ params.w


def interaction_part(params: FAPMParams, X: Float[Array, "... n"]) -> Float[Array, ...]:
    """``Σ_{i<j} <v_i, v_j> x_i x_j`` in ``O(nk)``, Equation (1).

    ``½ Σ_f [(Σ_i v_if x_i)² − Σ_i v_if² x_i²] = ½ (‖x V‖² − (x ⊙ x) · s)`` with
    ``s_i = ‖v_i‖²``: one ``[..., n] @ [n, k]`` product, one ``[..., n] @ [n]`` product, no
    ``n × n`` intermediate.
    """
    xv = X @ params.V
    return 0.5 * (jnp.sum(xv * xv, axis=-1) - (X * X) @ jnp.sum(params.V * params.V, axis=-1))


def self_interaction_part(params: FAPMParams, X: Float[Array, "... n"]) -> Float[Array, ...]:
    """``Σ_i d_i x_i²`` of the self-interaction variant (0 without ``d``)."""
    if params.d is None:
        return jnp.zeros(X.shape[:-1], X.dtype)
    return (X * X) @ params.d


#: Matrix-product precisions of :func:`predict` (``TrainConfig.precision``).
PRECISIONS = ("highest", "tf32", "bfloat16")


def round_to_tf32(x: Float[Array, ...]) -> Float[Array, ...]:
    """``float32`` values rounded to TF32's 10 mantissa bits (to nearest, ties away from zero),
    as a GPU's tensor cores read them; exponents and ``inf``/``nan`` are kept."""
    if x.dtype != jnp.float32:
        return x
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    rounded = (bits + jnp.uint32(0x1000)) & jnp.uint32(0xFFFFE000)
    return jnp.where(jnp.isfinite(x), jax.lax.bitcast_convert_type(rounded, jnp.float32), x)


def _operands(X, M, precision: str):
    """The operands and ``dot`` options of ``X @ M`` at ``precision`` (:data:`PRECISIONS`).

    ``"highest"``: the data's own precision (``Precision.HIGHEST``: on a GPU, float32 products
    would otherwise run in TF32). ``"tf32"``: on a GPU, its tensor cores (``Precision.DEFAULT``);
    elsewhere both operands rounded to TF32 and multiplied in float32 — the same roundings, so
    the effect on a fit can be measured on a CPU. ``"bfloat16"``: both operands in bfloat16,
    products accumulated in the data's precision. ``M`` keeps its gradient (rounding passes it
    straight through)."""
    if precision == "highest":
        return X, M, dict(precision=jax.lax.Precision.HIGHEST)
    if precision == "tf32":
        if jax.default_backend() == "gpu":
            return X, M, dict(precision=jax.lax.Precision.DEFAULT)
        return (
            round_to_tf32(X),
            M + jax.lax.stop_gradient(round_to_tf32(M) - M),
            dict(precision=jax.lax.Precision.HIGHEST),
        )
    if precision == "bfloat16":
        return X.astype(jnp.bfloat16), M.astype(jnp.bfloat16), dict(preferred_element_type=X.dtype)
    raise ValueError(f"predict: precision must be one of {PRECISIONS}, got {precision!r}")


def predict(params: FAPMParams, X: Float[Array, "... n"], precision: str = "highest") -> Float[Array, ...]:
    """FAPM prediction ``ŷ(x)``, Equation "FAPM: O(nk)" (Algorithm 1), for ``X`` of shape ``[..., n]``
    (plus ``Σ d_i x_i²`` in the self-interaction variant).

    The linear, interaction and squared terms in two products that read ``X`` once each:
    ``z = x [w | V]`` (one ``[n, k + 1]`` product; under ``vmap`` over windows one GEMM with
    ``W (k + 1)`` columns) and ``(x ⊙ x) · u`` with ``u_i = d_i − ½ ‖v_i‖²``, so that
    ``ŷ = w0 + z_0 + ½ Σ_f z_f² + (x ⊙ x) · u`` — equal to :func:`linear_part` +
    :func:`interaction_part` + :func:`self_interaction_part`. ``precision``
    (:data:`PRECISIONS`) sets the arithmetic of the GEMM ``z``, which holds nearly all of the
    flops; the squared term (a product with one column per window) and the rest run in the
    data's precision.
    """
    u = -0.5 * jnp.sum(params.V * params.V, axis=-1)
    if params.d is not None:
        u = u + params.d
    Xp, WV, opts = _operands(X, jnp.concatenate([params.w[:, None], params.V], axis=-1), precision)
    z = jnp.matmul(Xp, WV, **opts)
    sq = jnp.matmul(X * X, u, precision=jax.lax.Precision.HIGHEST)
    return params.w0 + z[..., 0] + 0.5 * jnp.sum(z[..., 1:] * z[..., 1:], axis=-1) + sq


def interaction_matrix(params: FAPMParams) -> Float[Array, "n n"]:
    """``B_ij = <v_i, v_j>`` off the diagonal and 0 on it (Equation "Factorization"); in the
    self-interaction variant the diagonal holds ``d``.

    Only the upper triangle enters the model; the matrix is returned symmetric.
    """
    B = params.V @ params.V.T
    eye = jnp.eye(B.shape[-1], dtype=B.dtype)
    B = B * (1.0 - eye)
    return B if params.d is None else B + eye * params.d


def with_rank_mask(params: FAPMParams, rank_mask: Float[Array, " k"]) -> FAPMParams:
    """Zero the latent columns switched off by ``rank_mask`` (1 = on, 0 = off).

    Sweeps over the rank ``k`` pad ``V`` to the largest rank and mask the rest, so that all
    settings share one shape and one compiled program.
    """
    return eqx.tree_at(lambda p: p.V, params, params.V * rank_mask)


def with_feature_mask(params: FAPMParams, feature_mask: Float[Array, " n"]) -> FAPMParams:
    """Zero every parameter of the factors switched off by ``feature_mask`` (1 = in, 0 = out):
    ``w_i``, the row ``v_i`` and ``d_i``. The model then equals one fitted on the kept
    columns only, since factor ``i`` enters ``ŷ`` only through those parameters — a FAPM-m
    sweep (paper section 3.2) trains every subset in one program on the full ``X``."""
    f = feature_mask
    d = None if params.d is None else params.d * f
    return FAPMParams(w0=params.w0, w=params.w * f, V=params.V * f[:, None], d=d)
