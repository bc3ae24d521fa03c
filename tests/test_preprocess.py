"""fapm_jax/preprocess.py: the GKX panel built from small files in the exact formats, checked
cell by cell against hand computations of ranks, medians, the t → t+1 alignment, excess
returns and value weights; the bad inputs are one-line errors; the parquet cache."""

from __future__ import annotations

import math
import os

import numpy as np
import polars as pl
import pytest
from helpers import one_line_error

from fapm_jax.core.errors import DataError
from fapm_jax.data.crsp_returns import load_returns
from fapm_jax.data.gkx_files import load_characteristics, scan_characteristics
from fapm_jax.data.macro import MACRO_NAMES, macro_panel
from fapm_jax.data.preprocess import build_gkx_panel, read_panel_cache

# The characteristics file, DATE first and rows out of order (the loader must sort).
#   month 200001: 5 stocks; 10005 has no return in 200002, so it is ranked but dropped.
#   month 200002: 4 stocks; 10006's return in 200003 is the letter code C: dropped.
#   month 200003: 3 stocks; only 10001 has a return in 200004.
DATASHARE = """DATE,permno,mvel1,bm,mom1m,sic2
20000229,10002,210,2,,13
20000131,10001,100,3,0.5,12
20000131,10002,200,1,NA,13
20000131,10003,300,NA,,12
20000131,10004,400,1,-0.5,
20000131,10005,500,5,0.0,13
20000229,10001,110,2,.,12
20000229,10004,410,2,NaN,
20000229,10006,600,NA,,13
20000331,10001,120,1,0.1,12
20000331,10002,220,2,0.2,13
20000331,10004,420,3,,
"""

# CRSP monthly file: upper-case names, an extra column, letter codes, one ISO date.
CRSP = """PERMNO,date,SHRCD,RET,PRC,SHROUT
10001,20000131,10,0.01,-10,10
10002,20000131,10,0.02,20,10
10004,20000131,10,0.0,40,10
10001,20000229,10,0.05,11,10
10002,20000229,10,-0.02,21,10
10003,20000229,10,0.10,,
10004,20000229,10,0.03,-41,10
10006,20000229,10,0.01,60,10
10001,20000331,10,0.04,12,10
10002,20000331,10,-0.01,22,10
10004,20000331,10,0.02,42,10
10006,20000331,10,C,61,10
10001,2000-04-28,10,0.06,13,10
10002,20000428,10,B,23,10
"""

WG_HEADER = "yyyymm,Index,D12,E12,b/m,tbl,AAA,BAA,lty,ntis,Rfree,infl,ltr,corpr,svar,csp,CRSP_SPvw,CRSP_SPvwx"
WG_ROWS = {  # month: (Index, D12, E12, b/m, tbl, AAA, BAA, lty, ntis, Rfree, svar)
    200001: (1400, 16.5, 50, 0.2, 0.053, 0.07, 0.08, 0.065, 0.01, 0.0041, 0.002),
    200002: (1360, 16.6, 51, 0.21, 0.055, 0.071, 0.081, 0.064, 0.012, 0.004, 0.003),
    200003: (1500, 16.7, 52, 0.19, 0.057, 0.072, 0.083, 0.062, 0.011, 0.005, 0.0025),
    200004: (1450, 16.8, 53, 0.2, 0.058, 0.073, 0.084, 0.063, 0.013, 0.006, 0.004),
}


