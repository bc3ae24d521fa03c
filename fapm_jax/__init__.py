"""fapm-jax: the Factorization Asset Pricing Model in JAX.

A factorization machine that predicts next-month stock excess returns from firm
characteristics and macro predictors, pricing every pairwise factor interaction with
``O(nk)`` parameters; trained over the paper's rolling windows in one vmapped program.
"""

__version__ = "0.1.0"

from .core.config import Hyper as Hyper
from .core.config import sweep_grid as sweep_grid
from .core.config import TrainConfig as TrainConfig
from .core.errors import ConfigError as ConfigError
from .core.errors import DataError as DataError
from .core.errors import FAPMError as FAPMError
from .core.errors import PanelError as PanelError
from .core.errors import StudyError as StudyError
from .core.errors import WindowError as WindowError
from .core.fit import fit_window as fit_window
from .core.fit import fit_windows as fit_windows
from .core.fit import TrainResult as TrainResult
from .core.gibbs import GibbsConfig as GibbsConfig
from .core.gibbs_summaries import posterior_interactions as posterior_interactions
from .core.gibbs_summaries import posterior_predict as posterior_predict
from .core.gibbs import sample_windows as sample_windows
from .core.linear import fit_ols as fit_ols
from .core.losses import huber as huber
from .core.losses import huber_r2_loss as huber_r2_loss
from .core.losses import r2_loss as r2_loss
from .core.losses import r2_score as r2_score
from .core.model import FAPMParams as FAPMParams
from .core.model import init_params as init_params
from .core.model import interaction_matrix as interaction_matrix
from .core.model import predict as predict
from .core.model import with_feature_mask as with_feature_mask
from .core.rows import init_windows as init_windows
from .core.rows import train_windows as train_windows
from .core.sharding import make_mesh as make_mesh
from .data.covariates import gkx_covariate_names as gkx_covariate_names
from .data.covariates import gkx_covariates as gkx_covariates
from .data.crsp_returns import load_returns as load_returns
from .data.embedded import SimConfig as SimConfig
from .data.embedded import SimTruth as SimTruth
from .data.embedded import simulate_panel as simulate_panel
from .data.french import french_factors as french_factors
from .data.french import french_panel as french_panel
from .data.gkx_files import load_characteristics as load_characteristics
from .data.gkx_files import scan_characteristics as scan_characteristics
from .data.macro import load_welch_goyal as load_welch_goyal
from .data.macro import MACRO_NAMES as MACRO_NAMES
from .data.macro import macro_panel as macro_panel
from .data.panel import Panel as Panel
from .data.preprocess import build_gkx_panel as build_gkx_panel
from .data.windows import rolling_windows as rolling_windows
from .data.windows import Window as Window
from .data.windows import window_masks as window_masks
from .data.windows import WindowSpec as WindowSpec
from .evaluation.importance import first_order_importance as first_order_importance
from .evaluation.importance import r2_drops as r2_drops
from .evaluation.interactions import interaction_stats as interaction_stats
from .evaluation.interactions import interaction_table as interaction_table
from .evaluation.interactions import window_interactions as window_interactions
from .evaluation.posterior import averaged_posterior as averaged_posterior
from .evaluation.metrics import r2_by_year as r2_by_year
from .evaluation.metrics import r2_oos as r2_oos
from .evaluation.metrics import r2_summary as r2_summary
from .evaluation.metrics import r2_table as r2_table
from .baselines.fapm import TunedFAPM as TunedFAPM
from .studies.estimators import best_per_window as best_per_window
from .studies.estimators import make_estimator as make_estimator
from .studies.estimators import run_estimator as run_estimator
from .studies.estimators import run_gibbs as run_gibbs
from .studies.fapm_m import fapm_m_sweep as fapm_m_sweep
from .studies.fapm_m import FAPMmSweep as FAPMmSweep
from .studies.fapm_m import top_bottom_mask as top_bottom_mask
from .studies.fapm_m import window_importance as window_importance
from .studies.rolling import member_params as member_params
from .studies.rolling import predict_test_rows as predict_test_rows
from .studies.rolling import RollingRun as RollingRun
from .studies.rolling import run_rolling as run_rolling
from .studies.sweep import Sweep as Sweep
from .studies.sweep import sweep as sweep
