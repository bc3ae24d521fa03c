"""The eight Welch–Goyal macro predictors of Gu, Kelly and Xiu (2020) (paper section 3.1).

Built from the monthly sheet of the Welch and Goyal (2008) predictor data, a copy of which
(the 2022 update) ships in ``fapm_jax/data/welch_goyal_monthly.csv``; Goyal's published
workbook (``.xlsx``, sheet ``Monthly``) is read as well:

``dp = ln D12 − ln Index``, ``ep_macro = ln E12 − ln Index``, ``bm_macro = b/m``, ``ntis``, ``tbl``,
``tms = lty − tbl``, ``dfy = BAA − AAA``, ``svar``; and ``rf = Rfree`` (monthly risk-free return).

The aggregate book-to-market and earnings-price ratios are called ``bm_macro`` and ``ep_macro``
so that they cannot be confused with the firm characteristics ``bm`` and ``ep`` of the GKX file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from ..core.errors import DataError

MACRO_NAMES: tuple[str, ...] = ("dp", "ep_macro", "bm_macro", "ntis", "tbl", "tms", "dfy", "svar")
_RAW_COLUMNS = ("yyyymm", "Index", "D12", "E12", "b/m", "tbl", "AAA", "BAA", "lty", "ntis", "Rfree", "svar")


def welch_goyal_path() -> Path:
    """Path of the Welch–Goyal monthly CSV shipped with the package."""
    return Path(str(resources.files("fapm_jax") / "data" / "welch_goyal_monthly.csv"))


WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls")
_NULL_TOKENS = ("", "NaN", "NA", "nan", "NAN", ".")


def load_welch_goyal(path: str | Path | None = None) -> pl.DataFrame:
    """The eight macro predictors and ``rf`` by ``month`` (``YYYYMM``), from the raw sheet.

    ``path`` is the monthly CSV (the default: the copy shipped with the package) or Amit
    Goyal's published workbook (``.xlsx``, read from its sheet ``Monthly`` by polars' calamine
    engine, the ``fastexcel`` package). Only the columns of the definitions above are read;
    cells ``NaN``/``NA``/empty are missing, and numbers stored as text (``"1,234.5"``) are read
    as numbers. Months in which any input of a predictor is missing keep a null in that
    predictor.
    """
    path = Path(path) if path is not None else welch_goyal_path()
    if not path.exists():
        raise DataError(f"Welch-Goyal data: no file at {path}")
    if path.suffix.lower() in WORKBOOK_SUFFIXES:
        raw = _read_workbook(path)
    else:
        try:
            raw = pl.read_csv(path, null_values=list(_NULL_TOKENS), infer_schema_length=None)
        except pl.exceptions.PolarsError as e:  # pragma: no cover - message passthrough
            raise DataError(f"Welch-Goyal data {path}: cannot parse ({str(e).splitlines()[0]})") from None
    missing = [c for c in _RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"Welch-Goyal data {path}: missing column(s) {', '.join(missing)}")
    raw = _numeric_columns(raw.select(_RAW_COLUMNS), path)
    month = raw["yyyymm"]
    if month.is_null().any():
        row = int(month.is_null().arg_max()) + 1
        raise DataError(f"Welch-Goyal data {path}: column 'yyyymm': missing month in row {row}")
    mm = month % 100
    bad = (mm < 1) | (mm > 12) | (month < 100000) | (month > 999912)
    if bad.any():
        row = int(bad.arg_max())
        raise DataError(
            f"Welch-Goyal data {path}: column 'yyyymm': {month[row]} in row {row + 1} is not a YYYYMM month"
        )
    if month.is_duplicated().any():
        dup = month.filter(month.is_duplicated())[0]
        raise DataError(f"Welch-Goyal data {path}: duplicate month {dup}")
    c = pl.col
    return raw.select(
        c("yyyymm").cast(pl.Int32).alias("month"),
        (c("D12").log() - c("Index").log()).alias("dp"),
        (c("E12").log() - c("Index").log()).alias("ep_macro"),
        c("b/m").alias("bm_macro"),
        c("ntis"),
        c("tbl"),
        (c("lty") - c("tbl")).alias("tms"),
        (c("BAA") - c("AAA")).alias("dfy"),
        c("svar"),
        c("Rfree").alias("rf"),
    ).sort("month")


def _read_workbook(path: Path) -> pl.DataFrame:
    """The sheet ``Monthly`` of the published Welch–Goyal workbook, every column as read."""
    try:
        import fastexcel
    except ImportError:  # pragma: no cover - a declared dependency
        raise DataError(
            f"Welch-Goyal data {path}: reading a workbook needs the 'fastexcel' package"
        ) from None
    try:
        sheets = fastexcel.read_excel(path).sheet_names
    except Exception as e:  # fastexcel's own error types
        raise DataError(f"Welch-Goyal data {path}: cannot open workbook ({_first_line(e)})") from None
    if "Monthly" not in sheets:
        raise DataError(
            f"Welch-Goyal data {path}: no sheet 'Monthly' (sheets: {', '.join(sheets) or 'none'})"
        )
    try:
        raw = pl.read_excel(path, sheet_name="Monthly", engine="calamine", infer_schema_length=None)
    except Exception as e:
        raise DataError(f"Welch-Goyal data {path}: cannot read sheet 'Monthly' ({_first_line(e)})") from None
    return raw.rename({c: str(c).strip() for c in raw.columns})


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _numeric_columns(raw: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Every column as Float64 (``yyyymm`` as Int64): text cells that are missing tokens become
    null, other text must be a number; anything else names the column and first row."""
    out = []
    for name in raw.columns:
        s = raw[name]
        if s.dtype == pl.String:
            t = s.str.strip_chars().str.replace_all(",", "")
            t = pl.select(pl.when(t.is_in(list(_NULL_TOKENS))).then(None).otherwise(t)).to_series()
            num = t.cast(pl.Float64, strict=False)
            bad = t.is_not_null() & num.is_null()
        elif s.dtype.is_numeric() or s.dtype == pl.Null:
            num, bad = s.cast(pl.Float64), None
        else:
            num, bad = None, s.is_not_null()
        if bad is not None and bad.any():
            row = int(bad.arg_max())
            raise DataError(
                f"Welch-Goyal data {path}: column '{name}': non-numeric value {s[row]!r} in row {row + 1}"
            )
        num = num.fill_nan(None)
        if name == "yyyymm":
            frac = num.is_not_null() & (num != num.round())
            if frac.any():
                row = int(frac.arg_max())
                raise DataError(
                    f"Welch-Goyal data {path}: column 'yyyymm': {s[row]!r} in row {row + 1} is not "
                    "a YYYYMM month"
                )
            num = num.cast(pl.Int64)
        out.append(num.alias(name))
    return pl.DataFrame(out)


