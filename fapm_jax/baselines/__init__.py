"""The Gu, Kelly and Xiu (2020) comparison suite: every model on FAPM's rolling windows.

Each model is an :class:`AbstractModel` (an equinox Module) holding its GKX (Internet Appendix
Table A.5) hyperparameter grid, with a ``fit`` for one window (tuned on that window's validation
rows) and a ``predict``. Its family batches them: :class:`AbstractJaxModel` vmaps all windows in
one compiled program, :class:`AbstractHostModel` (the trees) loops over them.
"""

from .base import (
    HUBER_QUANTILE,
    AbstractHostModel,
    AbstractJaxModel,
    AbstractModel,
    Fit,
    LinearParams,
    Model,
    RollingFit,
    choose,
    fit_rolling,
    huber_threshold,
    linear_predict,
    masked_sse,
    predict_by_window,
    predict_rolling,
)
from .enet import ENet, enet, lasso, ridge
from .expand import OnGKXCovariates
from .fapm import FAPM
from .glm import GLM, GLMParams, glm
from .nn import NN, NN_HIDDEN, NNParams, nn_family
from .ols import OLS, OLS3_NAMES, fit_huber
from .pcr import PCR, AbstractComponentRegression, pcr_path
from .pls import PLS, pls_path
from .trees import GBRT, RF, GBRTParams, RFParams

__all__ = [
    "HUBER_QUANTILE",
    "AbstractComponentRegression",
    "AbstractHostModel",
    "AbstractJaxModel",
    "AbstractModel",
    "ENet",
    "FAPM",
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
    "OnGKXCovariates",
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
    "predict_by_window",
    "predict_rolling",
]
