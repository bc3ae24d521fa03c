"""Loading and preprocessing the GKX characteristics file at its real size.

``python -m benchmarks.load_scale --rows 4100000 --out /tmp/gkx_scale`` writes a synthetic
``datashare.csv`` in the exact format of GKX's file (``permno, DATE`` month-end ``YYYYMMDD``,
the 94 characteristics with ≈18% missing values written as empty fields, ``sic2``; ≈3.6 GB at
4.1M rows over 1957–2016) and a CRSP monthly returns CSV (``PERMNO, date, RET, PRC, SHROUT``
with letter codes in ``RET``), then times :func:`fapm_jax.data.preprocess.build_gkx_panel` twice:

* cold: load, rank, align and build the panel, then write the parquet cache;
* cached: the same call again, which reads the cache;

and ``fapm data check`` on the same files (``fapm_jax.cli.parser.main(["data", "check", ...])``,
its own ``--cache`` folder):

* cold: an empty cache folder: load, rank, build and cache the panel, then the report;
* cached: a second run, whose panel comes from the cache;
* ``check_files`` alone: the panel loaded from that cache first (untimed), then only
  :func:`fapm_jax.data.check.check_files` with ``panel=`` and the same cache folder, whose
  stored file statistics it reads (what ``fapm run`` would add to print the report's summary
  paragraph).

Each measurement runs in a fresh child process that reports its own peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, stdlib), so the numbers include everything
the process touched: the Python interpreter, JAX (imported by ``fapm_jax``), polars' buffers
and the file pages it mapped. (The data is generated in another child, so that the parent
stays small: a forked child's ``ru_maxrss`` starts at its parent's resident set.) The generated data is
kept in ``--out`` (never in the repo) and
reused by later runs of the same size.
"""

from __future__ import annotations

import argparse
import calendar
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FIRST_YEAR, LAST_YEAR = 1957, 2016
LIFE_MONTHS = 120  # a stock stays ~10 years, so identifiers turn over as in CRSP


def _months() -> list[int]:
    return [y * 100 + m for y in range(FIRST_YEAR, LAST_YEAR + 1) for m in range(1, 13)]


def _month_end(month: int) -> int:
    y, m = divmod(month, 100)
    return month * 100 + calendar.monthrange(y, m)[1]


def _alive(i: int, n: int) -> np.ndarray:
    """permnos alive in month index ``i``: a sliding block of ``n`` identifiers."""
    base = i * n // LIFE_MONTHS
    return 10000 + base + np.arange(n, dtype=np.int64)


