"""Pairwise factor interactions of fitted FAPMs (paper section 3.3, Tables 5–6, Figures 12–14).

FAPM's interaction coefficient of factors ``i`` and ``j`` is ``B_ij = <v_i, v_j>``
(Equation "Factorization"), read straight off the parameters: no refitting, no permutation.
The rolling study gives one ``B`` per window; the paper reports the window average, its
largest entries by kind (macro × macro, macro × characteristic, characteristic ×
characteristic) "normalised to 1" (Table 5) and each factor's average absolute interaction
(Table 6).

What the paper lacks and a reader needs is how much of an interaction is signal:
:func:`interaction_stats` adds, per pair, the across-window standard deviation, the share of
windows agreeing with the sign of the mean, the 2.5–97.5% range of the window values and a
moving-block bootstrap confidence band for the window mean. The windows share most of their
(expanding) training data, so they are not independent draws: the block bootstrap respects
that serial dependence, and the range shows the stability of the estimate through time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np
import polars as pl
from jaxtyping import Array, Float

from ..core.model import FAPMParams, interaction_matrix

KINDS = ("macro×macro", "macro×char", "char×char")


def window_interactions(params: FAPMParams) -> Float[Array, "W n n"]:
    """``B = V Vᵀ`` (zero diagonal) of every window's model (parameters with a leading ``[W]``)."""
    return jax.vmap(interaction_matrix)(params)


def pair_kind(a: str, b: str, macro_names: Sequence[str]) -> str:
    """``"macro×macro"``, ``"macro×char"`` or ``"char×char"`` for the pair ``(a, b)``."""
    n_macro = (a in macro_names) + (b in macro_names)
    return KINDS[2 - n_macro]


@dataclasses.dataclass(frozen=True, eq=False)
class InteractionStats:
    """Per-pair statistics of ``B`` over windows (all ``[n, n]``, symmetric).

    ``mean``/``sd`` across windows; ``active``: the windows whose model has interactions at all
    (a window that keeps its linear start, ``V = 0``, has ``B = 0``); ``sign_agreement``: share
    of the active windows whose ``B_ij`` has the sign of ``mean``; ``low``/``high``: the 2.5% and 97.5%
    points of the window values;
    ``ci_low``/``ci_high``: a ``level`` moving-block bootstrap interval of the mean (blocks of
    ``block`` consecutive windows, ``n_boot`` draws).
    """

    names: tuple[str, ...]
    macro_names: tuple[str, ...]
    n_windows: int
    active: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    sign_agreement: np.ndarray
    low: np.ndarray
    high: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    level: float
    block: int


