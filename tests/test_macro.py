"""The Welch–Goyal macro predictors against hand computations from the raw sheet."""

import math

import numpy as np
import polars as pl
import pytest

from fapm_jax.data.macro import (
    MACRO_NAMES,
    DataError,
    load_welch_goyal,
    macro_panel,
    transform_expanding,
    welch_goyal_path,
)


def _raw_row(month: int) -> dict:
    for line in welch_goyal_path().read_text().splitlines()[1:]:
        cells = line.split(",")
        if int(cells[0]) == month:
            header = welch_goyal_path().read_text().splitlines()[0].split(",")
            return {h: float(c) for h, c in zip(header, cells)}
    raise KeyError(month)


@pytest.mark.parametrize("month", [195701, 198710, 201612])
def test_definitions_match_hand_computation(month):
    raw = _raw_row(month)
    row = load_welch_goyal().filter(pl.col("month") == month).row(0, named=True)
    # Definitions of ../shared/data/README.md; tolerance: float64 round-off only.
    assert row["dp"] == pytest.approx(math.log(raw["D12"]) - math.log(raw["Index"]), abs=1e-12)
    assert row["ep_macro"] == pytest.approx(math.log(raw["E12"]) - math.log(raw["Index"]), abs=1e-12)
    assert row["bm_macro"] == pytest.approx(raw["b/m"], abs=1e-12)
    assert row["tms"] == pytest.approx(raw["lty"] - raw["tbl"], abs=1e-12)
    assert row["dfy"] == pytest.approx(raw["BAA"] - raw["AAA"], abs=1e-12)
    for name in ("ntis", "tbl", "svar"):
        assert row[name] == pytest.approx(raw[name], abs=1e-12)
    assert row["rf"] == pytest.approx(raw["Rfree"], abs=1e-12)


def test_macro_names_do_not_clash_with_characteristics():
    from fapm_jax.data.gkx_files import gkx_characteristic_names

    assert not set(MACRO_NAMES) & set(gkx_characteristic_names())


def test_expanding_rank_uses_only_the_past():
    frame = pl.DataFrame({"month": np.arange(1, 8), "a": [5.0, 1.0, 3.0, 2.0, 9.0, 0.0, 4.0]})
    out = transform_expanding(frame, "rank", names=("a",), min_months=3)["a"].to_list()
    # Month 3: 3.0 among {5, 1, 3}: 1 below -> (1 + 0.5) / 3 -> 2u - 1 = 0.
    # Month 4: 2.0 among {5, 1, 3, 2}: 1 below -> 1.5 / 4 -> -0.25.
    # Month 5: 9.0 is the largest of 5 -> 4.5 / 5 -> 0.8.
    assert out[:2] == [None, None]
    assert out[2:5] == pytest.approx([0.0, -0.25, 0.8], abs=1e-12)
    # Changing a later value never changes an earlier transform (no look-ahead).
    frame2 = frame.with_columns(pl.Series("a", [5.0, 1.0, 3.0, 2.0, 9.0, 0.0, -100.0]))
    out2 = transform_expanding(frame2, "rank", names=("a",), min_months=3)["a"].to_list()
    assert out2[:6] == out[:6]


def test_expanding_zscore_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50)
    frame = pl.DataFrame({"month": np.arange(50), "a": x})
    z = transform_expanding(frame, "zscore", names=("a",), min_months=10)["a"].to_numpy()
    for t in (9, 20, 49):
        past = x[: t + 1]
        assert z[t] == pytest.approx((x[t] - past.mean()) / past.std(), rel=1e-9)


def test_macro_panel_covers_the_paper_sample_in_bounds():
    m = macro_panel(195701, 201612)
    assert m.height == 720
    values = m.select(MACRO_NAMES).to_numpy()
    assert np.isfinite(values).all() and (np.abs(values) <= 1).all()


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="no file"):
        load_welch_goyal(tmp_path / "absent.csv")
    bad = tmp_path / "wg.csv"
    bad.write_text("yyyymm,Index,D12\n195701,1,2\n")
    with pytest.raises(DataError, match="missing column"):
        load_welch_goyal(bad)
    # dp is in the file from 1871, but its expanding rank needs 120 months of history first
    with pytest.raises(
        DataError, match="'dp' has a value in month 187101, but the 'rank' transform needs 120"
    ):
        macro_panel(187101, 187112)
    with pytest.raises(DataError, match="'bm_macro' is missing in month 187101"):
        macro_panel(187101, 187112, transform="raw")  # b/m starts decades later
    with pytest.raises(DataError, match="transform"):
        macro_panel(195701, 195712, transform="log")


# --------------------------------------------------------------------------- the published workbook


