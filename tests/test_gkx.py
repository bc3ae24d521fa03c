"""fapm_jax/gkx.py: the GKX characteristics file and CRSP returns, read from small files written
here in each exact format, checked cell by cell against the text that was written; and every
bad input is a one-line DataError naming the file, the column and the first rows."""

from __future__ import annotations

import gzip
import math
import re

import numpy as np
import polars as pl
import pytest
from helpers import one_line_error

from fapm_jax.core.errors import DataError
from fapm_jax.data.crsp_returns import check_returns, load_returns
from fapm_jax.data.gkx_files import GKX_CHARS, load_characteristics, scan_characteristics
from fapm_jax.data.preprocess import rank_expr

# Three characteristics (in GKX header order: mvel1, mom1m, bm) of 3 stocks over 2 months,
# with every missing-value spelling of the brief: empty, NA, NaN, ".".
CHARS_ROWS = [
    # permno, DATE,     mvel1,   mom1m,  bm,    sic2
    ("10001", "20000131", "1500.5", "0.1", "3", "12"),
    ("10002", "20000131", "220", "", "NA", "13"),
    ("10003", "20000131", "NaN", "-0.25", ".", ""),
    ("10001", "20000229", "1510", "0.2", "2.5", "12"),
    ("10002", "20000229", "230", "-0.1", "1e-3", "13"),
    ("10003", "20000229", "330", ".", "4", ""),
]
EXPECTED = {  # (permno, month) -> (mvel1, mom1m, bm, sic2)
    (10001, 200001): (1500.5, 0.1, 3.0, 12),
    (10002, 200001): (220.0, None, None, 13),
    (10003, 200001): (None, -0.25, None, None),
    (10001, 200002): (1510.0, 0.2, 2.5, 12),
    (10002, 200002): (230.0, -0.1, 1e-3, 13),
    (10003, 200002): (330.0, None, 4.0, None),
}


def write_datashare(path, rows=CHARS_ROWS, date_first=False, header=None):
    """A datashare.csv: ``permno,DATE,...`` (the public file) or ``DATE,permno,...``."""
    header = header or ["permno", "DATE", "bm", "mvel1", "mom1m", "sic2"]
    lines = []
    for p, d, mvel1, mom1m, bm, sic in rows:
        cells = {"permno": p, "DATE": d, "mvel1": mvel1, "mom1m": mom1m, "bm": bm, "sic2": sic}
        lines.append([cells[h] for h in header])
    if date_first:
        header = [header[1], header[0]] + header[2:]
        lines = [[c[1], c[0]] + c[2:] for c in lines]
    path.write_text("\n".join(",".join(r) for r in [header] + lines) + "\n")
    return path


def _check_cells(df: pl.DataFrame):
    assert df.columns == ["permno", "month", "mvel1", "mom1m", "bm", "sic2"]  # GKX order
    assert df.schema["permno"] == pl.Int64 and df.schema["month"] == pl.Int32
    assert all(df.schema[c] == pl.Float64 for c in ("mvel1", "mom1m", "bm"))
    assert df.schema["sic2"] == pl.Int32
    assert df.height == len(EXPECTED)
    for row in df.iter_rows(named=True):
        want = EXPECTED[(row["permno"], row["month"])]
        for col, w in zip(("mvel1", "mom1m", "bm", "sic2"), want):
            got = row[col]
            if w is None:
                assert got is None, (row, col)
            else:  # parsed as float64: the decimal text's nearest double
                assert got == pytest.approx(w, rel=1e-15), (row, col)


@pytest.mark.parametrize("date_first", [False, True])
def test_datashare_csv_either_key_order(tmp_path, date_first):
    path = write_datashare(tmp_path / "datashare.csv", date_first=date_first)
    lf = scan_characteristics(path)
    assert isinstance(lf, pl.LazyFrame)
    assert lf.collect_schema()["sic2"] == pl.Int32 and lf.collect_schema()["bm"] == pl.Float64
    _check_cells(load_characteristics(path))
    _check_cells(load_characteristics(lf))


