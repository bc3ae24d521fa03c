"""The market's level in a panel: each month's cross-sectional mean return and the deviations
from it, and a window's mean training return.

A forecast ``r̂_it = μ + f(x_it)`` with ``f`` fit to ``r_it − r̄_t`` prices the cross-section
and leaves the level to the historical mean ``μ`` (``TrainConfig(level="train-mean")``). Macro
predictors time the market poorly out of sample (Welch and Goyal 2008), and a model that reads
them linearly forecasts every stock's level from them; on portfolios, whose returns share the
market's, that error swamps the cross-sectional signal. Nothing here looks ahead: a month's
mean uses that month's returns only, and a window's mean its training rows only.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float, Int


def month_deviations(r: Float[np.ndarray, " N"], month: Int[np.ndarray, " N"]) -> Float[np.ndarray, " N"]:
    """``r_it − r̄_t``: each row's return less the mean over the rows of its month (float64
    sums, returned in ``r``'s dtype)."""
    r = np.asarray(r)
    _, inv = np.unique(np.asarray(month), return_inverse=True)
    mean = np.bincount(inv, r.astype(np.float64)) / np.bincount(inv)
    return (r - mean[inv]).astype(r.dtype)


def window_means(r: Float[np.ndarray, " N"], masks: Bool[np.ndarray, "W N"]) -> Float[np.ndarray, " W"]:
    """``[W]`` the mean of ``r`` over each window's rows of ``masks`` (its training rows)."""
    m = np.asarray(masks, np.float64)
    return (m @ np.asarray(r, np.float64)) / np.maximum(m.sum(axis=1), 1.0)


def row_levels(level: Float[np.ndarray, " W"], masks: Bool[np.ndarray, "W N"]) -> Float[np.ndarray, " N"]:
    """``[N]`` each row's window level: ``level[w]`` for the rows of window ``w``'s mask (its
    test year, which no two windows share), 0 for rows in none."""
    return np.asarray(masks, np.float64).T @ np.asarray(level, np.float64)