def write_wg(path, months=tuple(WG_ROWS)):
    lines = [WG_HEADER]
    for m in months:
        I, D, E, bm, tbl, aaa, baa, lty, ntis, rf, svar = WG_ROWS[m]
        lines.append(
            f"{m},{I},{D},{E},{bm},{tbl},{aaa},{baa},{lty},{ntis},{rf},0.001,0.01,0.01,{svar},NaN,0.01,0.01"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def files(tmp_path):
    chars = tmp_path / "datashare.csv"
    chars.write_text(DATASHARE)
    rets = tmp_path / "crsp.csv"
    rets.write_text(CRSP)
    return chars, rets, write_wg(tmp_path / "wg.csv")


def build(files, **kw):
    chars, rets, wg = files
    kw.setdefault("macro_transform", "raw")
    kw.setdefault("min_stocks", 3)
    return build_gkx_panel(chars, rets, wg, **{"use_chars": "file", **kw})


# Hand computation. Rank map 2·rank/(n+1) − 1 over the n non-missing values, ties averaged,
# missing → 0.
#   200001 mvel1 100..500 (n=5): ranks 1..5 -> -2/3, -1/3, 0, 1/3, 2/3
#          bm 3, 1, NA, 1, 5 (n=4): 1,1 -> 1.5; 3 -> 3; 5 -> 4 -> 0.2, -0.4, 0, -0.4, 0.6
#          mom1m 0.5, NA, NA, -0.5, 0.0 (n=3): -> 0.5, 0, 0, -0.5, 0
#   200002 mvel1 110, 210, 410, 600 (n=4): -> -0.6, -0.2, 0.2, 0.6
#          bm 2, 2, 2, NA (n=3): all tied at rank 2 -> 0, 0, 0, (NA) 0;  mom1m all missing -> 0
#   200003 mvel1 120, 220, 420 -> 10001: -0.5;  bm 1, 2, 3 -> -0.5;  mom1m 0.1, 0.2, NA (n=2) -> -1/3
# Target r = RET(t+1) − Rfree(t+1);  mktcap = |PRC|·SHROUT at t, else mvel1.
EXPECTED = [
    # month, permno, (mvel1, bm, mom1m), r, mktcap, sic2
    (200001, 10001, (-2 / 3, 0.2, 0.5), 0.05 - 0.004, 100.0, 12),
    (200001, 10002, (-1 / 3, -0.4, 0.0), -0.02 - 0.004, 200.0, 13),
    (200001, 10003, (0.0, 0.0, 0.0), 0.10 - 0.004, 300.0, 12),  # no CRSP row at t: mvel1
    (200001, 10004, (1 / 3, -0.4, -0.5), 0.03 - 0.004, 400.0, -1),
    (200002, 10001, (-0.6, 0.0, 0.0), 0.04 - 0.005, 110.0, 12),
    (200002, 10002, (-0.2, 0.0, 0.0), -0.01 - 0.005, 210.0, 13),
    (200002, 10004, (0.2, 0.0, 0.0), 0.02 - 0.005, 410.0, -1),  # PRC -41: |PRC|
    (200003, 10001, (-0.5, -0.5, -1 / 3), 0.06 - 0.006, 120.0, 12),
]


def _macro_raw(month):
    I, D, E, bm, tbl, aaa, baa, lty, ntis, rf, svar = WG_ROWS[month]
    return {
        "dp": math.log(D) - math.log(I),
        "ep_macro": math.log(E) - math.log(I),
        "bm_macro": bm,
        "ntis": ntis,
        "tbl": tbl,
        "tms": lty - tbl,
        "dfy": baa - aaa,
        "svar": svar,
    }


def _check_panel(p, with_dummies=False):
    assert p.X.dtype == np.float32 and p.r.dtype == np.float32 and p.X.flags.c_contiguous
    chars = ("mvel1", "mom1m", "bm")  # GKX header order
    dummies = ("sic2_12", "sic2_13") if with_dummies else ()
    assert p.feature_names == chars + MACRO_NAMES + dummies
    assert p.macro_names == MACRO_NAMES
    assert p.n_rows == len(EXPECTED)
    for i, (month, permno, (mvel1, bm, mom1m), r, me, sic) in enumerate(EXPECTED):
        assert (p.month[i], p.permno[i]) == (month, permno)
        # Ranks are float32 of a float64 computation: tolerance 1e-7 absolute.
        np.testing.assert_allclose(p.X[i, :3], [mvel1, mom1m, bm], rtol=0, atol=1e-7)
        macro = _macro_raw(month)
        np.testing.assert_allclose(p.X[i, 3:11], [macro[m] for m in MACRO_NAMES], rtol=1e-6)
        assert p.r[i] == pytest.approx(r, abs=1e-8)
        assert p.mktcap[i] == pytest.approx(me, rel=1e-7)
        assert p.sic2[i] == sic
        if with_dummies:
            assert tuple(p.X[i, 11:]) == (float(sic == 12), float(sic == 13))


def test_panel_cell_by_cell(files):
    p = build(files)
    _check_panel(p)
    assert p.name == "gkx"


def test_sic2_dummies(files):
    _check_panel(build(files, sic2_dummies=True), with_dummies=True)


def test_frames_and_lazy_scan_give_the_same_panel(files):
    chars, rets, wg = files
    ref = build(files)
    for c in (load_characteristics(chars), scan_characteristics(chars)):
        p = build_gkx_panel(c, load_returns(rets), wg, macro_transform="raw", min_stocks=3, use_chars="file")
        np.testing.assert_array_equal(p.X, ref.X)
        np.testing.assert_array_equal(p.r, ref.r)
    frame = load_characteristics(chars)
    before = frame.clone()
    build_gkx_panel(frame, rets, wg, macro_transform="raw", min_stocks=3, use_chars="file")
    assert frame.equals(before)  # a caller's frame is not modified


def test_workbook_macro_source(files, tmp_path):
    import openpyxl  # a dev dependency, to write the workbook

    wb = openpyxl.Workbook()
    wb.active.title = "Monthly"
    header, *rows = [line.split(",") for line in files[2].read_text().splitlines()]
    wb.active.append(header)
    for row in rows:
        wb.active.append([c if c == "NaN" else float(c) for c in row])
    wb.save(tmp_path / "wg.xlsx")
    p = build_gkx_panel(
        files[0], files[1], tmp_path / "wg.xlsx", macro_transform="raw", min_stocks=3, use_chars="file"
    )
    _check_panel(p)


def test_default_macro_is_the_shipped_series_ranked(files):
    chars, rets, _ = files
    p = build_gkx_panel(
        chars, rets, min_stocks=3, use_chars="file"
    )  # Welch-Goyal copy in the package, "rank"
    ref = macro_panel(200001, 200003)  # expanding rank of the shipped series
    for i, month in enumerate(p.month):
        want = ref.filter(pl.col("month") == int(month)).select(MACRO_NAMES).row(0)
        np.testing.assert_allclose(p.X[i, 3:11], want, rtol=1e-6)
    assert np.all(np.abs(p.X) <= 1)
    # Same returns, the shipped Rfree of t+1 (welch_goyal_monthly.csv) instead of the test file's.
    rf_shipped = {200001: 0.0043, 200002: 0.0047, 200003: 0.0046}
    rf_test = {200001: 0.004, 200002: 0.005, 200003: 0.006}
    for i, (month, permno, _, r, _, _) in enumerate(EXPECTED):
        assert p.r[i] == pytest.approx(r + rf_test[month] - rf_shipped[month], abs=1e-8)


def test_mktcap_falls_back_to_mvel1_without_prices(files, tmp_path):
    chars, _, wg = files
    rets = tmp_path / "ret_only.csv"
    rets.write_text(
        "\n".join(",".join(line.split(",")[:2] + [line.split(",")[3]]) for line in CRSP.splitlines()) + "\n"
    )
    p = build_gkx_panel(chars, rets, wg, macro_transform="raw", min_stocks=3, use_chars="file")
    mvel1 = {
        (200001, 10001): 100,
        (200001, 10002): 200,
        (200001, 10003): 300,
        (200001, 10004): 400,
        (200002, 10001): 110,
        (200002, 10002): 210,
        (200002, 10004): 410,
        (200003, 10001): 120,
    }
    assert [mvel1[(m, q)] for m, q in zip(p.month, p.permno)] == p.mktcap.tolist()


# --------------------------------------------------------------------------- errors


_one_line = one_line_error


def test_no_overlap(files, tmp_path):
    rets = tmp_path / "old.csv"
    rets.write_text("PERMNO,date,RET\n10001,19900131,0.1\n10002,19900228,0.2\n")
    _one_line(
        DataError,
        lambda: build_gkx_panel(
            files[0], rets, files[2], min_stocks=3, use_chars="file", macro_transform="raw"
        ),
        "no overlap",
        "200001-200003",
        "199001-199002",
    )


def test_too_few_stocks_names_the_month(files):
    _one_line(
        DataError,
        lambda: build(files, min_stocks=5),
        r"month 200002: only 4 stocks",
        "min_stocks=5",
        r"\(2 such months\)",
    )


def test_macro_not_covering_the_panel(files, tmp_path):
    short = write_wg(tmp_path / "short.csv", months=(200001, 200003, 200004))
    _one_line(
        DataError,
        lambda: build_gkx_panel(
            files[0], files[1], short, macro_transform="raw", min_stocks=3, use_chars="file"
        ),
        "no row for month 200002",
    )
    no_rf = write_wg(tmp_path / "no_rf.csv", months=(200001, 200002, 200003))
    _one_line(
        DataError,
        lambda: build_gkx_panel(
            files[0], files[1], no_rf, macro_transform="raw", min_stocks=3, use_chars="file"
        ),
        r"no risk-free rate 'rf' for month 200004",
    )


def test_no_market_equity(files, tmp_path):
    rets = tmp_path / "ret_only.csv"
    rets.write_text("PERMNO,date,RET\n10001,20000229,0.1\n10002,20000229,0.1\n")
    no_mvel1 = tmp_path / "no_mvel1.csv"
    no_mvel1.write_text(
        "\n".join(
            ",".join(c for j, c in enumerate(line.split(",")) if j != 2) for line in DATASHARE.splitlines()
        )
        + "\n"
    )
    _one_line(
        DataError,
        lambda: build_gkx_panel(
            no_mvel1, rets, files[2], macro_transform="raw", min_stocks=3, use_chars="file"
        ),
        "no market equity",
        "no PRC/SHROUT",
        "no mvel1",
    )
    gap = tmp_path / "gap.csv"
    gap.write_text(DATASHARE.replace("20000131,10002,200,", "20000131,10002,,"))
    _one_line(
        DataError,
        lambda: build_gkx_panel(gap, rets, files[2], macro_transform="raw", min_stocks=3, use_chars="file"),
        r"no market equity for permno 10002, month 200001",
        r"\(1 such rows\)",
    )


def test_sic2_dummies_need_sic2(files, tmp_path):
    no_sic = tmp_path / "no_sic.csv"
    no_sic.write_text("\n".join(line.rsplit(",", 1)[0] for line in DATASHARE.splitlines()) + "\n")
    p = build_gkx_panel(no_sic, files[1], files[2], macro_transform="raw", min_stocks=3, use_chars="file")
    assert p.sic2 is None
    _one_line(
        DataError,
        lambda: build_gkx_panel(
            no_sic,
            files[1],
            files[2],
            sic2_dummies=True,
            macro_transform="raw",
            min_stocks=3,
            use_chars="file",
        ),
        "no sic2 column",
    )


def test_bad_frames_and_options(files):
    frame = load_characteristics(files[0])
    dup = pl.concat([frame, frame.head(1)])
    _one_line(
        DataError,
        lambda: build_gkx_panel(dup, files[1], files[2], min_stocks=3, use_chars="file"),
        "characteristics frame",
        "column 'permno'/'month'",
        "duplicate",
        r"\(10002, 200002\)",
        r"row 1, row 13 \(2 such rows\)",
    )
    _one_line(DataError, lambda: build(files, macro_transform="log"), "transform")


# --------------------------------------------------------------------------- cache


def test_exchange_codes_at_t(files, tmp_path):
    """CRSP's EXCHCD of month t becomes Panel.exchange (−1 where CRSP has no row or code at t);
    without the column the panel has none; the cache keeps it."""
    assert build(files).exchange is None
    lines = CRSP.strip().splitlines()
    codes = {"10001": "1", "10002": "3", "10004": "", "10006": "2"}  # 10004: code missing
    text = (
        "\n".join([lines[0] + ",EXCHCD"] + [f"{ln},{codes.get(ln.split(',')[0], '1')}" for ln in lines[1:]])
        + "\n"
    )
    (tmp_path / "crsp_exch.csv").write_text(text)
    chars, _, wg = files
    p = build((chars, tmp_path / "crsp_exch.csv", wg), cache_dir=tmp_path / "cache")
    _check_panel(p)
    # 10003 has no CRSP row at 200001 (-1); 10004's code is missing (-1)
    want = {10001: 1, 10002: 3, 10003: -1, 10004: -1}
    assert p.exchange.dtype == np.int32 and p.exchange.tolist() == [want[k] for k in p.permno.tolist()]
    again = read_panel_cache(next((tmp_path / "cache").iterdir()))
    np.testing.assert_array_equal(again.exchange, p.exchange)
    assert again.exchange.dtype == np.int32
    assert p.to_frame()["exchange"].to_list() == p.exchange.tolist()


def test_cache_round_trip_and_key(files, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = build(files, cache_dir=cache, sic2_dummies=True)
    written = sorted(cache.iterdir())
    assert len(written) == 1 and written[0].suffix == ".parquet"  # no temporary left behind

    import fapm_jax.data.preprocess as pre

    def boom(*a, **k):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(pre, "load_characteristics", boom)
    second = build(files, cache_dir=cache, sic2_dummies=True, name="again")
    assert second.name == "again"
    for f in ("X", "r", "permno", "month", "mktcap", "sic2"):
        np.testing.assert_array_equal(getattr(second, f), getattr(first, f))
        assert getattr(second, f).dtype == getattr(first, f).dtype
    assert second.feature_names == first.feature_names and second.macro_names == first.macro_names
    _check_panel(read_panel_cache(written[0]), with_dummies=True)

    # Other options, or a changed input file, are other keys: rebuilt, never a stale read.
    monkeypatch.undo()
    build(files, cache_dir=cache)
    assert len(list(cache.iterdir())) == 2
    st = files[1].stat()
    os.utime(files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    build(files, cache_dir=cache)
    assert len(list(cache.iterdir())) == 3


def test_cache_tiles_and_row_groups(tmp_path, monkeypatch):
    """A panel larger than a row group and a transpose tile survives the round trip exactly."""
    import fapm_jax.data.panel_cache as panel_cache
    import fapm_jax.data.preprocess as pre
    from fapm_jax.data.panel import Panel

    monkeypatch.setattr(panel_cache, "_CACHE_ROW_GROUP", 3000)
    monkeypatch.setattr(panel_cache, "_TRANSPOSE_ROWS", 700)
    rng = np.random.default_rng(1)
    n = 10_001
    month = np.repeat(np.arange(200001, 200011, dtype=np.int32), 1001)[:n]
    permno = np.tile(np.arange(1001, dtype=np.int64), 10)[:n]
    p = Panel(
        X=rng.normal(size=(n, 5)).astype(np.float32),
        r=rng.normal(size=n).astype(np.float32),
        permno=permno,
        month=month,
        mktcap=rng.uniform(1, 2, n).astype(np.float32),
        feature_names=("a", "b", "c", "tbl", "svar"),
        macro_names=("tbl", "svar"),
        sic2=None,
        name="t",
    )
    pre.write_panel_cache(tmp_path / "p.parquet", p)
    q = pre.read_panel_cache(tmp_path / "p.parquet", name="t")
    for f in ("X", "r", "permno", "month", "mktcap"):
        np.testing.assert_array_equal(getattr(q, f), getattr(p, f))
    assert q.sic2 is None and q.feature_names == p.feature_names and q.macro_names == p.macro_names


def test_characteristics_used_are_never_a_surprise(files):
    """Issue 18: a file without some GKX characteristics is an error by default, naming them;
    a subset named by the user (or 'file') trains on exactly it."""
    _one_line(
        DataError,
        lambda: build(files, use_chars="all"),
        r"missing GKX characteristic\(s\) beta, betasq, ",
        r"of the 94 in the file",
        "--use-chars NAMES or --drop-chars NAMES",
    )
    p = build(files, use_chars=["bm", "mvel1"])
    assert [f for f in p.feature_names if f in ("mvel1", "bm", "mom1m")] == ["mvel1", "bm"]
    q = build(files, drop_chars=["bm"])
    assert "bm" not in q.feature_names and "mvel1" in q.feature_names
    _one_line(
        DataError,
        lambda: build(files, use_chars=["bm", "mom1m", "nosuch"]),
        "unknown characteristic",
        "'nosuch'",
    )
    _one_line(
        DataError, lambda: build(files, use_chars=["bm", "agr"]), r"missing GKX characteristic\(s\) agr"
    )
