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
from .enet import ENet, enet, lasso, ridge
from .glm import GLM, GLMParams, glm
from .nn import NN, NN_HIDDEN, NNParams, nn_family
from .ols import OLS, OLS3_NAMES, fit_huber
from .pcr import PCR, pcr_path
from .pls import PLS, pls_path
from .trees import GBRT, RF, GBRTParams, RFParams

__all__ = [
    "HUBER_QUANTILE",
    "ENet",
    "Fit",
    "GLM",
    "GLMParams",
    "LinearParams",
    "Model",
    "NN",
    "NN_HIDDEN",
    "NNParams",
    "OLS",
    "OLS3_NAMES",
    "PCR",
    "PLS",
    "RF",
    "RFParams",
    "GBRT",
    "GBRTParams",
    "RollingFit",
    "choose",
    "enet",
    "glm",
    "lasso",
    "ridge",
    "fit_huber",
    "fit_rolling",
    "huber_threshold",
    "linear_predict",
    "nn_family",
    "masked_sse",
    "pcr_path",
    "pls_path",
    "predict_rolling",
]
