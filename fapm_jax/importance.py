"""Factor importance and the FAPM-m factor choice (paper section 3.2, Table 2).

The paper defines the importance of factor ``i`` as the first-order weight ``w_i`` of OLS on
all factors, normalised so the absolute weights sum to one, and FAPM-m as FAPM trained on the
``m`` most and the ``m`` least important factors ("one strong factor with one weak factor").
Here the OLS is fitted on the first window's training years only, so the choice uses no data
from any validation or test year.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .linear import fit_ols
from .panel import Panel
from .windows import WindowSpec, rolling_windows, window_masks


def ols_importance(panel: Panel, spec: WindowSpec = WindowSpec()) -> pl.DataFrame:
    """``factor``, ``weight`` (OLS ``w_i``) and ``importance`` (``|w_i| / Σ|w|``), most
    important first; OLS on the training rows of the first window of ``spec``."""
    train, _, _ = window_masks(panel.year, rolling_windows(spec)[:1])
    _, w = fit_ols(panel.X, panel.r, train[0].astype(panel.X.dtype))
    w = np.asarray(w, np.float64)
    total = np.abs(w).sum()
    imp = np.abs(w) / total if total > 0 else np.zeros_like(w)
    return pl.DataFrame({"factor": list(panel.feature_names), "weight": w, "importance": imp}).sort(
        "importance", descending=True, maintain_order=True
    )


def top_bottom(importance: pl.DataFrame, m: int) -> list[str]:
    """The ``m`` most and ``m`` least important factors (FAPM-m's inputs), most important first."""
    names = importance["factor"].to_list()
    if not 1 <= m <= len(names) // 2:
        raise ValueError(f"FAPM-m: m must be between 1 and {len(names) // 2} for {len(names)} factors, got {m}")
    return names[:m] + names[-m:]