def test_datashare_parquet_and_gzip_copies(tmp_path):
    csv = write_datashare(tmp_path / "datashare.csv")
    raw = pl.read_csv(csv, infer_schema=False)
    # A parquet copy as others store it: DATE an integer, values float64, NaN for missing.
    pq = tmp_path / "datashare.parquet"
    raw.select(
        pl.col("permno").cast(pl.Int64),
        pl.col("DATE").cast(pl.Int64),
        *[
            pl.col(c).replace({"NA": None, ".": None, "": None}).cast(pl.Float64).fill_null(float("nan"))
            for c in ("bm", "mvel1", "mom1m")
        ],
        pl.col("sic2").cast(pl.Float64),
    ).write_parquet(pq)
    _check_cells(load_characteristics(pq))
    # DATE stored as a parquet date, sic2 as text "12.0": both understood.
    pq_date = tmp_path / "datashare_date.parquet"
    pl.read_parquet(pq).with_columns(
        pl.col("DATE").cast(pl.String).str.to_date("%Y%m%d"),
        pl.col("sic2").cast(pl.String),
    ).write_parquet(pq_date)
    assert pl.read_parquet_schema(pq_date)["DATE"] == pl.Date
    _check_cells(load_characteristics(pq_date))
    gz = tmp_path / "datashare.csv.gz"
    gz.write_bytes(gzip.compress(csv.read_bytes()))
    _check_cells(load_characteristics(gz))


def test_all_94_gkx_names_are_accepted(tmp_path):
    header = ["permno", "DATE", *GKX_CHARS, "sic2"]
    row = ["10001", "19570131", *[str(i) for i in range(94)], "1"]
    path = tmp_path / "full.csv"
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    df = load_characteristics(path)
    assert tuple(df.columns[2:-1]) == GKX_CHARS and len(GKX_CHARS) == 94
    assert df.row(0)[2:-1] == tuple(float(i) for i in range(94))


# --------------------------------------------------------------------------- bad characteristics


def _one_line_error(fn, *patterns):
    return one_line_error(DataError, fn, *patterns)


def _bad_file(tmp_path, rows=None, header=None):
    return write_datashare(tmp_path / "bad.csv", rows=rows or CHARS_ROWS, header=header)


def _with(row_index, col, value):
    rows = [list(r) for r in CHARS_ROWS]
    pos = {"permno": 0, "DATE": 1, "mvel1": 2, "mom1m": 3, "bm": 4, "sic2": 5}[col]
    rows[row_index][pos] = value
    return [tuple(r) for r in rows]


def test_missing_required_column(tmp_path):
    path = tmp_path / "nodate.csv"
    path.write_text("permno,mvel1\n10001,1\n")
    _one_line_error(
        lambda: load_characteristics(path), re.escape(str(path)), "missing required column", "'DATE'"
    )


def test_unknown_column_is_named(tmp_path):
    path = tmp_path / "extra.csv"
    path.write_text("permno,DATE,mvel1,mvel_1,Unnamed: 0\n10001,20000131,1,2,3\n")
    _one_line_error(
        lambda: scan_characteristics(path), re.escape(str(path)), "unknown column", "'mvel_1'", "'Unnamed: 0'"
    )


def test_no_characteristic_column(tmp_path):
    path = tmp_path / "keys.csv"
    path.write_text("permno,DATE,sic2\n10001,20000131,1\n")
    _one_line_error(lambda: scan_characteristics(path), "no GKX characteristic")


def test_non_numeric_characteristic_names_column_and_row(tmp_path):
    path = _bad_file(tmp_path, _with(4, "bm", "abc"))  # data row 5: permno 10002, Feb 2000
    _one_line_error(
        lambda: load_characteristics(path),
        re.escape(str(path)),
        "column 'bm'",
        "non-numeric",
        r"row 5 \(permno 10002, DATE 20000229, value 'abc'\)",
        r"\(1 such row\)",
    )


def test_non_integer_permno(tmp_path):
    path = _bad_file(tmp_path, _with(2, "permno", "10003x"))
    _one_line_error(lambda: load_characteristics(path), "column 'permno'", "row 3")


def test_unparseable_date(tmp_path):
    path = _bad_file(tmp_path, _with(1, "DATE", "2000-01-31"))  # not the YYYYMMDD integer
    _one_line_error(
        lambda: load_characteristics(path), re.escape(str(path)), "column 'DATE'", "row 2", "'2000-01-31'"
    )
    path = _bad_file(tmp_path, _with(3, "DATE", "20001331"))  # month 13
    _one_line_error(
        lambda: load_characteristics(path),
        re.escape(str(path)),
        "column 'DATE'",
        "unparseable date",
        r"row 4 \(permno 10001, value '20001331'\)",
    )


