"""The Gu, Kelly and Xiu (2020) comparison suite: every model on FAPM's rolling windows.

Each model is a frozen dataclass holding its GKX (Internet Appendix Table A.5) hyperparameter
grid, with a pure ``fit`` for one window (tuned on that window's validation rows) and a
``predict``; :func:`fit_rolling` vmaps a JAX model over all windows.
"""

from .base import (
    HUBER_QUANTILE,
    Fit,
    LinearParams,
    Model,
    RollingFit,
    choose,
    fit_rolling,
    huber_threshold,
    linear_predict,
    masked_sse,
    predict_rolling,
)
from .ols import OLS, OLS3_NAMES, fit_huber

__all__ = [
    "HUBER_QUANTILE",
    "Fit",
    "LinearParams",
    "Model",
    "OLS",
    "OLS3_NAMES",
    "RollingFit",
    "choose",
    "fit_huber",
    "fit_rolling",
    "huber_threshold",
    "linear_predict",
    "masked_sse",
    "predict_rolling",
]
