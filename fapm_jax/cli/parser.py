"""The ``fapm`` command line: its options (argparse) and the dispatch to the commands
(:mod:`.run`, :mod:`.reproduce`, :mod:`.simulate`, :mod:`.data_check`).

A wrong option, path or input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .. import __version__
from ..baselines.fapm import TunedFAPM
from ..core.config import ESTIMATORS, LEVELS, LOSSES, OPTIMIZERS, TrainConfig
from ..core.errors import FAPMError
from ..data.embedded import SimConfig
from ..data.windows import WindowSpec
from ..studies.comparison import COVARIATES, PROFILES, TABLE1_MODELS
from ..studies.simulation_study import SIM_MODELS
from .data_check import cmd_data_check
from .reproduce import cmd_reproduce
from .run import cmd_run
from .simulate import cmd_simulate

DATA_SOURCES = ("sim", "french", "gkx")


def _checked(cast, ok, what: str):
    """An argparse type: ``cast(text)`` that must satisfy ``ok``, else a one-line error."""

    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_positive_float = _checked(float, lambda v: v > 0 and np.isfinite(v), "a positive number")
_nonneg_float = _checked(float, lambda v: v >= 0 and np.isfinite(v), "a number >= 0")


def _add_common(p: argparse.ArgumentParser, default_out: str) -> None:
    sim, tc, ws = SimConfig(), TrainConfig(), WindowSpec()
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        choices=DATA_SOURCES,
        default="sim",
        help="'sim': the embedded simulated GKX-style panel (default); 'french': the 30 "
        "Ken French portfolios with real macro predictors; 'gkx': your GKX "
        "characteristics and CRSP returns (--chars, --returns)",
    )
    g.add_argument(
        "--stocks",
        type=_positive_int,
        default=sim.n_stocks,
        help=f"sim: stocks per month (default {sim.n_stocks})",
    )
    g.add_argument(
        "--n-chars",
        type=_positive_int,
        default=sim.n_chars,
        help=f"sim: characteristics (default {sim.n_chars}; 8 macro predictors are added)",
    )
    g.add_argument("--data-seed", type=int, default=sim.seed, help="sim: seed of the simulated panel")
    g.add_argument(
        "--chars",
        metavar="PATH",
        default=None,
        help="gkx: the GKX characteristics file (datashare.csv or a parquet copy)",
    )
    g.add_argument(
        "--returns",
        metavar="PATH",
        default=None,
        help="gkx: CRSP monthly returns (csv or parquet: permno, date, ret[, prc, shrout])",
    )
    g.add_argument(
        "--macro",
        metavar="PATH",
        default=None,
        help="gkx: Welch-Goyal predictor data, workbook (sheet Monthly) or csv "
        "(default: the 2022 copy shipped with the package)",
    )
    g.add_argument(
        "--macro-transform",
        choices=("rank", "zscore", "raw"),
        default="rank",
        help="scale of the macro predictors, without look-ahead (default: rank)",
    )
    g.add_argument("--sic2", action="store_true", help="gkx: add SIC2 one-hot dummies as factors")
    g.add_argument(
        "--use-chars",
        type=_names,
        default=None,
        help="gkx: train on these GKX characteristics only (comma-separated; default: all 94, "
        "each of which the file must have)",
    )
    g.add_argument(
        "--drop-chars",
        type=_names,
        default=(),
        help="gkx: leave these characteristics out (comma-separated)",
    )
    g.add_argument(
        "--cache",
        metavar="DIR",
        default=None,
        help="gkx: folder of the preprocessed-panel parquet cache "
        "(default: ~/.cache/fapm-jax; 'none' disables it)",
    )
    g.add_argument("--factors", default=None, help="comma-separated factor names to train on (default: all)")
    t = p.add_argument_group("training")
    t.add_argument("--rank", type=_positive_int, default=tc.rank, help=f"rank k of V (default {tc.rank})")
    t.add_argument(
        "--lr",
        type=_positive_float,
        default=tc.learning_rate,
        help=f"learning rate (default {tc.learning_rate})",
    )
    t.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help=f"epochs (default {tc.epochs}; --estimator map: {TunedFAPM().config.epochs} full-batch steps)",
    )
    t.add_argument(
        "--batch-size", type=_positive_int, default=None, help="rows per step (default: full batch)"
    )
    t.add_argument(
        "--init-scale",
        type=_nonneg_float,
        default=tc.init_scale,
        help=f"std of the normal draw of V (default {tc.init_scale})",
    )
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=tc.optimizer)
    t.add_argument("--loss", choices=LOSSES, default=tc.loss)
    t.add_argument("--seed", type=int, default=tc.seed, help="training seed")
    t.add_argument(
        "--estimator",
        choices=ESTIMATORS,
        default=tc.estimator,
        help="paper: the paper's Adam recipe (default); map: penalised FAPM (lasso on w and d, "
        "group lasso on v_i) tuned per window; ensemble: 10 seeds averaged",
    )
    t.add_argument(
        "--members",
        type=_positive_int,
        default=None,
        help="average this many fits per window, each from its own seed of V and choosing its "
        "own setting on validation (default 1; --estimator ensemble: 10); --estimator map: the "
        "FAPM-MAP-ens row",
    )
    t.add_argument(
        "--settings-batch",
        type=_positive_int,
        default=None,
        help="train a sweep's settings this many at a time (default: all at once): the memory "
        "budget of a large sweep, e.g. --estimator map --members 4; the same models up to "
        "float rounding",
    )
    t.add_argument(
        "--select",
        choices=("window", "pooled"),
        default="window",
        help="--estimator map: choose each window's setting on its validation R² (window, default) "
        "or on the mean over it and the earlier windows (pooled: steadier on small panels)",
    )
    t.add_argument(
        "--level",
        choices=LEVELS,
        default=tc.level,
        help="model: FAPM forecasts the return's level (the paper, default); train-mean: FAPM is "
        "fit to each month's cross-sectional deviations and forecasts add the window's mean "
        "training return (no market timing; every FAPM row of reproduce, not the suite)",
    )
    w = p.add_argument_group("windows (paper: 1957 / 12 / 1987 / 30)")
    w.add_argument("--first-year", type=int, default=ws.first_year)
    w.add_argument("--valid-years", type=_positive_int, default=ws.valid_years)
    w.add_argument("--first-test-year", type=int, default=ws.first_test_year)
    w.add_argument("--windows", type=_positive_int, default=ws.n_windows)
    p.add_argument(
        "--size-group",
        type=_positive_int,
        default=None,
        help="n of the top-n / bottom-n R² rows (default 1000, or a third of the "
        "monthly cross-section when it holds fewer than 2000 stocks)",
    )
    p.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line (and exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fapm",
        description="Factorization Asset Pricing Model: rolling-window training and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"fapm-jax {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{run,reproduce,simulate,data}", parser_class=_Parser
    )
    run = sub.add_parser(
        "run", help="train FAPM over the rolling windows and write predictions, R², parameters"
    )
    _add_common(run, "runs/fapm")
    rep = sub.add_parser("reproduce", help="run the paper pipeline and the comparison suite; write REPORT.md")
    _add_common(rep, "runs/reproduce")
    _add_suite(rep)
    sim = sub.add_parser("simulate", help="GKX's Monte Carlo study (Table A.1) with FAPM rows")
    _add_simulate(sim)
    data = sub.add_parser("data", help="look at your data files: 'fapm data check'")
    data_sub = data.add_subparsers(
        dest="data_command", required=True, metavar="{check}", parser_class=_Parser
    )
    check = data_sub.add_parser(
        "check",
        help="read GKX files as 'fapm run --data gkx' does, train nothing, write a data report",
        description="Read your GKX characteristics, CRSP returns and Welch-Goyal data exactly as "
        "'fapm run --data gkx' does, train nothing, and write data_check.md (stock-months, missing "
        "values, rows dropped, macro coverage, windows). Exit code 0 when 'fapm run' would run on "
        "the files; otherwise its one-line error and exit code 2, and nothing is written.",
    )
    _add_data_check(check)
    return parser


def _add_data_check(p: argparse.ArgumentParser) -> None:
    """The options of ``fapm data check``: those of ``fapm run --data gkx`` that decide which
    rows it trains on (same names and defaults as :func:`_add_common`)."""
    ws = WindowSpec()
    g = p.add_argument_group("data (as fapm run --data gkx)")
    g.add_argument("--chars", metavar="PATH", required=True, help="the GKX characteristics file")
    g.add_argument("--returns", metavar="PATH", required=True, help="CRSP monthly returns (csv or parquet)")
    g.add_argument(
        "--macro",
        metavar="PATH",
        default=None,
        help="Welch-Goyal predictor data (default: the 2022 copy shipped with the package)",
    )
    g.add_argument(
        "--use-chars", type=_names, default=None, metavar="NAMES", help="these GKX characteristics only"
    )
    g.add_argument(
        "--drop-chars", type=_names, default=(), metavar="NAMES", help="leave these characteristics out"
    )
    g.add_argument("--sic2", action="store_true", help="add SIC2 one-hot dummies as factors")
    g.add_argument("--macro-transform", choices=("rank", "zscore", "raw"), default="rank")
    g.add_argument(
        "--cache",
        metavar="DIR",
        default=None,
        help="folder of the preprocessed-panel cache (default: ~/.cache/fapm-jax; 'none' disables it)",
    )
    w = p.add_argument_group("windows (paper: 1957 / 12 / 1987 / 30)")
    w.add_argument("--first-year", type=int, default=ws.first_year)
    w.add_argument("--valid-years", type=_positive_int, default=ws.valid_years)
    w.add_argument("--first-test-year", type=int, default=ws.first_test_year)
    w.add_argument("--windows", type=_positive_int, default=ws.n_windows)
    p.add_argument("--out", default="runs/data_check", help="output folder (default runs/data_check)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(data="gkx", factors=None)  # what fapm_jax.cli.run.load_data reads


def _names(text: str) -> tuple[str, ...]:
    out = tuple(x.strip() for x in text.split(",") if x.strip())
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return out


def _add_suite(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("comparison suite (GKX 2020; Table 1, Figure 4, Diebold-Mariano)")
    g.add_argument(
        "--models",
        type=_names,
        default=TABLE1_MODELS,
        help="comma-separated models (default: Table 1's " + ",".join(TABLE1_MODELS) + "); "
        "also OLS, OLS-3, ENet, Lasso(+H), Ridge(+H), GLM, GBRT",
    )
    g.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="'quick' (default): trimmed network ensemble, forest and boosting grids, "
        "for a laptop; 'full': GKX's Table A.5 grids",
    )
    g.add_argument(
        "--covariates",
        choices=COVARIATES,
        default="factors",
        help="inputs of the GKX models: FAPM's factors (default) or GKX's "
        "characteristics x (1, macro) [+ SIC2], built inside each fit",
    )
    g.add_argument(
        "--ols3",
        type=_names,
        default=None,
        help="OLS-3's size, value and momentum columns (default mvel1,bm,mom12m; "
        "french: size_bucket,value_bucket,mom12m)",
    )
    g.add_argument(
        "--fapm-m",
        type=_positive_int,
        default=7,
        help="m of the FAPM-m row (top-m and bottom-m factors by OLS importance; default 7)",
    )
    g.add_argument(
        "--fapm-m-max",
        type=_positive_int,
        default=20,
        help="largest m of the FAPM-m sweep (Table 2, Figure 5; default 20)",
    )
    g.add_argument(
        "--decile-weighting",
        choices=("value", "equal"),
        default="value",
        help="weights of the decile portfolios of Table 9 (default: value, the paper's)",
    )
    g.add_argument(
        "--no-sic2",
        action="store_true",
        help="skip the FAPM-m sweep with SIC2 dummies (Table 3, Figures 6 and 8)",
    )
    g.add_argument("--no-suite", action="store_true", help="FAPM only, no comparison models")
    g.add_argument(
        "--estimators",
        type=_names,
        default=("map",),
        help="FAPM estimators with their own Table 1 / Diebold-Mariano rows besides --estimator's "
        "(map, ensemble, bayes: Gibbs-sampled FAPM, whose credible intervals join the interaction "
        "tables), plus FAPM-best, the per-window choice among the selecting ones on validation R² "
        "(comma-separated, default map; bayes is slow on a CPU, see docs/training.md; 'none' for none)",
    )
    g.add_argument(
        "--bayes-train-only",
        action="store_true",
        help="bayes: learn from the training years only (default: training and validation years, "
        "on which the sampler chooses nothing)",
    )


def _add_simulate(p: argparse.ArgumentParser) -> None:
    tc = TrainConfig()
    p.add_argument("--reps", type=_positive_int, default=100, help="Monte Carlo repetitions (default 100)")
    p.add_argument(
        "--designs",
        type=_names,
        default=("a50", "a100", "b50", "b100"),
        help="designs as model+Pc, e.g. a50,b100 (default: all four)",
    )
    p.add_argument(
        "--models",
        type=_names,
        default=SIM_MODELS,
        help="comma-separated GKX models (default: Table A.1's " + ",".join(SIM_MODELS) + ")",
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="full",
        help="GKX grids ('full', default) or the trimmed 'quick' grids",
    )
    p.add_argument("--no-fapm", action="store_true", help="leave out the FAPM rows")
    p.add_argument(
        "--covariates",
        type=_names,
        default=("factors",),
        help="FAPM rows' inputs: factors (its own c and x, default), gkx (the GKX models' "
        "covariates [c, c*x]; rows FAPM-gkx ...), or factors,gkx",
    )
    p.add_argument(
        "--map-epochs",
        type=_positive_int,
        default=TunedFAPM().config.epochs,
        help=f"full-batch Adam steps of the FAPM-MAP row (default {TunedFAPM().config.epochs})",
    )
    p.add_argument(
        "--members",
        type=_positive_int,
        default=1,
        help="> 1: add the FAPM-MAP-ens row, the mean of this many FAPM-MAP fits from independent "
        "draws of V (default 1: no such row)",
    )
    p.add_argument("--rank", type=_positive_int, default=tc.rank, help=f"FAPM rank (default {tc.rank})")
    p.add_argument(
        "--lr",
        type=_positive_float,
        default=tc.learning_rate,
        help=f"FAPM learning rate (default {tc.learning_rate})",
    )
    p.add_argument(
        "--epochs", type=_positive_int, default=tc.epochs, help=f"FAPM epochs (default {tc.epochs})"
    )
    p.add_argument("--first-seed", type=int, default=0, help="seed of the first repetition (default 0)")
    p.add_argument(
        "--chunk", type=_positive_int, default=10, help="repetitions per vmapped batch (default 10)"
    )
    p.add_argument("--out", default="runs/simulate", help="output folder (default runs/simulate)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


COMMANDS = {
    "run": cmd_run,
    "reproduce": cmd_reproduce,
    "simulate": cmd_simulate,
    "data": lambda args: {"check": cmd_data_check}[args.data_command](args),
}


def main(argv: list[str] | None = None) -> int:
    """``fapm``: parse ``argv`` and run the command; a :class:`FAPMError` or an OS error is one
    line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except FAPMError as e:
        print(f"fapm: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"fapm: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fapm: interrupted; files already written are complete", file=sys.stderr)
        return 130
