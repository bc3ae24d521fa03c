"""The Welch–Goyal macro predictors against hand computations from the raw sheet."""

import math

import numpy as np
import polars as pl
import pytest

from fapm_jax.macro import (MACRO_NAMES, MacroDataError, load_welch_goyal, macro_panel,
                            transform_expanding, welch_goyal_path)


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
    from fapm_jax.simulate import gkx_characteristic_names

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
    with pytest.raises(MacroDataError, match="no file"):
        load_welch_goyal(tmp_path / "absent.csv")
    bad = tmp_path / "wg.csv"
    bad.write_text("yyyymm,Index,D12\n195701,1,2\n")
    with pytest.raises(MacroDataError, match="missing column"):
        load_welch_goyal(bad)
    with pytest.raises(MacroDataError, match="missing in month"):
        macro_panel(187101, 187112)  # the predictors start decades later
    with pytest.raises(MacroDataError, match="transform"):
        macro_panel(195701, 195712, transform="log")
