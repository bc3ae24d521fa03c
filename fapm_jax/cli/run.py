"""``fapm run``: load the panel, train FAPM over the rolling windows (Algorithm 2) and write
its forecasts, R²_oos, training table, parameters and ``summary.md``. ``fapm reproduce``
starts from the same :func:`execute`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.config import TrainConfig
from ..core.errors import ConfigError, DataError, FAPMError
from ..core.io import write_arrays, write_frame
from ..data.check import DataReport, check_files
from ..data.embedded import SimConfig, SimTruth, simulate_panel
from ..data.french import FRENCH_SIZE_GROUP, french_panel
from ..data.panel import Panel
from ..data.preprocess import build_gkx_panel
from ..data.windows import WindowSpec
from ..reporting.run_sections import characteristics_line, summary_section
from ..studies.estimators import make_estimator, run_estimator
from ..studies.rolling import RollingRun, params_arrays, training_table
from .common import log, output_dir
from .output import write_report
from .progress import Stages


def _cache(args) -> str | None:
    """The panel cache folder of ``--cache`` (``None``: disabled)."""
    cache = args.cache if args.cache is not None else str(Path.home() / ".cache" / "fapm-jax")
    return None if cache == "none" else cache


def data_report(args, panel: Panel, spec: WindowSpec) -> DataReport:
    """The report of ``fapm data check`` for the files of the command line and the ``panel``
    loaded from them (the file statistics stored with its cached panel, when there is one)."""
    try:
        return check_files(
            args.chars,
            args.returns,
            args.macro,
            panel=panel,
            spec=spec,
            macro_transform=args.macro_transform,
            sic2_dummies=args.sic2,
            use_chars=args.use_chars or "all",
            drop_chars=args.drop_chars,
            cache_dir=_cache(args),
        )
    except FAPMError:
        raise
    except ValueError as e:  # a library's parsing error: still one line
        raise DataError(str(e).splitlines()[0]) from None


def _load_gkx(args) -> Panel:
    missing = [opt for opt, v in (("--chars", args.chars), ("--returns", args.returns)) if not v]
    if missing:
        raise ConfigError(f"--data gkx needs {' and '.join(missing)} PATH")
    for opt, path in (("--chars", args.chars), ("--returns", args.returns), ("--macro", args.macro)):
        if path and not Path(path).is_file():
            raise ConfigError(f"{opt} {path}: no such file")
    return build_gkx_panel(
        args.chars,
        args.returns,
        args.macro,
        sic2_dummies=args.sic2,
        use_chars=args.use_chars or "all",
        drop_chars=args.drop_chars,
        macro_transform=args.macro_transform,
        cache_dir=_cache(args),
    )


def load_data(args) -> tuple[Panel, SimTruth | None]:
    """The panel (and, for simulated data, its truth) selected by the command line."""
    truth = None
    try:
        if args.data == "sim":
            sim = SimConfig(n_stocks=args.stocks, n_chars=args.n_chars, seed=args.data_seed)
            panel, truth = simulate_panel(sim)
        elif args.data == "french":
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


def configs(args) -> tuple[TrainConfig, WindowSpec]:
    """The training configuration and the windows of the command line."""
    train = TrainConfig(
        rank=args.rank,
        learning_rate=args.lr,
        epochs=args.epochs or TrainConfig().epochs,
        batch_size=args.batch_size,
        init_scale=args.init_scale,
        optimizer=args.optimizer,
        loss=args.loss,
        seed=args.seed,
        estimator=getattr(args, "estimator", "paper"),
        level=getattr(args, "level", "model"),
        settings_batch=getattr(args, "settings_batch", None),
    )
    spec = WindowSpec(
        first_year=args.first_year,
        valid_years=args.valid_years,
        first_test_year=args.first_test_year,
        n_windows=args.windows,
    )
    return train, spec


def _progress(args, total: int) -> tuple[Stages, object]:
    """A progress bar over the epochs (plain lines in a log) and the trainer's callback."""
    stages = Stages(args, total, "fapm run: epochs")
    last = [0]

    def report(done, total, state):
        best = np.asarray(state.best_valid_r2)
        stages.done(
            f"epoch {done}/{total}, mean best validation R² {100 * np.nanmean(best):.3f}%", n=done - last[0]
        )
        last[0] = done

    return stages, report


def execute(args) -> tuple[RollingRun, Panel, SimTruth | None, TrainConfig, WindowSpec]:
    """Load data, train all windows, write the run's files; return ``(run, panel, truth, train,
    spec)``."""
    out = output_dir(args)
    panel, truth = load_data(args)
    train, spec = configs(args)
    if args.data == "gkx":  # the paragraph of fapm data check (seconds with the panel cache)
        if _cache(args) is not None:
            log(args, "fapm: " + data_report(args, panel, spec).summary_paragraph())
        else:
            log(args, "fapm: no panel cache (--cache none); fapm data check writes the data report")
    est = make_estimator(
        train,
        panel,
        spec,
        epochs=args.epochs,
        select=getattr(args, "select", "window"),
        members=getattr(args, "members", None),
    )
    cfg = est.config
    log(
        args,
        f"fapm: {panel.name} panel, {panel.n_rows:,} stock-months x {panel.n_features} factors; "
        f"{spec.n_windows} windows, estimator {train.estimator} ({est.name}, {len(est.points)} setting(s)), "
        f"rank {cfg.rank}, {cfg.epochs} epochs, lr {cfg.learning_rate}; {characteristics_line(panel)}",
    )
    size_group = args.size_group
    if size_group is None and args.data == "french":
        size_group = FRENCH_SIZE_GROUP  # top/bottom = exactly the S5 / S1 portfolios
    stages, report = _progress(args, cfg.epochs)
    run = run_estimator(
        panel,
        est,
        spec,
        size_group=size_group,
        progress=report,
        epochs_per_call=max(1, cfg.epochs // 10),
        checkpoint=out / ".checkpoint.npz",  # an interrupted run resumes where it stopped
    )
    stages.close()
    write_frame(out / "predictions.parquet", run.predictions.select("permno", "month", "r", "r_hat"))
    write_frame(out / "r2_oos.csv", run.r2)
    write_frame(out / "training.csv", training_table(run))
    write_arrays(out / "params.npz", params_arrays(run, panel.feature_names))
    return run, panel, truth, train, spec


def cmd_run(args) -> int:
    run, panel, truth, train, _ = execute(args)
    out = Path(args.out)
    write_report(out / "summary.md", "fapm run", [summary_section(run, panel, truth, train)])
    n = run.size_group
    log(
        args,
        f"fapm: R²_oos {100 * run.r2_value('all'):.3f}% (all), "
        f"{100 * run.r2_value(f'top-{n}'):.3f}% (top-{n}), "
        f"{100 * run.r2_value(f'bottom-{n}'):.3f}% (bottom-{n}); "
        f"wrote {out}/predictions.parquet, r2_oos.csv, training.csv, params.npz, summary.md",
    )
    return 0