def _write_workbook(path, rows, sheet="Monthly", extra_sheet_first=True):
    """An .xlsx like Goyal's: an Annual sheet first, then ``sheet`` with the monthly rows.
    Numbers are written as numbers; ``NaN`` stays the text cell it is in the published file."""
    import openpyxl  # a dev dependency, only to write the workbook

    wb = openpyxl.Workbook()
    if extra_sheet_first:
        wb.active.title = "Annual"
        wb.active.append(["yyyy", "Index"])
        wb.active.append([1957, 39.99])
        ws = wb.create_sheet(sheet)
    else:
        ws = wb.active
        ws.title = sheet
    header, *data = rows
    ws.append(header)
    for row in data:
        ws.append([c if isinstance(c, str) else c for c in row])
    wb.save(path)
    return path


def _csv_rows(first: int, last: int) -> list[list]:
    lines = welch_goyal_path().read_text().splitlines()
    out = [lines[0].split(",")]
    for line in lines[1:]:
        cells = line.split(",")
        if first <= int(cells[0]) <= last:
            out.append([int(cells[0])] + [c if c == "NaN" else float(c) for c in cells[1:]])
    return out


def test_workbook_equals_the_csv(tmp_path):
    rows = _csv_rows(192601, 196012)  # b/m and ntis start inside this span: NaN cells
    xlsx = _write_workbook(tmp_path / "PredictorData.xlsx", rows)
    csv = tmp_path / "subset.csv"
    csv.write_text("\n".join(",".join(str(c) for c in r) for r in rows) + "\n")
    from_xlsx, from_csv = load_welch_goyal(xlsx), load_welch_goyal(csv)
    assert from_xlsx.height == 35 * 12
    assert from_xlsx.schema == from_csv.schema
    # Same numbers through both readers: exact (both are float64 parses of the same values).
    assert from_xlsx.equals(from_csv)
    # And one cell by hand: 1957-01, dp = ln D12 − ln Index.
    raw = _raw_row(195701)
    got = from_xlsx.filter(pl.col("month") == 195701).row(0, named=True)
    assert got["dp"] == pytest.approx(math.log(raw["D12"]) - math.log(raw["Index"]), abs=1e-12)
    assert got["rf"] == pytest.approx(raw["Rfree"], abs=1e-15)
    # The NaN text cells of the sheet are missing values, as the CSV's NaN are (ntis starts 1926-12).
    assert from_xlsx.filter(pl.col("month") == 192601)["ntis"].to_list() == [None]


def test_workbook_feeds_macro_panel(tmp_path):
    xlsx = _write_workbook(tmp_path / "wg.xlsx", _csv_rows(187101, 202212), extra_sheet_first=False)
    a = macro_panel(195701, 196012, path=xlsx)
    b = macro_panel(195701, 196012)
    assert a.equals(b)


def test_workbook_errors_are_one_line(tmp_path):
    rows = _csv_rows(195701, 195712)
    no_sheet = _write_workbook(tmp_path / "nosheet.xlsx", rows, sheet="Data")
    with pytest.raises(DataError, match=r"nosheet.xlsx: no sheet 'Monthly' \(sheets: Annual, Data\)"):
        load_welch_goyal(no_sheet)
    bad = [r[:] for r in rows]
    bad[3][bad[0].index("tbl")] = "n/a?"
    path = _write_workbook(tmp_path / "badcell.xlsx", bad)
    with pytest.raises(DataError) as info:
        load_welch_goyal(path)
    msg = str(info.value)
    assert "\n" not in msg and "badcell.xlsx" in msg and "column 'tbl'" in msg and "row 3" in msg, msg
    j = rows[0].index("svar")
    short = _write_workbook(tmp_path / "short.xlsx", [r[:j] + r[j + 1 :] for r in rows])
    with pytest.raises(DataError, match="short.xlsx: missing column"):
        load_welch_goyal(short)
    not_xlsx = tmp_path / "broken.xlsx"
    not_xlsx.write_text("not a workbook")
    with pytest.raises(DataError, match="cannot open workbook"):
        load_welch_goyal(not_xlsx)


def test_a_file_starting_at_the_panel_needs_history(tmp_path):
    """A Welch-Goyal CSV (the shipped format) that starts at the panel's first month has the
    month, but the expanding rank needs 120 months before it: the error says exactly that."""
    from importlib import resources

    text = (resources.files("fapm_jax") / "data" / "welch_goyal_monthly.csv").read_text().splitlines()
    kept = [text[0]] + [line for line in text[1:] if int(line.split(",")[0]) >= 195701]
    path = tmp_path / "wg_from_1957.csv"
    path.write_text("\n".join(kept) + "\n")
    with pytest.raises(DataError) as err:
        macro_panel(195701, 196012, path=path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "has a value in month 195701" in msg and "needs 120 months" in msg
    assert "starts in 195701" in msg and "starts by 194702" in msg and "raw" in msg
    raw = macro_panel(195701, 196012, path=path, transform="raw")  # the raw scale needs none
    assert raw.height == 48
    # a month the file really lacks keeps its own message
    gap = [line for line in kept if not line.startswith("195803")]
    path.write_text("\n".join(gap) + "\n")
    with pytest.raises(DataError, match="no row for month 195803"):
        macro_panel(195701, 196012, path=path, transform="raw")
