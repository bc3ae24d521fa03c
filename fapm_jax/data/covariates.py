"""GKX's 920 covariates, built on the fly from a batch, never stored as a 920-column panel.

Gu, Kelly and Xiu (2020, section 2.1) use the covariates ``z_{i,t} = x_t ⊗ c_{i,t}``:
the ``P = 94`` characteristics ``c`` interacted with ``(1, x_t)``, ``x_t`` the ``M = 8`` macro
predictors, giving ``94 × 9 = 846`` covariates, plus ``74`` SIC2 industry dummies: 920 in all.
Stored for the full 4.1M-row sample that would be ≈15 GB of float32; built per batch inside
a jitted/vmapped step it costs nothing to keep.

Column order (:func:`gkx_covariates` and :func:`gkx_covariate_names` agree): for each
characteristic ``c`` in order, ``c, c·m1, …, c·mM``; then the SIC2 dummies in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def gkx_covariates(
    chars: Float[Array, "*batch P"],
    macro: Float[Array, "*batch M"],
    sic_onehot: Float[Array, "*batch S"] | None = None,
) -> Float[Array, "*batch Q"]:
    """``chars ⊗ (1, macro)`` followed by ``sic_onehot``: ``Q = P·(1 + M) + S`` columns.

    Pure ``jnp`` and shape-polymorphic over leading batch axes, so it can run per batch inside
    ``jit``/``vmap``. Column ``c·(1+M)`` is characteristic ``c`` itself and column
    ``c·(1+M) + 1 + k`` is characteristic ``c`` times macro predictor ``k``.
    """
    chars = jnp.asarray(chars)
    macro = jnp.asarray(macro, dtype=chars.dtype)
    if chars.shape[:-1] != macro.shape[:-1]:
        raise ValueError(f"gkx_covariates: batch shapes differ: chars {chars.shape}, macro {macro.shape}")
    ones = jnp.ones(macro.shape[:-1] + (1,), chars.dtype)
    z = jnp.concatenate([ones, macro], axis=-1)  # [..., 1 + M]
    inter = (chars[..., :, None] * z[..., None, :]).reshape(chars.shape[:-1] + (-1,))
    if sic_onehot is None:
        return inter
    sic_onehot = jnp.asarray(sic_onehot, dtype=chars.dtype)
    if sic_onehot.shape[:-1] != chars.shape[:-1]:
        raise ValueError(f"gkx_covariates: batch shapes differ: chars {chars.shape}, sic {sic_onehot.shape}")
    return jnp.concatenate([inter, sic_onehot], axis=-1)


def gkx_covariate_names(
    char_names: Sequence[str], macro_names: Sequence[str], sic_names: Sequence[str] = ()
) -> tuple[str, ...]:
    """Names of the :func:`gkx_covariates` columns: ``c``, ``c*m`` for each macro ``m``, then SIC2."""
    out = []
    for c in char_names:
        out.append(c)
        out.extend(f"{c}*{m}" for m in macro_names)
    return tuple(out) + tuple(sic_names)


def covariate_blocks(
    feature_names: Sequence[str], macro_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column indices of a panel's characteristics, macro predictors and ``sic2_XX`` dummies,
    so a batch ``X[:, idx]`` of a :class:`~fapm_jax.data.panel.Panel` feeds :func:`gkx_covariates`."""
    macro = set(macro_names)
    chars = [i for i, f in enumerate(feature_names) if f not in macro and not f.startswith("sic2_")]
    mac = [feature_names.index(m) for m in macro_names]
    sic = [i for i, f in enumerate(feature_names) if f.startswith("sic2_")]
    return (np.array(chars, np.int64), np.array(mac, np.int64), np.array(sic, np.int64))
