"""fapm-jax: the Factorization Asset Pricing Model in JAX.

A factorization machine that predicts next-month stock excess returns from firm
characteristics and macro predictors, pricing every pairwise factor interaction with
``O(nk)`` parameters; trained over the paper's rolling windows in one vmapped program.
"""

__version__ = "0.1.0"

from .covariates import gkx_covariate_names, gkx_covariates
from .fapm_m import FAPMmSweep, fapm_m_sweep, top_bottom_mask, window_importance
from .french import french_factors, french_panel
from .gkx import DataError, load_characteristics, load_returns, scan_characteristics
from .importance import first_order_importance, r2_drops
from .interactions import interaction_stats, interaction_table, window_interactions
from .linear import fit_ols
from .losses import huber, huber_r2_loss, r2_loss, r2_score
from .macro import MACRO_NAMES, load_welch_goyal, macro_panel
from .metrics import r2_by_year, r2_oos, r2_summary, r2_table
from .model import FAPMParams, init_params, interaction_matrix, predict, with_feature_mask
from .panel import Panel, PanelError
from .preprocess import build_gkx_panel
from .rolling import RollingRun, predict_test_rows, run_rolling
from .simulate import SimConfig, SimTruth, simulate_panel
from .sweep import Sweep, sweep
from .train import (
    ConfigError,
    Hyper,
    TrainConfig,
    TrainResult,
    fit_window,
    fit_windows,
    init_windows,
    sweep_grid,
    train_windows,
)
from .sharding import make_mesh
from .windows import Window, WindowError, WindowSpec, rolling_windows, window_masks

__all__ = [
    "ConfigError",
    "DataError",
    "FAPMParams",
    "FAPMmSweep",
    "Hyper",
    "MACRO_NAMES",
    "Panel",
    "PanelError",
    "RollingRun",
    "SimConfig",
    "SimTruth",
    "Sweep",
    "TrainConfig",
    "TrainResult",
    "build_gkx_panel",
    "Window",
    "WindowError",
    "WindowSpec",
    "fapm_m_sweep",
    "first_order_importance",
    "fit_ols",
    "fit_window",
    "french_factors",
    "french_panel",
    "gkx_covariate_names",
    "gkx_covariates",
    "fit_windows",
    "huber",
    "huber_r2_loss",
    "init_params",
    "init_windows",
    "make_mesh",
    "interaction_matrix",
    "interaction_stats",
    "interaction_table",
    "load_characteristics",
    "load_returns",
    "load_welch_goyal",
    "macro_panel",
    "predict",
    "predict_test_rows",
    "r2_by_year",
    "r2_drops",
    "r2_loss",
    "r2_oos",
    "r2_score",
    "r2_summary",
    "r2_table",
    "rolling_windows",
    "run_rolling",
    "scan_characteristics",
    "simulate_panel",
    "sweep",
    "sweep_grid",
    "train_windows",
    "top_bottom_mask",
    "window_importance",
    "window_interactions",
    "window_masks",
    "with_feature_mask",
]
