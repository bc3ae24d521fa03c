"""The ``fapm`` command: ``fapm run`` (train FAPM over the rolling windows and write its outputs)
and ``fapm reproduce`` (the paper pipeline and ``REPORT.md``).

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

DATA_SOURCES = ("sim", "french", "gkx")


class CLIError(Exception):
    """A user error, reported as one line with exit code 2."""


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
    from .simulate import SimConfig
    from .train import LOSSES, OPTIMIZERS, TrainConfig
    from .windows import WindowSpec

    sim, tc, ws = SimConfig(), TrainConfig(), WindowSpec()
    g = p.add_argument_group("data")
    g.add_argument("--data", choices=DATA_SOURCES, default="sim",
                   help="'sim': the embedded simulated GKX-style panel (default); 'french': the 30 "
                        "Ken French portfolios with real macro predictors; 'gkx': your GKX "
                        "characteristics and CRSP returns (--chars, --returns)")
    g.add_argument("--stocks", type=_positive_int, default=sim.n_stocks,
                   help=f"sim: stocks per month (default {sim.n_stocks})")
    g.add_argument("--n-chars", type=_positive_int, default=sim.n_chars,
                   help=f"sim: characteristics (default {sim.n_chars}; 8 macro predictors are added)")
    g.add_argument("--data-seed", type=int, default=sim.seed, help="sim: seed of the simulated panel")
    g.add_argument("--chars", metavar="PATH", default=None,
                   help="gkx: the GKX characteristics file (datashare.csv or a parquet copy)")
    g.add_argument("--returns", metavar="PATH", default=None,
                   help="gkx: CRSP monthly returns (csv or parquet: permno, date, ret[, prc, shrout])")
    g.add_argument("--macro", metavar="PATH", default=None,
                   help="gkx: Welch-Goyal predictor data, workbook (sheet Monthly) or csv "
                        "(default: the 2022 copy shipped with the package)")
    g.add_argument("--macro-transform", choices=("rank", "zscore", "raw"), default="rank",
                   help="scale of the macro predictors, without look-ahead (default: rank)")
    g.add_argument("--sic2", action="store_true", help="gkx: add SIC2 one-hot dummies as factors")
    g.add_argument("--cache", metavar="DIR", default=None,
                   help="gkx: folder of the preprocessed-panel parquet cache "
                        "(default: ~/.cache/fapm-jax; 'none' disables it)")
    g.add_argument("--factors", default=None,
                   help="comma-separated factor names to train on (default: all)")
    t = p.add_argument_group("training")
    t.add_argument("--rank", type=_positive_int, default=tc.rank, help=f"rank k of V (default {tc.rank})")
    t.add_argument("--lr", type=_positive_float, default=tc.learning_rate,
                   help=f"learning rate (default {tc.learning_rate})")
    t.add_argument("--epochs", type=_positive_int, default=tc.epochs, help=f"epochs (default {tc.epochs})")
    t.add_argument("--batch-size", type=_positive_int, default=None, help="rows per step (default: full batch)")
    t.add_argument("--init-scale", type=_nonneg_float, default=tc.init_scale,
                   help=f"std of the normal draw of V (default {tc.init_scale})")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default=tc.optimizer)
    t.add_argument("--loss", choices=LOSSES, default=tc.loss)
    t.add_argument("--seed", type=int, default=tc.seed, help="training seed")
    w = p.add_argument_group("windows (paper: 1957 / 12 / 1987 / 30)")
    w.add_argument("--first-year", type=int, default=ws.first_year)
    w.add_argument("--valid-years", type=_positive_int, default=ws.valid_years)
    w.add_argument("--first-test-year", type=int, default=ws.first_test_year)
    w.add_argument("--windows", type=_positive_int, default=ws.n_windows)
    p.add_argument("--size-group", type=_positive_int, default=None,
                   help="n of the top-n / bottom-n R² rows (default 1000, or a third of the "
                        "monthly cross-section when it holds fewer than 2000 stocks)")
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
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,reproduce}",
                                parser_class=_Parser)
    run = sub.add_parser("run", help="train FAPM over the rolling windows and write predictions, R², parameters")
    _add_common(run, "runs/fapm")
    rep = sub.add_parser("reproduce", help="run the paper pipeline and write REPORT.md")
    _add_common(rep, "runs/reproduce")
    return parser


def _log(args, msg: str) -> None:
    if not args.quiet:
        print(msg, file=sys.stderr, flush=True)


def load_data(args):
    """The panel (and, for simulated data, its truth) selected by the command line."""
    truth = None
    try:
        if args.data == "sim":
            from .simulate import SimConfig, simulate_panel

            panel, truth = simulate_panel(
                SimConfig(n_stocks=args.stocks, n_chars=args.n_chars, seed=args.data_seed)
            )
        elif args.data == "french":
            from .french import french_panel

            panel = french_panel(macro_transform=args.macro_transform)
        else:
            panel = _load_gkx(args)
    except ValueError as e:  # every loader's errors are ValueError subclasses with one line
        raise CLIError(str(e).splitlines()[0])
    if args.factors:
        names = [f.strip() for f in args.factors.split(",") if f.strip()]
        panel = panel.select_features(names)
    return panel, truth


def _load_gkx(args):
    from .preprocess import build_gkx_panel

    missing = [opt for opt, v in (("--chars", args.chars), ("--returns", args.returns)) if not v]
    if missing:
        raise CLIError(f"--data gkx needs {' and '.join(missing)} PATH")
    for opt, path in (("--chars", args.chars), ("--returns", args.returns), ("--macro", args.macro)):
        if path and not Path(path).is_file():
            raise CLIError(f"{opt} {path}: no such file")
    cache = args.cache if args.cache is not None else str(Path.home() / ".cache" / "fapm-jax")
    return build_gkx_panel(
        args.chars, args.returns, args.macro, sic2_dummies=args.sic2,
        macro_transform=args.macro_transform, cache_dir=None if cache == "none" else cache,
    )


def configs(args):
    from .train import TrainConfig
    from .windows import WindowSpec

    train = TrainConfig(
        rank=args.rank, learning_rate=args.lr, epochs=args.epochs, batch_size=args.batch_size,
        init_scale=args.init_scale, optimizer=args.optimizer, loss=args.loss, seed=args.seed,
    )
    spec = WindowSpec(
        first_year=args.first_year, valid_years=args.valid_years,
        first_test_year=args.first_test_year, n_windows=args.windows,
    )
    return train, spec


def _progress(args, t0: float):
    def report(done, total, state):
        best = np.asarray(state.best_valid_r2)
        _log(args, f"  epoch {done:>4}/{total}  {time.perf_counter() - t0:6.1f} s  "
                   f"mean best validation R² {100 * np.nanmean(best):.3f}%")
    return report


def execute(args):
    """Load data, train all windows, write the run's files; return ``(run, panel, truth)``."""
    from .io import write_arrays, write_frame
    from .rolling import params_arrays, run_rolling, training_table

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: exists and is not a folder")
    t0 = time.perf_counter()
    panel, truth = load_data(args)
    train, spec = configs(args)
    _log(args, f"fapm: {panel.name} panel, {panel.n_rows:,} stock-months x {panel.n_features} factors; "
               f"{spec.n_windows} windows, rank {train.rank}, {train.epochs} epochs, lr {train.learning_rate}")
    chunk = max(1, train.epochs // 10)
    size_group = args.size_group
    if size_group is None and args.data == "french":
        from .french import FRENCH_SIZE_GROUP

        size_group = FRENCH_SIZE_GROUP  # top/bottom = exactly the S5 / S1 portfolios
    run = run_rolling(
        panel, train, spec, size_group=size_group,
        progress=None if args.quiet else _progress(args, t0), epochs_per_call=chunk,
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
    from .report import md_table, oracle_r2, pct, r2_section, training_section

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
    from .report import write_report

    run, panel, truth, train, spec = execute(args)
    out = Path(args.out)
    write_report(out / "summary.md", "fapm run", [("Summary", summary_text(run, panel, truth, train))])
    _log(args, f"fapm: R²_oos {100 * run.r2_value('all'):.3f}% (all), "
               f"{100 * run.r2_value(f'top-{run.size_group}'):.3f}% (top-{run.size_group}), "
               f"{100 * run.r2_value(f'bottom-{run.size_group}'):.3f}% (bottom-{run.size_group}); "
               f"wrote {out}/predictions.parquet, r2_oos.csv, training.csv, params.npz, summary.md")
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
    from .report import (PAPER_TABLE1, interaction_section, oracle_r2, r2_section, table1_figure,
                         training_section, write_report, yearly_figure)

    run, panel, truth, train, spec = execute(args)
    out = Path(args.out)
    n = run.size_group
    keys = (("all", "all"), ("top", f"top-{n}"), ("bottom", f"bottom-{n}"))
    lin = dict(zip(run.linear_r2["sample"].to_list(), run.linear_r2["r2_oos"].to_list()))
    ours = {
        "FAPM (ours)": {k: 100 * run.r2_value(s) for k, s in keys},
        "OLS start (ours)": {k: 100 * lin[s] for k, s in keys},
    }
    oracle = oracle_r2(run, truth) if truth is not None else None
    if oracle is not None:
        ours["Oracle"] = {k: 100 * oracle[s] for k, s in keys}
    fig4 = table1_figure({**ours, "FAPM (paper)": PAPER_TABLE1["FAPM"]}, out / "figure4_r2_oos.png",
                         f"R²_oos (%), {panel.name} data")
    figy = yearly_figure(run, out / "r2_oos_by_year.png", f"FAPM R²_oos by test year, {panel.name} data")
    sections = [
        ("Setup", setup_text(run, panel, train)),
        ("Table 1: monthly out-of-sample R² (%)",
         r2_section(run, oracle=oracle)
         + f"\n\n{_size_note(args, n)} The paper's other Table 1 columns (OLS, PLS, …, NN5, "
         "FAPM-7) come with the comparison suite.\n\n"
         f"![Figure 4]({fig4.name})"),
        ("R²_oos by test year (Algorithm 2)", f"![by year]({figy.name})"),
        ("Largest estimated interactions", interaction_section(run, list(panel.feature_names), truth)),
        ("Training per window", training_section(run)),
    ]
    write_report(out / "REPORT.md", f"FAPM reproduction — {panel.name} data", sections)
    _log(args, f"fapm: R²_oos {100 * run.r2_value('all'):.3f}%; wrote {out}/REPORT.md")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .macro import MacroDataError
    from .metrics import MetricsError
    from .panel import PanelError
    from .train import ConfigError
    from .windows import WindowError

    try:
        if args.command == "run":
            return cmd_run(args)
        return cmd_reproduce(args)
    except (CLIError, ConfigError, WindowError, PanelError, MacroDataError, MetricsError) as e:
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