def write_data(rows: int, out: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write ``datashare.csv`` and ``crsp_msf.csv`` with about ``rows`` characteristic rows."""
    import polars as pl

    from fapm_jax.data.gkx_files import gkx_characteristic_names

    out.mkdir(parents=True, exist_ok=True)
    chars_path, ret_path = out / "datashare.csv", out / "crsp_msf.csv"
    stamp = out / "data.json"
    if (
        stamp.exists()
        and json.loads(stamp.read_text()) == {"rows": rows, "seed": seed}
        and chars_path.exists()
        and ret_path.exists()
    ):
        return chars_path, ret_path
    names = gkx_characteristic_names()
    months = _months()
    n = max(rows // len(months), 10)
    rng = np.random.default_rng(seed)
    miss = rng.uniform(0.0, 0.36, len(names))  # per-characteristic missing share, mean ≈ 18%
    miss[names.index("mvel1")] = 0.002
    per_chunk = max(1, 250_000 // n)
    t0 = time.perf_counter()
    with open(chars_path, "wb") as fc, open(ret_path, "wb") as fr:
        for start in range(0, len(months) + 1, per_chunk):
            idx = range(start, min(start + per_chunk, len(months) + 1))
            permno = np.concatenate([_alive(i, n) for i in idx])
            dates = np.concatenate([np.full(n, _month_end(_month_at(i)), np.int64) for i in idx])
            k = permno.size
            # CRSP: one row per stock-month, including the month after the last GKX month.
            ret = rng.normal(0.01, 0.15, k).round(6).astype(str).astype(object)
            ret[rng.random(k) < 0.005] = "C"
            ret[rng.random(k) < 0.002] = "B"
            prc = np.exp(rng.normal(3.0, 1.0, k)).round(4) * np.where(rng.random(k) < 0.05, -1, 1)
            pl.DataFrame(
                {
                    "PERMNO": permno,
                    "date": dates,
                    "RET": ret.astype(str),
                    "PRC": prc,
                    "SHROUT": rng.integers(100, 500_000, k),
                }
            ).write_csv(fr, include_header=start == 0)
            keep = np.concatenate([np.full(n, i < len(months)) for i in idx])
            if not keep.any():
                continue
            permno, dates, k = permno[keep], dates[keep], int(keep.sum())
            X = rng.standard_normal((k, len(names)), dtype=np.float32)
            X[:, names.index("mvel1")] = np.exp(rng.normal(11.0, 2.0, k)).astype(np.float32)
            X[rng.random((k, len(names))) < miss] = np.nan
            frame = pl.DataFrame(X, schema=list(names)).fill_nan(None)
            sic = pl.Series("sic2", rng.integers(1, 100, k), dtype=pl.Int32)
            sic = sic.scatter(np.flatnonzero(rng.random(k) < 0.02), None)
            frame = pl.concat(
                [pl.DataFrame({"permno": permno, "DATE": dates}), frame, sic.to_frame()], how="horizontal"
            )
            frame.write_csv(fc, include_header=start == 0, null_value="")
    stamp.write_text(json.dumps({"rows": rows, "seed": seed}))
    print(
        f"wrote {chars_path} ({chars_path.stat().st_size / 1e9:.2f} GB) and {ret_path} "
        f"in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    return chars_path, ret_path


def _month_at(i: int) -> int:
    y, m = divmod(i, 12)
    return (FIRST_YEAR + y) * 100 + m + 1


def _child(chars: str, rets: str, cache_dir: str, sic2_dummies: str = "0") -> None:
    """Run in a fresh process: build the panel, print timings and peak RSS as one JSON line."""
    t_import = time.perf_counter()
    from fapm_jax.data.preprocess import build_gkx_panel

    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    panel = build_gkx_panel(chars, rets, cache_dir=cache_dir, sic2_dummies=sic2_dummies == "1")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "import_s": t0 - t_import,
                "peak_rss_mib": peak / 1024,
                "import_rss_mib": rss_import / 1024,
                "rows": panel.n_rows,
                "factors": panel.n_features,
                "X_mib": panel.X.nbytes / 2**20,
            }
        )
    )


def _check_argv(chars: str, rets: str, cache_dir: str, sic2_dummies: str, out: str) -> list[str]:
    argv = ["data", "check", "--chars", chars, "--returns", rets, "--cache", cache_dir, "--out", out]
    return [*argv, "--sic2"] if sic2_dummies == "1" else argv


def _check_child(chars: str, rets: str, cache_dir: str, sic2_dummies: str, out: str) -> None:
    """Run in a fresh process: ``fapm data check`` on the files; timings and peak RSS as JSON."""
    t_import = time.perf_counter()
    from fapm_jax.cli.parser import main

    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    code = main(_check_argv(chars, rets, cache_dir, sic2_dummies, out))
    seconds = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"fapm data check exited with {code}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "import_s": t0 - t_import,
                "peak_rss_mib": peak / 1024,
                "import_rss_mib": rss_import / 1024,
            }
        )
    )


def _check_files_child(chars: str, rets: str, cache_dir: str, sic2_dummies: str, out: str) -> None:
    """Run in a fresh process: load the panel as ``fapm data check`` does (from the cache), then
    time :func:`~fapm_jax.data.check.check_files` alone on it."""
    t_import = time.perf_counter()
    from fapm_jax.cli.parser import build_parser
    from fapm_jax.cli.run import data_report, load_data
    from fapm_jax.data.windows import WindowSpec

    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    args = build_parser().parse_args(_check_argv(chars, rets, cache_dir, sic2_dummies, out))
    spec = WindowSpec(
        first_year=args.first_year,
        valid_years=args.valid_years,
        first_test_year=args.first_test_year,
        n_windows=args.windows,
    )
    t0 = time.perf_counter()
    panel, _ = load_data(args)
    t1 = time.perf_counter()
    rss_panel = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = data_report(args, panel, spec)  # as cli.data_check calls it: that cache's statistics
    seconds = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "load_s": t1 - t0,
                "import_s": t0 - t_import,
                "peak_rss_mib": peak / 1024,
                "panel_rss_mib": rss_panel / 1024,
                "import_rss_mib": rss_import / 1024,
                "stock_months": report.n_stock_months,
            }
        )
    )


def measure(
    chars: Path, rets: Path, cache_dir: Path, sic2_dummies: bool = False, mode: str = "--child", *extra
):
    """Run one child (``mode``: ``--child``, ``--check-child``, ``--check-files-child``) and return
    its JSON line, with ``stderr`` (its log) added."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.load_scale",
        mode,
        str(chars),
        str(rets),
        str(cache_dir),
        "1" if sic2_dummies else "0",
        *map(str, extra),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000, help="characteristic rows (GKX: 4100000)")
    p.add_argument("--out", default="/tmp/gkx_scale", help="folder for the data, cache and results")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sic2-dummies", action="store_true", help="also build the sic2_XX one-hot columns")
    p.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child", nargs=4, metavar=("CHARS", "RETURNS", "CACHE", "SIC"), help=argparse.SUPPRESS)
    five = ("CHARS", "RETURNS", "CACHE", "SIC", "OUT")
    p.add_argument("--check-child", nargs=5, metavar=five, help=argparse.SUPPRESS)
    p.add_argument("--check-files-child", nargs=5, metavar=five, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return _child(*a.child)
    if a.check_child:
        return _check_child(*a.check_child)
    if a.check_files_child:
        return _check_files_child(*a.check_files_child)
    out = Path(a.out)
    if Path(__file__).resolve().parents[1] in out.resolve().parents:
        raise SystemExit(f"--out {out}: keep the generated data outside the repository")
    if a.generate_only:
        write_data(a.rows, out, a.seed)
        return None
    # Generate in a child too: Linux starts a forked child's ru_maxrss at the parent's resident
    # set, so the measuring children must come from a parent that stayed small.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.load_scale",
            "--rows",
            str(a.rows),
            "--out",
            str(out),
            "--seed",
            str(a.seed),
            "--generate-only",
        ],
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    chars, rets = out / "datashare.csv", out / "crsp_msf.csv"
    cache = out / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    rows = []
    for label in ("cold (build + write cache)", "cached (read cache)"):
        r = measure(chars, rets, cache, a.sic2_dummies)
        del r["stderr"]
        r["run"] = label
        rows.append(r)
        print(f"{label}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mib'] / 1024:.2f} GiB", flush=True)
    check_cache, report_dir = out / "check_cache", out / "data_check"
    shutil.rmtree(check_cache, ignore_errors=True)
    checks = []
    for label, mode in (
        ("fapm data check, cold (empty cache)", "--check-child"),
        ("fapm data check, cached", "--check-child"),
        ("check_files alone (panel from the cache)", "--check-files-child"),
    ):
        r = measure(chars, rets, check_cache, a.sic2_dummies, mode, report_dir)
        log = r.pop("stderr")
        r["run"] = label
        if mode == "--check-child":
            r["summary"] = next(
                (ln.removeprefix("fapm: ") for ln in log.splitlines() if " stock-months of " in ln), None
            )
        checks.append(r)
        print(f"{label}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mib'] / 1024:.2f} GiB", flush=True)
    summary = checks[-2]["summary"]
    size = chars.stat().st_size
    cache_size = sum(f.stat().st_size for f in cache.glob("*.parquet"))
    lines = [
        f"datashare.csv: {size / 1e9:.2f} GB, {rows[0]['rows']:,} panel rows x {rows[0]['factors']} "
        f"factors (X = {rows[0]['X_mib'] / 1024:.2f} GiB float32); cache {cache_size / 1e9:.2f} GB",
        "",
        "| run | time (s) | peak RSS (GiB) | RSS after imports (GiB) |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['run']} | {r['seconds']:.1f} | {r['peak_rss_mib'] / 1024:.2f} | "
        f"{r['import_rss_mib'] / 1024:.2f} |"
        for r in [*rows, *checks]
    ]
    alone = checks[-1]
    lines += [
        "",
        f"check_files alone: {alone['seconds']:.1f} s after loading the panel from the cache in "
        f"{alone['load_s']:.1f} s ({100 * alone['seconds'] / alone['load_s']:.0f}% of the cached load)",
        "",
        f"Summary paragraph: {summary}",
    ]
    text = "\n".join(lines) + "\n"
    tag = "_sic2" if a.sic2_dummies else ""
    (out / f"load_scale{tag}.md").write_text(text)
    (out / f"load_scale{tag}.json").write_text(
        json.dumps(
            {
                "csv_bytes": size,
                "cache_bytes": cache_size,
                "runs": rows,
                "data_check": checks,
                "summary": summary,
            },
            indent=1,
        )
    )
    print(text)


if __name__ == "__main__":
    main()