def test_duplicate_permno_month(tmp_path):
    # Row 4 re-dated 2000-01-15: a second January row for permno 10001 (rows 1 and 4).
    path = _bad_file(tmp_path, _with(3, "DATE", "20000115"))
    _one_line_error(
        lambda: load_characteristics(path),
        re.escape(str(path)),
        "duplicate",
        r"\(10001, 200001\)",
        r"row 1, row 4 \(2 such rows\)",
    )


def test_infinite_characteristic(tmp_path):
    path = _bad_file(tmp_path, _with(5, "mvel1", "inf"))
    _one_line_error(
        lambda: load_characteristics(path),
        re.escape(str(path)),
        "column 'mvel1'",
        "infinite",
        r"row 6 \(permno 10003, month 200002",
    )


def test_values_beyond_float32_are_read_as_written(tmp_path):
    """Parsed in float64 (issue 18): ``1e308`` is a finite value, not "infinite … value inf";
    and two raw values that float32 would merge (2^24 and 2^24 + 1) keep distinct ranks."""
    rows = _with(5, "mvel1", "1e308")
    rows = [tuple(r) for r in rows]
    df = load_characteristics(_bad_file(tmp_path, rows))
    assert df.filter((pl.col("permno") == 10003) & (pl.col("month") == 200002))["mvel1"][0] == 1e308
    assert np.float32(16777217.0) == np.float32(16777216.0)  # what a float32 read would do
    raw = pl.DataFrame({"month": [200001] * 3, "x": [16777216.0, 16777217.0, 1.0]})
    ranked = raw.select(rank_expr("x"))["x"]
    assert ranked.dtype == pl.Float32  # stored as float32 ranks
    assert ranked.to_list() == pytest.approx([0.0, 0.5, -0.5])  # 2·rank/(n+1) − 1, no tie


def test_non_integer_sic2(tmp_path):
    path = _bad_file(tmp_path, _with(0, "sic2", "12.5"))
    _one_line_error(lambda: load_characteristics(path), "column 'sic2'", "non-integer", "row 1")


def test_parquet_text_column_names_row(tmp_path):
    pq = tmp_path / "bad.parquet"
    pl.DataFrame({"permno": [1, 2, 3], "DATE": [20000131] * 3, "bm": ["1.5", "NA", "high"]}).write_parquet(pq)
    _one_line_error(lambda: load_characteristics(pq), re.escape(str(pq)), "column 'bm'", r"row 3 \(permno 3")


def test_missing_file_and_bad_suffix(tmp_path):
    _one_line_error(lambda: scan_characteristics(tmp_path / "absent.csv"), "no such file")
    other = tmp_path / "data.xlsx"
    other.write_text("x")
    _one_line_error(lambda: scan_characteristics(other), "unsupported file type")


# --------------------------------------------------------------------------- CRSP returns

CRSP_TEXT = """PERMNO,date,SHRCD,RET,PRC,SHROUT
10001,20000131,10,0.012,-25.5,1000
10001,20000229,10,C,26,1000
10001,2000-03-31,10,-0.05,,1000
10002,20000131,11,B,12.25,
10002,20000229,11,,13,200
10003,20000229,11,0.3,-4,50
10003,20000331,11,-99.0,0,50
"""


def test_crsp_csv_upper_case_letter_codes_and_iso_dates(tmp_path):
    path = tmp_path / "msf.csv"
    path.write_text(CRSP_TEXT)
    df = load_returns(path)
    assert df.columns == ["permno", "month", "ret", "me"]
    assert df.schema == pl.Schema(
        {"permno": pl.Int64, "month": pl.Int32, "ret": pl.Float64, "me": pl.Float64}
    )
    got = {(r["permno"], r["month"]): (r["ret"], r["me"]) for r in df.iter_rows(named=True)}
    assert got == {
        (10001, 200001): (0.012, 25.5 * 1000),  # negative PRC: bid/ask midpoint, |PRC| used
        (10001, 200002): (None, 26.0 * 1000),  # letter code C: missing return
        (10001, 200003): (-0.05, None),  # ISO date; PRC missing -> no market equity
        (10002, 200001): (None, None),  # letter code B; SHROUT missing
        (10002, 200002): (None, 13.0 * 200),  # empty RET
        (10003, 200002): (0.3, 4.0 * 50),
        (10003, 200003): (None, None),  # RET -99: a CRSP missing code; PRC 0: no price
    }
    assert df["month"].to_list() == sorted(df["month"].to_list())


