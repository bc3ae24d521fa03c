"""``fapm simulate``: GKX's Monte Carlo study (Internet Appendix Table A.1) with FAPM rows,
written as ``results.csv``, ``table_a1.csv`` and ``REPORT.md``."""

from __future__ import annotations

import time

from ..core.config import TrainConfig
from ..core.errors import ConfigError
from ..core.io import write_frame
from ..reporting.simulation_sections import table_a1_section
from ..studies.simulation_study import compare_table, run_study, sim_models, table_a1
from .common import available, log, output_dir
from .output import write_report
from .progress import Stages


def designs(args) -> list[tuple[str, int]]:
    """``--designs`` (``a50`` …) as ``(model, Pc)`` pairs."""
    out = []
    for d in args.designs:
        if len(d) < 2 or d[0] not in "ab" or d[1:] not in ("50", "100"):
            raise ConfigError(f"--designs {d!r}: expected a50, a100, b50 or b100")
        out.append((d[0], int(d[1:])))
    return out


def cmd_simulate(args) -> int:
    chosen = designs(args)
    names, missing = available(args.models, args)
    cfg = TrainConfig(rank=args.rank, learning_rate=args.lr, epochs=args.epochs)
    models = sim_models(
        names,
        profile=args.profile,
        fapm=not args.no_fapm,
        fapm_config=cfg,
        map_epochs=args.map_epochs,
        covariates=args.covariates,
        map_members=args.members,
    )
    out = output_dir(args)
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}

    log(
        args,
        f"fapm: GKX simulation study, {args.reps} repetitions x {len(chosen)} designs, {len(models)} models",
    )
    stages = Stages(args, len(chosen) * len(models), "simulate: cells")

    def progress(name, design, sec, reused):
        seconds[name] = seconds.get(name, 0.0) + sec
        stages.done(f"{design} {name} {sec:.1f} s{' (saved results reused)' if reused else ''}")

    res = run_study(
        models,
        args.reps,
        chosen,
        first_seed=args.first_seed,
        chunk=args.chunk,
        checkpoint_dir=out / ".study",
        progress=progress,
    )
    stages.close()
    total = time.perf_counter() - t0
    write_frame(out / "results.csv", res)
    ours = table_a1(res)
    section = table_a1_section(
        ours,
        compare_table(ours),
        seconds,
        reps=args.reps,
        first_seed=args.first_seed,
        profile=args.profile,
        total=total,
        missing=missing,
    )
    write_report(out / "REPORT.md", "GKX (2020) simulation study, with FAPM", [section])
    log(args, f"fapm: simulation study done in {total:.0f} s; wrote {out}/REPORT.md")
    return 0