def block_bootstrap_means(
    values: np.ndarray, *, n_boot: int = 1000, block: int = 5, seed: int = 0
) -> np.ndarray:
    """Moving-block bootstrap of the mean over axis 0 of ``values`` ``[W, ...]``:
    ``[n_boot, ...]`` means of series rebuilt from ``⌈W / block⌉`` random blocks of
    ``block`` consecutive rows (Künsch 1989), cut to ``W`` rows."""
    W = values.shape[0]
    block = max(1, min(int(block), W))
    n_blocks = -(-W // block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, W - block + 1, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :W]  # [B, W]
    flat = values.reshape(W, -1)
    out = np.stack([flat[i].mean(axis=0) for i in idx])
    return out.reshape((n_boot,) + values.shape[1:])


def interaction_stats(
    B: np.ndarray,
    names: Sequence[str],
    macro_names: Sequence[str] = (),
    *,
    level: float = 0.95,
    n_boot: int = 1000,
    block: int = 5,
    seed: int = 0,
) -> InteractionStats:
    """Summarise the per-window interaction matrices ``B`` ``[W, n, n]`` (see the module
    docstring); ``seed`` fixes the bootstrap draws."""
    B = np.asarray(B, np.float64)
    if B.ndim != 3 or B.shape[1] != B.shape[2] or B.shape[1] != len(names):
        raise ValueError(f"interaction_stats: B must be [W, n, n] with n = {len(names)} names, got {B.shape}")
    if not 0 < level < 1:
        raise ValueError(f"interaction_stats: level must lie in (0, 1), got {level}")
    mean = B.mean(axis=0)
    sd = B.std(axis=0, ddof=1) if B.shape[0] > 1 else np.zeros_like(mean)
    active = np.abs(B).reshape(B.shape[0], -1).max(axis=1) > 0
    agree = (np.sign(B[active]) == np.sign(mean)[None]).mean(axis=0) if active.any() else np.zeros_like(mean)
    low, high = np.percentile(B, [2.5, 97.5], axis=0)
    a = (1 - level) / 2
    boot = block_bootstrap_means(B, n_boot=n_boot, block=block, seed=seed)
    ci_low, ci_high = np.quantile(boot, [a, 1 - a], axis=0)
    return InteractionStats(
        names=tuple(names),
        macro_names=tuple(m for m in macro_names if m in names),
        n_windows=B.shape[0],
        active=active,
        mean=mean,
        sd=sd,
        sign_agreement=agree,
        low=low,
        high=high,
        ci_low=ci_low,
        ci_high=ci_high,
        level=level,
        block=block,
    )


def interaction_table(stats: InteractionStats) -> pl.DataFrame:
    """One row per pair ``i < j``, largest ``|mean|`` first: ``a, b, kind, mean, share``
    (``|mean| / Σ|mean|`` over all pairs), ``sd, sign_agreement, low, high, ci_low,
    ci_high``, ``signal`` (the bootstrap band excludes 0) and ``rank`` (1 = largest)."""
    n = len(stats.names)
    iu, ju = np.triu_indices(n, 1)
    m = stats.mean[iu, ju]
    total = np.abs(m).sum()
    order = np.argsort(-np.abs(m), kind="stable")
    iu, ju, m = iu[order], ju[order], m[order]
    pick = lambda arr: arr[iu, ju]  # noqa: E731
    lo, hi = pick(stats.ci_low), pick(stats.ci_high)
    return pl.DataFrame(
        {
            "a": [stats.names[i] for i in iu],
            "b": [stats.names[j] for j in ju],
            "kind": [pair_kind(stats.names[i], stats.names[j], stats.macro_names) for i, j in zip(iu, ju)],
            "mean": m,
            "share": np.abs(m) / total if total > 0 else np.zeros_like(m),
            "sd": pick(stats.sd),
            "sign_agreement": pick(stats.sign_agreement),
            "low": pick(stats.low),
            "high": pick(stats.high),
            "ci_low": lo,
            "ci_high": hi,
            "signal": (lo > 0) | (hi < 0),
            "rank": np.arange(1, len(m) + 1),
        }
    )


def top_interactions(table: pl.DataFrame, kinds: Sequence[str] | None = None, top: int = 12) -> pl.DataFrame:
    """The ``top`` largest pairs of the given ``kinds`` (all by default), with ``normalised`` =
    ``|mean|`` over the sum of the shown pairs' ``|mean|`` — the paper's "normalised to 1"
    (Table 5, Figures 12–13)."""
    bad = [k for k in (kinds or ()) if k not in KINDS]
    if bad:
        raise ValueError(f"top_interactions: unknown kinds {bad}; known: {KINDS}")
    t = table if kinds is None else table.filter(pl.col("kind").is_in(list(kinds)))
    t = t.head(top)
    s = t["mean"].abs().sum()
    return t.with_columns((pl.col("mean").abs() / (s if s > 0 else 1.0)).alias("normalised"))


def average_interaction(mean_B: np.ndarray, names: Sequence[str]) -> pl.DataFrame:
    """Table 6: each factor's average absolute interaction ``Σ_{j≠i} |B_ij| / (n − 1)`` and its
    ``share`` of the sum over factors (normalised to one), largest first."""
    A = np.abs(np.asarray(mean_B, np.float64))
    n = A.shape[0]
    avg = (A.sum(axis=1) - np.diag(A)) / max(n - 1, 1)
    total = avg.sum()
    return pl.DataFrame(
        {
            "factor": list(names),
            "average": avg,
            "share": avg / total if total > 0 else np.zeros(n),
        }
    ).sort("average", descending=True, maintain_order=True)


def recovery(mean_B: np.ndarray, true_B: np.ndarray, names: Sequence[str]) -> dict:
    """How well an estimated ``B`` recovers a known one (simulated data): the correlation of the
    upper triangles, and per true (non-zero) pair its rank among all estimated ``|B_ij|``
    (1 = largest) with the estimate beside the truth."""
    n = len(names)
    iu = np.triu_indices(n, 1)
    est, tru = np.asarray(mean_B)[iu], np.asarray(true_B)[iu]
    order = np.argsort(-np.abs(est), kind="stable")
    rank = np.empty(len(est), np.int64)
    rank[order] = np.arange(1, len(est) + 1)
    pairs = [
        {
            "a": names[iu[0][k]],
            "b": names[iu[1][k]],
            "true": float(tru[k]),
            "estimate": float(est[k]),
            "rank": int(rank[k]),
        }
        for k in np.flatnonzero(tru != 0)
    ]
    pairs.sort(key=lambda p: p["rank"])
    corr = float(np.corrcoef(est, tru)[0, 1]) if np.std(est) > 0 and np.std(tru) > 0 else float("nan")
    return {"correlation": corr, "pairs": pairs, "n_pairs": len(est)}
