"""The ``fapm`` command: ``fapm run`` (train FAPM over the rolling windows and write its outputs),
``fapm reproduce`` (the paper pipeline, the GKX comparison suite and ``REPORT.md``) and
``fapm simulate`` (GKX's Monte Carlo study, Table A.1, with FAPM rows).

A wrong option, path or input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .core.errors import ConfigError, DataError, FAPMError

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
    from .core.config import LOSSES, OPTIMIZERS, TrainConfig
    from .data.embedded import SimConfig
    from .data.windows import WindowSpec

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
    t.add_argument("--epochs", type=_positive_int, default=tc.epochs, help=f"epochs (default {tc.epochs})")
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
        dest="command", required=True, metavar="{run,reproduce,simulate}", parser_class=_Parser
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
    return parser


def _names(text: str) -> tuple[str, ...]:
    out = tuple(x.strip() for x in text.split(",") if x.strip())
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return out


def _add_suite(p: argparse.ArgumentParser) -> None:
    from .studies.comparison import COVARIATES, PROFILES, TABLE1_MODELS

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


def _add_simulate(p: argparse.ArgumentParser) -> None:
    from .core.config import TrainConfig
    from .studies.comparison import PROFILES
    from .studies.simulation_study import SIM_MODELS

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
    p.add_argument("--no-fapm", action="store_true", help="leave out the FAPM and FAPM+SI rows")
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


def _log(args, msg: str) -> None:
    if not args.quiet:
        print(msg, file=sys.stderr, flush=True)


def load_data(args):
    """The panel (and, for simulated data, its truth) selected by the command line."""
    truth = None
    try:
        if args.data == "sim":
            from .data.embedded import SimConfig, simulate_panel

            panel, truth = simulate_panel(
                SimConfig(n_stocks=args.stocks, n_chars=args.n_chars, seed=args.data_seed)
            )
        elif args.data == "french":
            from .data.french import french_panel

            panel = french_panel(macro_transform=args.macro_transform)
        else:
            panel = _load_gkx(args)
    except FAPMError:
        raise
    except ValueError as e:  # a library's parsing error: still one line
        raise DataError(str(e).splitlines()[0]) from None
    if args.factors:
        names = [f.strip() for f in args.factors.split(",") if f.strip()]
        panel = panel.select_features(names)
    return panel, truth


def _load_gkx(args):
    from .data.preprocess import build_gkx_panel

    missing = [opt for opt, v in (("--chars", args.chars), ("--returns", args.returns)) if not v]
    if missing:
        raise ConfigError(f"--data gkx needs {' and '.join(missing)} PATH")
    for opt, path in (("--chars", args.chars), ("--returns", args.returns), ("--macro", args.macro)):
        if path and not Path(path).is_file():
            raise ConfigError(f"{opt} {path}: no such file")
    cache = args.cache if args.cache is not None else str(Path.home() / ".cache" / "fapm-jax")
    return build_gkx_panel(
        args.chars,
        args.returns,
        args.macro,
        sic2_dummies=args.sic2,
        macro_transform=args.macro_transform,
        cache_dir=None if cache == "none" else cache,
    )


def configs(args):
    from .core.config import TrainConfig
    from .data.windows import WindowSpec

    train = TrainConfig(
        rank=args.rank,
        learning_rate=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        init_scale=args.init_scale,
        optimizer=args.optimizer,
        loss=args.loss,
        seed=args.seed,
    )
    spec = WindowSpec(
        first_year=args.first_year,
        valid_years=args.valid_years,
        first_test_year=args.first_test_year,
        n_windows=args.windows,
    )
    return train, spec


def _progress(args, t0: float):
    def report(done, total, state):
        best = np.asarray(state.best_valid_r2)
        _log(
            args,
            f"  epoch {done:>4}/{total}  {time.perf_counter() - t0:6.1f} s  "
            f"mean best validation R² {100 * np.nanmean(best):.3f}%",
        )

    return report


def execute(args):
    """Load data, train all windows, write the run's files; return ``(run, panel, truth)``."""
    from .core.io import write_arrays, write_frame
    from .studies.rolling import params_arrays, run_rolling, training_table

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    t0 = time.perf_counter()
    panel, truth = load_data(args)
    train, spec = configs(args)
    _log(
        args,
        f"fapm: {panel.name} panel, {panel.n_rows:,} stock-months x {panel.n_features} factors; "
        f"{spec.n_windows} windows, rank {train.rank}, {train.epochs} epochs, lr {train.learning_rate}",
    )
    chunk = max(1, train.epochs // 10)
    size_group = args.size_group
    if size_group is None and args.data == "french":
        from .data.french import FRENCH_SIZE_GROUP

        size_group = FRENCH_SIZE_GROUP  # top/bottom = exactly the S5 / S1 portfolios
    run = run_rolling(
        panel,
        train,
        spec,
        size_group=size_group,
        progress=None if args.quiet else _progress(args, t0),
        epochs_per_call=chunk,
        checkpoint=out / ".checkpoint.npz",  # an interrupted run resumes where it stopped
    )
    write_frame(out / "predictions.parquet", run.predictions.select("permno", "month", "r", "r_hat"))
    write_frame(out / "r2_oos.csv", run.r2)
    write_frame(out / "training.csv", training_table(run))
    write_arrays(out / "params.npz", params_arrays(run, panel.feature_names))
    return run, panel, truth, train, spec


def setup_text(run, panel, train) -> str:
    """The run's data, windows, configuration, time and divergences, as a bullet list."""
    cfg = dataclasses.asdict(train)
    div = run.diverged_windows()
    lines = [
        f"Data: {panel.name}, {panel.n_rows:,} stock-months, {panel.n_features} factors "
        f"({len(panel.macro_names)} macro), months {panel.month.min()}–{panel.month.max()}.",
        f"Windows: {len(run.windows)} ({run.windows[0].label()} … {run.windows[-1].label()}).",
        "Training: " + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ".",
        f"Time: {run.seconds['train']:.1f} s training (compile included), {run.seconds['total']:.1f} s in all.",
        f"Diverged windows: {', '.join(map(str, div)) if div else 'none'}.",
    ]
    return "\n".join(f"- {x}" for x in lines)


def summary_text(run, panel, truth, train) -> str:
    from .reporting.report import md_table, oracle_r2, pct, r2_section, training_section

    oracle = oracle_r2(run, truth) if truth is not None else None
    yearly = run.r2.filter(run.r2["sample"] == "year")
    body = setup_text(run, panel, train)
    body += "\n\n### R²_oos\n\n" + r2_section(run, oracle=oracle)
    body += "\n\n### R²_oos by test year\n\n" + md_table(
        ["year", "R²_oos (%)", "stock-months"],
        [[y, pct(v), n] for y, v, n in zip(yearly["year"], yearly["r2_oos"], yearly["n_obs"])],
    )
    body += "\n\n### Windows\n\n" + training_section(run)
    return body


def cmd_run(args) -> int:
    from .reporting.report import write_report

    run, panel, truth, train, spec = execute(args)
    out = Path(args.out)
    write_report(out / "summary.md", "fapm run", [("Summary", summary_text(run, panel, truth, train))])
    _log(
        args,
        f"fapm: R²_oos {100 * run.r2_value('all'):.3f}% (all), "
        f"{100 * run.r2_value(f'top-{run.size_group}'):.3f}% (top-{run.size_group}), "
        f"{100 * run.r2_value(f'bottom-{run.size_group}'):.3f}% (bottom-{run.size_group}); "
        f"wrote {out}/predictions.parquet, r2_oos.csv, training.csv, params.npz, summary.md",
    )
    return 0


def _size_note(args, n: int) -> str:
    if args.data == "french":
        return (
            f"Top/bottom = the {n} S5 / S1 portfolios (the panel's size proxy). On these 30 "
            "portfolios the macro predictors are common to all assets each month, so their "
            "linear part is a time-series regression on a few hundred months and forecasts badly "
            "out of sample (Welch and Goyal's finding); FAPM starts from that OLS fit."
        )
    return f"Top/bottom = the {n} largest / smallest stocks by market value each month."


def cmd_reproduce(args) -> int:
    from .data.windows import rolling_windows, window_masks
    from .reporting.analysis_sections import (
        default_ms,
        fapm_m_sections,
        importance_sections,
        interaction_sections,
    )
    from .reporting.report import oracle_r2, r2_section, training_section, write_report, yearly_figure
    from .studies.fapm_m import fapm_m_sweep

    run, panel, truth, train, spec = execute(args)
    out = Path(args.out)
    n = run.size_group
    oracle = oracle_r2(run, truth) if truth is not None else None
    figy = yearly_figure(run, out / "r2_oos_by_year.png", f"FAPM R²_oos by test year, {panel.name} data")
    years = [w.test for w in run.windows]
    train_m, _, _ = window_masks(panel.year, rolling_windows(spec))
    # FAPM-m on the factors without SIC2 dummies (moment trainer: seconds), before Table 1 uses it
    base = panel.select_features([f for f in panel.feature_names if not f.startswith("sic2_")])
    ms = default_ms(base.n_features, args.fapm_m_max)
    _log(args, f"fapm: FAPM-m sweep, m = 1..{ms[-2] if len(ms) > 1 else '-'} and all factors")
    msweep = fapm_m_sweep(base, train, spec, ms)
    _log(args, f"  {msweep.seconds:.1f} s")
    sections = [("Setup", setup_text(run, panel, train))]
    comp = None
    if args.no_suite:
        sections.append(
            (
                "Table 1: monthly out-of-sample R² (%)",
                r2_section(run, oracle=oracle) + f"\n\n{_size_note(args, n)}",
            )
        )
    else:
        suite, comp = suite_sections(args, run, panel, train, spec, oracle, msweep)
        sections += suite
    sic2, sic2_note = None, ""
    if base.sic2 is None:
        sic2_note = "Not run: this panel has no SIC2 codes."
    elif args.no_sic2:
        sic2_note = "Not run (--no-sic2)."
    else:
        with_sic2 = base.with_sic2_dummies()
        dummies = [f for f in with_sic2.feature_names if f.startswith("sic2_")]
        sic2_ms = tuple(m for m in ((1, 3, 5, 7) if args.profile == "quick" else range(1, 8)) if m in ms)
        _log(args, f"fapm: FAPM-m with {len(dummies)} SIC2 dummies, m = {', '.join(map(str, sic2_ms))}")
        sic2 = fapm_m_sweep(with_sic2, train, spec, sic2_ms, always=dummies)
        _log(args, f"  {sic2.seconds:.1f} s")
        sic2_note = "Quick profile: m = 1, 3, 5, 7 (full profile: 1–7). " if args.profile == "quick" else ""
    sections += fapm_m_sections(msweep, out, years, sic2=sic2, sic2_note=sic2_note)
    t1 = time.perf_counter()
    sections += importance_sections(
        run, panel, train_m, out, comp.importance if comp is not None else None, truth
    )
    sections += interaction_sections(run, panel, out, truth)
    _log(args, f"fapm: importance and interactions {time.perf_counter() - t1:.1f} s")
    t1 = time.perf_counter()
    sections += _portfolio_sections(args, run, panel, comp, msweep, out)
    _log(args, f"fapm: portfolios (Tables 7-9) {time.perf_counter() - t1:.1f} s")
    sections += [
        ("R²_oos by test year (Algorithm 2)", f"![by year]({figy.name})"),
        ("Training per window", training_section(run)),
    ]
    write_report(out / "REPORT.md", f"FAPM reproduction — {panel.name} data", sections)
    _log(args, f"fapm: R²_oos {100 * run.r2_value('all'):.3f}%; wrote {out}/REPORT.md")
    return 0


def _portfolio_sections(args, run, panel, comp, msweep, out):
    import polars as pl

    from .evaluation.portfolios import PortfolioSpec
    from .reporting.portfolio_sections import portfolio_sections

    if comp is not None:
        frame, models = comp.frame, list(comp.models)
    else:
        frame, models = (
            run.predictions.select("permno", "month", "r", "mktcap", pl.col("r_hat").alias("FAPM")),
            ["FAPM"],
        )
    factors, note, spec = None, "", PortfolioSpec()
    if args.data == "french":
        from .data.french import french_factors

        factors = french_factors().select(
            "month", pl.col("MktRF").alias("MKT"), "SMB", "HML", pl.col("Mom").alias("UMD")
        )
        note = "Factors: the Fama–French–Carhart factors of the Ken French data library (shipped with the package)."
        spec = PortfolioSpec(value="value_bucket", sp500=30)
    name = f"FAPM-{args.fapm_m}"
    return portfolio_sections(
        frame,
        panel,
        run.test_rows,
        models,
        out,
        factors=factors,
        factor_note=note,
        fapm_m=name if name in models else None,
        spec=spec,
        weighting=args.decile_weighting,
    )


def _available(names, args) -> tuple[list[str], list[str]]:
    """Split ``names`` into models whose libraries are installed and tree models that are not."""
    import importlib.util

    need = {"RF": "sklearn", "GBRT": "lightgbm"}
    ok, missing = [], []
    for nm in names:
        lib = need.get(nm.split("+")[0])
        (missing if lib and importlib.util.find_spec(lib) is None else ok).append(nm)
    for nm in missing:
        _log(args, f'fapm: skipping {nm}: its library is not installed (pip install "fapm-jax[trees]")')
    return ok, missing


def suite_sections(args, run, panel, train, spec, oracle, msweep):
    """Run the GKX comparison suite beside FAPM and FAPM-m (from ``msweep``); write Table 1,
    Figure 4 and the Diebold-Mariano table; return the report sections and the comparison
    (with every model's R²-based factor importance)."""
    import jax
    import jax.numpy as jnp

    from .core.io import write_frame
    from .data.windows import rolling_windows, window_masks
    from .evaluation.diebold_mariano import default_lag, dm_markdown
    from .reporting.report import PAPER_TABLE1, md_table, pct, table1_figure
    from .studies.comparison import make_model, quick_note, run_comparison
    from .studies.rolling import predict_test_rows

    out = Path(args.out)
    ols3 = args.ols3
    if ols3 is None and args.data == "french":
        from .data.french import OLS3_COLUMNS

        ols3 = OLS3_COLUMNS
    names, missing = _available(args.models, args)
    models = [make_model(nm, panel.feature_names, profile=args.profile, ols3=ols3) for nm in names]
    t0 = time.perf_counter()

    def progress(name, sec, reused):
        _log(args, f"  {name:<8} {sec:7.1f} s{'  (saved forecasts reused)' if reused else ''}")

    _log(
        args,
        f"fapm: comparison suite, {len(models)} models, profile {args.profile}, inputs {args.covariates}",
    )
    comp = run_comparison(
        panel,
        models,
        spec,
        seed=args.seed,
        covariates=args.covariates,
        size_group=run.size_group,
        checkpoint_dir=out / ".suite",
        progress=progress,
        importance=True,
    )
    if not np.array_equal(comp.test_rows, run.test_rows):
        raise ConfigError("internal: the comparison suite and FAPM forecast different test rows")
    comp = comp.with_forecast("FAPM", run.predictions["r_hat"].to_numpy())
    _, _, test_m = window_masks(panel.year, rolling_windows(spec))
    m = args.fapm_m
    if m in msweep.ms:
        i = msweep.ms.index(m)
        params_m = jax.tree_util.tree_map(lambda a: a[i], msweep.result.params)
        r_hat_m = np.asarray(
            predict_test_rows(
                params_m,
                jnp.asarray(panel.X[:, panel.feature_index(msweep.feature_names)]),
                jnp.asarray(test_m),
            )
        )[run.test_rows]
        comp = comp.with_forecast(f"FAPM-{m}", r_hat_m)
        comp.seconds[f"FAPM-{m}"] = msweep.seconds
        first = ", ".join(f for f, _ in msweep.selected(m, 0))
        fapm_m_note = (
            f"FAPM-{m}: FAPM on the {m} most and {m} least important factors by OLS weight, chosen in "
            f"each window from its own training rows (first window: {first}); from the FAPM-m sweep below."
        )
    else:
        fapm_m_note = (
            f"FAPM-{m} left out: the panel has only {len(msweep.feature_names)} factors without SIC2."
        )
    comp.seconds["FAPM"] = run.seconds["total"]
    t1 = comp.table1()
    write_frame(out / "table1.csv", t1)
    write_frame(out / "predictions_all.parquet", comp.frame)
    dm = comp.dm()
    write_frame(out / "diebold_mariano.csv", dm)
    n_months = comp.frame["month"].n_unique()
    lag = default_lag(n_months)

    paper_key = {f"FAPM-{m}": "FAPM-7"} if m == 7 else {}
    rows, values = [], {}
    for r in t1.iter_rows(named=True):
        pk = paper_key.get(r["model"], r["model"])
        paper = PAPER_TABLE1.get(pk, {})
        rows.append(
            [
                r["model"],
                pct(r["all"]),
                pct(r["top"]),
                pct(r["bottom"]),
                *(f"{paper[k]:.2f}" if k in paper else "–" for k in ("all", "top", "bottom")),
                f"{comp.seconds.get(r['model'], float('nan')):.0f}",
            ]
        )
        values[r["model"]] = {k: 100 * r[k] for k in ("all", "top", "bottom")}
    if oracle is not None:
        keys = (("all", "all"), ("top", f"top-{run.size_group}"), ("bottom", f"bottom-{run.size_group}"))
        rows.append(["Oracle (true g)", *(pct(oracle[s]) for _, s in keys), "–", "–", "–", "–"])
    n = run.size_group
    table = md_table(
        [
            "model",
            "all",
            f"top-{n}",
            f"bottom-{n}",
            "paper all",
            "paper top-1000",
            "paper bottom-1000",
            "seconds",
        ],
        rows,
    )
    fig = table1_figure(values, out / "figure4_r2_oos.png", f"R²_oos (%), {panel.name} data")
    profile_note = (
        "Grids: GKX Internet Appendix Table A.5"
        + (f"; the quick profile trims the costly ones ({quick_note()})" if args.profile == "quick" else "")
        + ". "
        f"Inputs: {'FAPM’s factors' if args.covariates == 'factors' else 'GKX’s characteristics × (1, macro)'}. "
        "Every model is trained on the same windows, tuned on the same validation years and scored on "
        "the same test rows as FAPM."
    )
    missing_note = f" Not run (library not installed): {', '.join(missing)}." if missing else ""
    dm_text = (
        f"Diebold–Mariano statistics, GKX style: per month the cross-sectional mean of the difference in "
        f"squared errors (row model minus column model), its time-series mean over its Newey–West "
        f"standard error with lag {lag} (Newey–West 1994 rule for {n_months} test months). **Positive: "
        "the column model is better.** Bold: |DM| > 1.96 (5%); bold with \\*: |DM| > 2.58 (1%).\n\n"
        + dm_markdown(dm)
    )
    _log(args, f"fapm: comparison suite done in {time.perf_counter() - t0:.0f} s")
    return [
        (
            "Table 1: monthly out-of-sample R² (%)",
            table + f"\n\n{_size_note(args, n)} {fapm_m_note} {profile_note}{missing_note} "
            "Paper values: the FAPM paper's Table 1 (GKX's numbers for the baselines) on CRSP 1957–2016; "
            "ours are on the data named above, so compare the ranking, not the levels.\n\n"
            "Files: table1.csv, predictions_all.parquet (every model's test forecasts).",
        ),
        ("Figure 4", f"![Figure 4]({fig.name})"),
        ("Diebold–Mariano tests", dm_text + "\n\nFile: diebold_mariano.csv."),
    ], comp


def cmd_simulate(args) -> int:
    from .core.config import TrainConfig
    from .core.io import write_frame
    from .reporting.report import md_table, write_report
    from .studies.simulation_study import compare_table, run_study, sim_models, table_a1

    designs = []
    for d in args.designs:
        if len(d) < 2 or d[0] not in "ab" or d[1:] not in ("50", "100"):
            raise ConfigError(f"--designs {d!r}: expected a50, a100, b50 or b100")
        designs.append((d[0], int(d[1:])))
    names, missing = _available(args.models, args)
    cfg = TrainConfig(rank=args.rank, learning_rate=args.lr, epochs=args.epochs)
    models = sim_models(names, profile=args.profile, fapm=not args.no_fapm, fapm_config=cfg)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}

    def progress(name, design, sec, reused):
        seconds[name] = seconds.get(name, 0.0) + sec
        _log(args, f"  {design:<7} {name:<8} {sec:7.1f} s{'  (saved results reused)' if reused else ''}")

    _log(
        args,
        f"fapm: GKX simulation study, {args.reps} repetitions x {len(designs)} designs, {len(models)} models",
    )
    res = run_study(
        models,
        args.reps,
        designs,
        first_seed=args.first_seed,
        chunk=args.chunk,
        checkpoint_dir=out / ".study",
        progress=progress,
    )
    total = time.perf_counter() - t0
    write_frame(out / "results.csv", res)
    ours = table_a1(res)
    cmp = compare_table(ours)
    write_frame(out / "table_a1.csv", cmp)
    cols = [c for c in ours.columns if c not in ("method", "reps")]
    header = ["method"] + [f"{c} ours / paper" for c in cols] + ["seconds"]
    rows = []
    for r in cmp.iter_rows(named=True):
        cells = []
        for c in cols:
            paper = r.get(f"{c}_paper")
            cells.append(f"{r[c]:.2f} / {paper:.2f}" if paper is not None else f"{r[c]:.2f} / –")
        rows.append([r["method"], *cells, f"{seconds.get(r['method'], 0.0):.0f}"])
    note = (
        f"{args.reps} repetitions (seeds {args.first_seed}–{args.first_seed + args.reps - 1}) per design; "
        f"mean R² in percent against the training mean, in-sample (`_is`) and out-of-sample (`_oos`), "
        "ours / GKX (2020) Internet Appendix Table A.1. GKX models see the covariates [c, c·x]; FAPM sees "
        "the characteristics and x and learns c·x as an interaction; FAPM+SI adds x_i² terms. "
        f"Grids: {args.profile} profile. Huber threshold 0.2 (the authors'). "
        f"Total time {total:.0f} s."
        + (f" Not run (library not installed): {', '.join(missing)}." if missing else "")
    )
    write_report(
        out / "REPORT.md",
        "GKX (2020) simulation study, with FAPM",
        [("Table A.1", md_table(header, rows) + "\n\n" + note + "\n\nFiles: table_a1.csv, results.csv.")],
    )
    _log(args, f"fapm: simulation study done in {total:.0f} s; wrote {out}/REPORT.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "simulate":
            return cmd_simulate(args)
        return cmd_reproduce(args)
    except FAPMError as e:
        print(f"fapm: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"fapm: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fapm: interrupted; files already written are complete", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