def test_crsp_without_price_and_lower_case_parquet(tmp_path):
    pq = tmp_path / "msf.parquet"
    pl.DataFrame({"permno": [7, 7], "DATE": ["1990-01-31", "1990-02-28"], "ret": ["0.5", "A"]}).write_parquet(
        pq
    )
    df = load_returns(pq)
    assert df.rows() == [(7, 199001, 0.5, None), (7, 199002, None, None)]
    pq2 = tmp_path / "msf_typed.parquet"
    pl.DataFrame(
        {"PERMNO": [7], "date": [19900131], "RET": [float("nan")], "PRC": [-2.0], "SHROUT": [3.0]}
    ).write_parquet(pq2)
    assert load_returns(pq2).rows() == [(7, 199001, None, 6.0)]


def test_crsp_exchange_codes(tmp_path):
    path = tmp_path / "msf.csv"
    path.write_text("PERMNO,date,EXCHCD,RET\n1,20000131,1,0.1\n2,20000131,3,0.2\n2,20000229,,0.3\n")
    df = load_returns(path)
    assert df.columns == ["permno", "month", "ret", "me", "exchcd"] and df.schema["exchcd"] == pl.Int32
    assert df["exchcd"].to_list() == [1, 3, None]  # a missing code stays missing
    path.write_text("PERMNO,date,EXCHCD,RET\n1,20000131,1,0.1\n2,20000131,N,0.2\n")
    _one_line_error(lambda: load_returns(path), "column 'EXCHCD'", "non-integer", r"row 2 \(permno 2")
    ok = check_returns(
        pl.DataFrame({"permno": [1, 2], "month": [200001] * 2, "ret": [0.1, 0.2], "exchcd": [1.0, None]})
    )
    assert ok.schema["exchcd"] == pl.Int32 and ok["exchcd"].to_list() == [1, None]
    with pytest.raises(DataError, match=r"returns frame: column 'exchcd': non-integer value in row 2"):
        check_returns(
            pl.DataFrame({"permno": [1, 2], "month": [200001] * 2, "ret": [0.1, 0.2], "exchcd": ["1", "x"]})
        )


def _crsp_error(tmp_path, text, *patterns):
    path = tmp_path / "bad_msf.csv"
    path.write_text(text)
    return _one_line_error(lambda: load_returns(path), re.escape(str(path)), *patterns)


def test_crsp_bad_inputs(tmp_path):
    _crsp_error(tmp_path, "PERMNO,date,PRC\n1,20000131,1\n", "missing required column", "'ret'")
    _crsp_error(
        tmp_path,
        CRSP_TEXT.replace("2000-03-31", "03/31/2000"),
        "column 'date'",
        "unparseable date",
        r"row 3 \(permno 10001, date 03/31/2000",
    )
    _crsp_error(
        tmp_path,
        CRSP_TEXT.replace("10003,20000229", "10003,20000228\n10003,20000215,11,0.1,1,1\n10003,20000229"),
        "column 'PERMNO'",
        "duplicate",
        "row 6",
        "row 7",
        "row 8",
    )
    _crsp_error(
        tmp_path, CRSP_TEXT.replace("0.3,-4", "inf,-4"), "column 'RET'", "infinite", r"row 6 \(permno 10003"
    )
    _crsp_error(
        tmp_path, CRSP_TEXT.replace("12.25", "twelve"), "column 'PRC'", "non-numeric", r"row 4 \(permno 10002"
    )
    _crsp_error(tmp_path, CRSP_TEXT.replace("10002,20000229", ",20000229"), "column 'PERMNO'", "row 5")


def test_loaded_returns_frame_is_checked():
    ok = check_returns(pl.DataFrame({"permno": [1], "month": [200001], "ret": [0.1]}))
    assert ok["me"].to_list() == [None] and not math.isnan(ok["ret"][0])
    with pytest.raises(DataError, match=r"returns frame: column 'ret': infinite value in row 2"):
        check_returns(pl.DataFrame({"permno": [1, 2], "month": [200001] * 2, "ret": [0.1, float("inf")]}))
    with pytest.raises(DataError, match="missing required column"):
        check_returns(pl.DataFrame({"permno": [1], "month": [200001]}))