MACRO_TRANSFORMS = ("rank", "zscore", "raw")
#: Months of a predictor's own history the ``rank`` and ``zscore`` transforms need before their
#: first value (:func:`transform_expanding`'s burn-in).
MACRO_HISTORY = 120


def transform_expanding(
    frame: pl.DataFrame, how: str = "rank", names=MACRO_NAMES, *, min_months: int = MACRO_HISTORY
) -> pl.DataFrame:
    """Put each predictor on a common scale using, at month ``t``, only months ``≤ t``.

    Raw predictors live on very different scales (``dp ≈ −3.5``, ``svar ≈ 0.002``) and an FM
    multiplies them pairwise, so they need a common scale, without look-ahead:

    - ``"rank"`` (default): the percentile of ``x_t`` within its own history ``x_1 … x_t``
      mapped into ``[−1, 1]``, like the characteristics' cross-sectional ranks. Bounded, so a
      record value (``svar`` in October 1987) cannot blow up an interaction.
    - ``"zscore"``: ``(x_t − mean) / sd`` of the history.
    - ``"raw"``: unchanged (GKX's convention).

    The first ``min_months`` months of each series (a burn-in) are null under ``rank`` and
    ``zscore``.
    """
    if how not in MACRO_TRANSFORMS:
        raise DataError(f"macro transform {how!r}: must be one of {', '.join(MACRO_TRANSFORMS)}")
    out = frame.sort("month")
    if how == "raw":
        return out
    cols = []
    for name in names:
        x = out[name].to_numpy().astype(np.float64)
        ok = np.isfinite(x)
        cnt = np.cumsum(ok)
        z = np.full_like(x, np.nan)
        if how == "zscore":
            xs = np.where(ok, x, 0.0)
            mean = np.cumsum(xs) / np.maximum(cnt, 1)
            sd = np.sqrt(np.maximum(np.cumsum(xs * xs) / np.maximum(cnt, 1) - mean * mean, 0.0))
            good = ok & (cnt >= min_months) & (sd > 0)
            z[good] = (x[good] - mean[good]) / sd[good]
        else:
            hist = x[ok]
            pos = np.flatnonzero(ok)
            for j, t in enumerate(pos):
                if j + 1 >= min_months:
                    past = hist[: j + 1]
                    below = np.sum(past < hist[j]) + 0.5 * (np.sum(past == hist[j]) - 1)
                    z[t] = 2.0 * (below + 0.5) / (j + 1) - 1.0
        cols.append(pl.Series(name, z).fill_nan(None))
    return out.with_columns(cols)


