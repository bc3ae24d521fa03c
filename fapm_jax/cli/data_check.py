"""``fapm data check``: read the user's GKX files exactly as ``fapm run --data gkx`` does (the
same loader, :func:`fapm_jax.cli.run.load_data`, and the same window check), train nothing, and
write ``data_check.md`` with ``stocks_per_month.png`` and ``missing_by_characteristic.csv``.

Exit code 0 when ``fapm run`` would run on the files; otherwise the one-line error ``fapm run``
gives, exit code 2, and nothing is written.
"""

from __future__ import annotations

import time

from ..data.windows import WindowSpec, rolling_windows, window_masks
from ..reporting.data_sections import FIGURE, MISSING_TABLE, data_check_section
from .common import log, output_dir
from .output import write_report
from .progress import Stages
from .run import data_report, load_data

REPORT = "data_check.md"


def cmd_data_check(args) -> int:
    out = output_dir(args)
    t0 = time.perf_counter()
    log(args, f"fapm: checking {args.chars} and {args.returns} as fapm run --data gkx reads them")
    stages = Stages(args, 3, "data check")
    panel, _ = load_data(args)  # args.data is "gkx" (the parser's default for this command)
    stages.done(f"panel loaded: {panel.n_rows:,} stock-months x {panel.n_features} factors")
    spec = WindowSpec(
        first_year=args.first_year,
        valid_years=args.valid_years,
        first_test_year=args.first_test_year,
        n_windows=args.windows,
    )
    window_masks(panel.year, rolling_windows(spec))  # run_rolling's check: the same WindowError
    report = data_report(args, panel, spec)  # the options and cache of fapm run's load
    stages.done("report computed")
    del panel
    write_report(out / REPORT, "fapm data check", [data_check_section(report)])
    stages.done("report written")
    stages.close()
    log(args, "fapm: " + report.summary_paragraph())
    log(
        args,
        f"fapm: the files are ready for fapm run ({time.perf_counter() - t0:.1f} s); "
        f"wrote {out}/{REPORT}, {FIGURE}, {MISSING_TABLE}",
    )
    return 0
