"""``fapm data check`` and :func:`fapm_jax.data.check.check_files`: on small files in the exact
formats whose every drop, gap and missing value is placed by hand, the report's numbers equal
hand counts; on inputs ``fapm run`` rejects, the check fails with ``fapm run``'s own one-line
message, exit code 2 and no output folder."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

import fapm_jax.data.check as check_mod
from fapm_jax.cli.parser import main
from fapm_jax.data.check import check_files, file_statistics, return_status
from fapm_jax.data.gkx_files import GKX_CHARS
from fapm_jax.data.macro import welch_goyal_path
from fapm_jax.data.preprocess import (
    gkx_panel_and_stats,
    panel_cache_file,
    read_file_stats,
    write_panel_cache,
)
from fapm_jax.data.windows import WindowSpec

N_STOCKS, FIRST_YEAR, LAST_YEAR = 12, 2000, 2012
PERMNOS = list(range(10001, 10001 + N_STOCKS))
MONTHS = [y * 100 + m for y in range(FIRST_YEAR, LAST_YEAR + 1) for m in range(1, 13)]
USE = "mvel1,bm,mom12m,mom1m,mom6m"
SPEC = WindowSpec(first_year=2000, valid_years=3, first_test_year=2010, n_windows=2)
WINDOWS = ["--first-year", "2000", "--valid-years", "3", "--first-test-year", "2010", "--windows", "2"]

# What the files below hold, by hand (t = the characteristics row's month):
#  - CRSP has no row (10003, 200707): the characteristics row (10003, 200706) is dropped (no CRSP
#    row in t + 1) and (10003, 200707) takes its market equity from mvel1;
#  - RET of (10005, 200506) is the letter code C: (10005, 200505) is dropped;
#  - RET of (10006, 201103) is empty: (10006, 201102) is dropped;
#  - RET of (10007, 201104) is -99 (a numeric missing code): (10007, 201103) is dropped;
#  - PRC of (10008, 200303) is empty: that row's market equity comes from mvel1;
#  - CRSP ends in 201212, so the 12 characteristics rows of 201212 are dropped;
#  - bm is missing for 10001 in 2001 (12 rows) and 10002 in 201101-201106 (6 rows);
#  - mom12m is missing for 10012 in 2005 (12 rows); mom6m is 0.5 everywhere (constant).
NO_CRSP_ROW = {(10003, 200707)}
RET_TEXT = {(10005, 200506): "C", (10006, 201103): "", (10007, 201104): "-99"}
NO_PRC = {(10008, 200303)}
FILE_ROWS = N_STOCKS * len(MONTHS)  # 12 x 156 = 1872
DROPPED = {"no_crsp_row": 1 + N_STOCKS, "letter_code": 1, "ret_missing": 1, "ret_code": 1}
PANEL_ROWS = FILE_ROWS - 16  # 1856
SHORT_MONTHS = {200505, 200706, 201102, 201103}  # 11 stocks; every other panel month has 12


def _bm_missing(p, m):
    return (p == 10001 and m // 100 == 2001) or (p == 10002 and 201101 <= m <= 201106)


def _mom12m_missing(p, m):
    return p == 10012 and m // 100 == 2005


def write_files(folder, seed=0):
    """datashare.csv (DATE first, GKX header names, sic2) and a CRSP CSV with upper-case names,
    PRC/SHROUT and EXCHCD, holding exactly the cases listed above."""
    rng = np.random.default_rng(seed)
    lines_c = ["DATE,permno,mvel1,bm,mom12m,mom1m,mom6m,sic2"]
    lines_r = ["PERMNO,date,RET,PRC,SHROUT,EXCHCD"]
    for m in MONTHS:
        for p in PERMNOS:
            bm = "" if _bm_missing(p, m) else f"{rng.normal():.4f}"
            mom12m = "" if _mom12m_missing(p, m) else f"{rng.normal():.4f}"
            mvel1 = f"{rng.lognormal(5, 1):.3f}"
            lines_c.append(f"{m * 100 + 28},{p},{mvel1},{bm},{mom12m},{rng.normal():.4f},0.5,{p % 7 + 10}")
            if (p, m) in NO_CRSP_ROW:
                continue
            ret = RET_TEXT.get((p, m), f"{rng.normal(0.01, 0.1):.5f}")
            prc = "" if (p, m) in NO_PRC else f"{-rng.uniform(5, 50):.2f}"
            lines_r.append(f"{p},{m * 100 + 28},{ret},{prc},{rng.integers(1000, 9000)},{p % 3 + 1}")
    chars, rets = folder / "datashare.csv", folder / "crsp.csv"
    chars.write_text("\n".join(lines_c) + "\n")
    rets.write_text("\n".join(lines_r) + "\n")
    return chars, rets


def _args(chars, rets, *extra):
    return ["--chars", str(chars), "--returns", str(rets), "--cache", "none", "--quiet", *extra]


@pytest.fixture
def files(tmp_path):
    return write_files(tmp_path)


def test_report_numbers_equal_hand_counts(files):
    chars, rets = files
    rep = check_files(
        chars,
        rets,
        use_chars=USE.split(","),
        spec=WindowSpec(first_year=2000, valid_years=3, first_test_year=2010, n_windows=2),
    )
    assert rep.file_rows == FILE_ROWS
    assert rep.dropped == DROPPED
    assert rep.n_stock_months == PANEL_ROWS
    assert rep.n_stocks == N_STOCKS
    assert (rep.first_month, rep.last_month, rep.n_months) == (200001, 201211, 155)
    spm = dict(zip(rep.months.tolist(), rep.stocks_per_month.tolist()))
    assert all(spm[m] == (11 if m in SHORT_MONTHS else 12) for m in MONTHS[:-1]) and 201212 not in spm
    assert rep.me_source == {"crsp": PANEL_ROWS - 2, "mvel1": 2}
    # missing shares over the panel's stock-months: 2000s hold 1440 - 2 rows, 2010s 432 - 14
    miss = {r["characteristic"]: r for r in rep.missing.iter_rows(named=True)}
    assert miss["bm"]["missing_rows"] == 18
    assert miss["bm"]["all"] == pytest.approx(18 / 1856)
    assert miss["bm"]["2000s"] == pytest.approx(12 / 1438)
    assert miss["bm"]["2010s"] == pytest.approx(6 / 418)
    assert miss["mom12m"]["2000s"] == pytest.approx(12 / 1438) and miss["mom12m"]["2010s"] == 0
    assert miss["mvel1"]["all"] == 0 and miss["mom1m"]["all"] == 0
    assert rep.constant_chars == ("mom6m",)
    assert set(rep.used_chars) == set(USE.split(",")) and len(rep.absent_chars) == 94 - 5
    assert rep.sic2_codes == 7 and rep.sic2_missing == 0
    # windows: train 2000-2006 lacks the row of 200505, valid 2007-2009 the row of 200706, ...
    got = [(w.train_rows, w.valid_rows, w.test_rows, w.fillable) for w in rep.windows]
    assert got == [(7 * 144 - 1, 3 * 144 - 1, 144, True), (8 * 144 - 2, 3 * 144, 144 - 2, True)]
    # the shipped Welch-Goyal data start in 1871: the 120-month history is there
    macro = {r["predictor"]: r for r in rep.macro.iter_rows(named=True)}
    assert macro["dp"]["first"] <= 187101 + 100 and macro["dp"]["history_ok"] and macro["dp"]["missing"] == 0
    assert macro["rf"]["missing"] == 0 and macro["rf"]["history"] is None
    para = rep.summary_paragraph()
    for piece in ("1,856 stock-months of 12 stocks over 155 months", "2000-01 to 2012-11", "2 of 2 windows"):
        assert piece in para


def test_return_status_reads_letter_and_numeric_codes(files):
    _, rets = files
    st = return_status(rets)
    assert st.height == FILE_ROWS - 1
    bad = st.filter(pl.col("status") != "ok").sort("permno")
    assert bad.rows() == [
        (10005, 200506, "letter_code"),
        (10006, 201103, "ret_missing"),
        (10007, 201104, "ret_code"),
    ]


def test_fapm_data_check_writes_the_report(files, tmp_path):
    chars, rets = files
    out = tmp_path / "report"
    assert (
        main(
            ["data", "check", *_args(chars, rets, "--use-chars", USE, "--sic2", *WINDOWS, "--out", str(out))]
        )
        == 0
    )
    text = (out / "data_check.md").read_text()
    assert "- Stock-months: 1,856" in text and "first 2000-01, last 2012-11" in text
    assert "| a letter code in RET at t + 1 (CRSP's A, B, C, …) | 1 |" in text
    assert "| no CRSP row for the stock in month t + 1 | 13 |" in text
    assert "| 1 | 2000–2007 | 2008–2010 | 2011 | 1,150 | 432 | 142 | yes |" in text
    assert "Constant over the panel after ranking (the factor is 0 everywhere): mom6m." in text
    assert "![stocks per month](stocks_per_month.png)" in text
    assert (out / "stocks_per_month.png").stat().st_size > 1000
    csv = pl.read_csv(out / "missing_by_characteristic.csv")
    bm = csv.filter(pl.col("characteristic") == "bm").row(0, named=True)
    assert bm["missing_rows"] == 18 and bm["2010s"] == pytest.approx(6 / 418)
    assert csv["characteristic"].to_list() == [c for c in GKX_CHARS if c in USE.split(",")]  # GKX order


def test_cache_gives_the_same_report(files, tmp_path, monkeypatch):
    chars, rets = files
    base = ["data", "check", "--chars", str(chars), "--returns", str(rets), "--use-chars", USE, "--quiet"]
    cache = ["--cache", str(tmp_path / "cache"), *WINDOWS]
    assert main([*base, "--cache", "none", *WINDOWS, "--out", str(tmp_path / "direct")]) == 0
    # with a cache the raw files are not re-read: the statistics come from the build, stored
    # beside the panel, and are read back on the second run
    monkeypatch.setattr(check_mod, "file_statistics", _no_rescan)
    assert main([*base, *cache, "--out", str(tmp_path / "a")]) == 0
    (cached,) = (tmp_path / "cache").iterdir()
    assert read_file_stats(cached) is not None  # in the panel file's metadata
    assert main([*base, *cache, "--out", str(tmp_path / "b")]) == 0  # read back from the cache
    text = (tmp_path / "a" / "data_check.md").read_text()
    assert text == (tmp_path / "b" / "data_check.md").read_text()
    assert text == (tmp_path / "direct" / "data_check.md").read_text()
    for name in ("a", "b"):
        assert (tmp_path / name / "missing_by_characteristic.csv").read_text() == (
            tmp_path / "direct" / "missing_by_characteristic.csv"
        ).read_text()


def _no_rescan(*args, **kwargs):
    raise AssertionError("the raw files were re-read although the cache has their statistics")


def test_stored_statistics_equal_the_files_and_are_keyed(files, tmp_path):
    chars, rets = files
    use = USE.split(",")
    cache_dir = tmp_path / "cache"
    panel, built = gkx_panel_and_stats(chars, rets, use_chars=use, cache_dir=cache_dir)
    assert built == file_statistics(chars, rets, panel)  # computed in the build = read from the files
    assert built.file_rows == FILE_ROWS and built.dropped == DROPPED and built.panel_rows == PANEL_ROWS
    assert built.me_source == {"crsp": PANEL_ROWS - 2, "mvel1": 2}
    cache_file = panel_cache_file(chars, rets, use_chars=use, cache_dir=cache_dir)
    assert cache_file.is_file() and read_file_stats(cache_file) == built
    _, cached = gkx_panel_and_stats(chars, rets, use_chars=use, cache_dir=cache_dir)
    assert cached == built
    # other inputs or options have another key (another file)
    assert panel_cache_file(chars, rets, use_chars=use[:-1], cache_dir=cache_dir) != cache_file
    # a panel cached without statistics, or with a stale one (for a panel of other rows): the
    # check reads the files instead
    panel_only = tmp_path / "panel_only.parquet"
    write_panel_cache(panel_only, panel)
    assert read_file_stats(panel_only) is None
    write_panel_cache(cache_file, panel, dataclasses.replace(built, decade_rows=(1, 2)))
    rep = check_files(chars, rets, use_chars=use, cache_dir=cache_dir, spec=SPEC)
    assert rep.n_stock_months == PANEL_ROWS and rep.file_rows == FILE_ROWS
    assert rep.dropped == DROPPED and rep.me_source == built.me_source
    # without a build: the panel passed in, nothing cached
    rep2 = check_files(chars, rets, panel=panel, spec=SPEC)
    assert rep2.missing.equals(rep.missing) and rep2.dropped == rep.dropped


def test_macro_history_is_reported_and_enforced(files, tmp_path, capsys):
    chars, rets = files
    wg = pl.read_csv(welch_goyal_path(), infer_schema_length=None)
    late = tmp_path / "wg_1995.csv"
    wg.filter(pl.col("yyyymm") >= 199501).write_csv(late)
    args = _args(chars, rets, "--use-chars", USE, "--macro", str(late), *WINDOWS)
    # raw needs no history: the check passes and says the history is short (199501-200001: 61)
    out = tmp_path / "raw"
    assert main(["data", "check", *args, "--macro-transform", "raw", "--out", str(out)]) == 0
    assert "| dp | 1995-01 |" in (out / "data_check.md").read_text()
    assert "| 61 (no) |" in (out / "data_check.md").read_text()
    # rank needs 120 months: fapm run's one-line error
    capsys.readouterr()
    assert main(["data", "check", *args, "--out", str(tmp_path / "rank")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs 120 months" in err and not (tmp_path / "rank").exists()
    assert main(["run", "--data", "gkx", *args, "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == err


def _edit_chars(chars, row, col, value):
    lines = chars.read_text().splitlines()
    cells = lines[row].split(",")
    cells[col] = value
    lines[row] = ",".join(cells)
    chars.write_text("\n".join(lines) + "\n")


def _duplicate_row(chars, row):
    lines = chars.read_text().splitlines()
    chars.write_text("\n".join([*lines[: row + 1], lines[row], *lines[row + 1 :]]) + "\n")


def _edit_returns(rets, row, col, value):
    _edit_chars(rets, row, col, value)


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("non-numeric", "column 'bm': non-numeric value"),
        ("duplicate", "duplicate (permno, month)"),
        ("absent-char", "missing GKX characteristic(s)"),
        ("window", "windows need years 1990-2011"),
        ("bad-prc", "column 'PRC': non-numeric value"),
    ],
)
def test_bad_input_is_fapm_runs_one_line(files, tmp_path, capsys, case, fragment):
    chars, rets = files
    use = ["--use-chars", USE]
    windows = list(WINDOWS)
    if case == "non-numeric":
        _edit_chars(chars, 5, 3, "abc")
    elif case == "duplicate":
        _duplicate_row(chars, 7)
    elif case == "absent-char":
        use = []
    elif case == "window":
        windows[1] = "1990"
    elif case == "bad-prc":
        _edit_returns(rets, 9, 3, "x")
    args = _args(chars, rets, *use, *windows)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["data", "check", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
    assert not out.exists()  # nothing written
    run_out = tmp_path / "run"
    assert main(["run", "--data", "gkx", *args, "--out", str(run_out)]) == 2
    assert capsys.readouterr().err.strip() == err  # the same message as fapm run


def test_chars_and_returns_are_required(capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "check", "--returns", "x.csv"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--chars" in err


def test_fapm_run_prints_the_data_check_paragraph_before_training(files, tmp_path, capsys):
    """``fapm run --data gkx`` logs the same one-paragraph summary as ``fapm data check``, before
    its first training line (from the statistics stored with the cached panel)."""
    chars, rets = files
    common = [
        "--chars",
        str(chars),
        "--returns",
        str(rets),
        "--use-chars",
        USE,
        "--cache",
        str(tmp_path / "c"),
    ]
    common += WINDOWS  # not --quiet: the paragraph is a progress line
    assert main(["data", "check", *common, "--out", str(tmp_path / "check")]) == 0
    para = next(x for x in capsys.readouterr().err.splitlines() if "stock-months of" in x)
    assert "1,856 stock-months of 12 stocks" in para
    run = ["run", "--data", "gkx", *common, "--epochs", "2", "--rank", "2", "--out", str(tmp_path / "run")]
    assert main(run) == 0
    err = capsys.readouterr().err.splitlines()
    at = next(i for i, x in enumerate(err) if "stock-months of" in x)
    assert err[at] == para
    assert at < next(i for i, x in enumerate(err) if "epoch" in x)