def macro_panel(
    first_month: int,
    last_month: int,
    *,
    path: str | Path | pl.DataFrame | None = None,
    transform: str = "rank",
) -> pl.DataFrame:
    """Macro predictors (and ``rf``) for every month in ``[first_month, last_month]``,
    transformed by :func:`transform_expanding` (``transform``).

    ``path`` is a file for :func:`load_welch_goyal` (``None``: the shipped CSV) or a frame it
    returned (so a caller that also needs ``rf`` reads the file once).

    Raises :class:`DataError` naming the first month and predictor that is missing.
    """
    raw = path if isinstance(path, pl.DataFrame) else load_welch_goyal(path)
    frame = transform_expanding(raw, transform)
    frame = frame.filter(pl.col("month").is_between(first_month, last_month))
    want = _months_between(first_month, last_month)
    have = set(frame["month"].to_list())
    absent = [m for m in want if m not in have]
    if absent:
        raise DataError(
            f"Welch-Goyal data: no row for month {absent[0]} ({len(absent)} months missing "
            f"in {first_month}-{last_month})"
        )
    for name in MACRO_NAMES + ("rf",):
        nulls = frame.filter(pl.col(name).is_null())
        if nulls.height and name != "rf" and transform != "raw":
            _check_history(raw, name, int(nulls["month"][0]), transform)
        if nulls.height:
            raise DataError(
                f"Welch-Goyal data: predictor '{name}' is missing in month {nulls['month'][0]} "
                f"({nulls.height} months in {first_month}-{last_month})"
            )
    return frame


def _check_history(raw: pl.DataFrame, name: str, month: int, transform: str) -> None:
    """The one-line error for a predictor that the file has in ``month`` but whose expanding
    transform has no value yet: it needs :data:`MACRO_HISTORY` months of history first."""
    series = raw.sort("month").filter(pl.col(name).is_not_null() & pl.col(name).is_not_nan())
    upto = series.filter(pl.col("month") <= month)
    if upto.filter(pl.col("month") == month).height == 0:
        return  # really missing in the file: the caller's message
    start = int(upto["month"][0])
    need = _months_before(month, MACRO_HISTORY - 1)
    raise DataError(
        f"Welch-Goyal data: predictor '{name}' has a value in month {month}, but the '{transform}' "
        f"transform needs {MACRO_HISTORY} months of its history up to that month and the file's "
        f"'{name}' starts in {start} ({upto.height} months): give a file whose '{name}' starts by "
        f"{need}, or the 'raw' transform (--macro-transform raw), which needs none"
    )


def _months_before(month: int, k: int) -> int:
    """``YYYYMM`` of the month ``k`` months before ``month``."""
    y, m = divmod(month, 100)
    t = y * 12 + (m - 1) - k
    return (t // 12) * 100 + t % 12 + 1


def _months_between(first: int, last: int) -> list[int]:
    y, m = divmod(first, 100)
    out = []
    while y * 100 + m <= last:
        out.append(y * 100 + m)
        m += 1
        if m > 12:
            y, m = y + 1, 1
    return out
