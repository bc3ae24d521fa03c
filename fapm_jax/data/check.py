"""What a user's GKX files hold before anything trains on them (``fapm data check``).

:func:`check_files` takes the panel :func:`~fapm_jax.data.preprocess.build_gkx_panel` builds
from the files (the rows ``fapm run --data gkx`` trains on) and re-reads the raw files for what
the panel no longer shows: which characteristic values were missing before the median fill,
which rows of the characteristics file were dropped and why, where market equity came from,
and how far each Welch–Goyal predictor reaches. The numbers come back as a :class:`DataReport`;
its text is :mod:`fapm_jax.reporting.data_sections`. Nothing here changes how a panel is built:
the drops are counted by re-doing the joins of ``preprocess._build`` on the keys only.

Those raw-file numbers are a :class:`FileStats`. With a cache folder they are counted once, while
the panel is built (:func:`~fapm_jax.data.preprocess.gkx_panel_and_stats`, from the frames in
memory), and stored with the cached panel (its parquet metadata, under its key); a cached check reads
them and no raw file. Without a cache, or for a cached panel without them, they are read from
the files (:func:`file_statistics`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

from .crsp_returns import check_returns, load_returns
from .file_stats import (
    DROP_REASONS as DROP_REASONS,
)
from .file_stats import (
    FileStats,
    _decade_counts,
    _is_missing,
    _me_counts,
    dropped_rows,
    return_status,
)
from .gkx_files import GKX_CHARS, scan_characteristics
from .macro import MACRO_HISTORY, MACRO_NAMES, load_welch_goyal
from .panel import Panel
from .preprocess import (
    CharSource,
    MacroSource,
    ReturnSource,
    gkx_panel_and_stats,
    panel_cache_file,
    read_file_stats,
)
from .windows import Window, WindowSpec, rolling_windows


@dataclasses.dataclass(frozen=True)
class WindowCheck:
    """One rolling window: its years, its row counts and the years it needs that have no rows."""

    window: Window
    train_rows: int
    valid_rows: int
    test_rows: int
    missing_years: tuple[int, ...]

    @property
    def fillable(self) -> bool:
        """Every year of the window has rows (the check ``fapm run`` makes before training)."""
        return not self.missing_years


@dataclasses.dataclass(frozen=True, eq=False)
class DataReport:
    """The numbers of a data check (see :func:`check_files`).

    Attributes:
        sources: ``characteristics``, ``returns``, ``macro``: the inputs as named by the caller.
        months: ``[T]`` int32 panel months ``YYYYMM``, ascending.
        stocks_per_month: ``[T]`` int64 stocks (= stock-months) of each panel month.
        n_stocks: distinct ``permno`` in the panel.
        file_chars: GKX characteristics the characteristics file has, GKX order.
        used_chars: those the panel's factors hold (``--use-chars`` / ``--drop-chars``).
        constant_chars: used characteristics whose ranked column is constant over the panel
            (every value equal or missing: the factor carries nothing).
        n_factors: columns of the panel's ``X``; ``n_sic2_dummies`` of them ``sic2_XX``.
        missing: one row per file characteristic: ``characteristic``, ``used``,
            ``missing_rows`` (panel rows whose raw value is missing), ``all`` (their share) and
            one share column per decade of the panel (``1990s`` …).
        file_rows: rows of the characteristics file.
        dropped: rows of the file not in the panel, by :data:`DROP_REASONS` key.
        me_source: panel rows whose market equity is ``|PRC|·SHROUT`` at ``t`` (``crsp``) or
            the raw ``mvel1`` (``mvel1``, where CRSP has none at ``t``).
        sic2_codes: distinct SIC2 codes of the panel (``None``: no ``sic2`` column);
            ``sic2_missing``: panel rows without one.
        macro: one row per Welch–Goyal predictor and ``rf``: ``predictor``, ``first``,
            ``last``, ``months`` (with a value), ``missing`` (months the panel needs without
            one: ``t`` for a predictor, ``t + 1`` for ``rf``), ``history`` (months with a value
            up to the panel's first month; the expanding transform needs
            :data:`~fapm_jax.data.macro.MACRO_HISTORY`), ``history_ok``.
        macro_transform: the transform asked for (``raw`` needs no history).
        spec: the windows' parameters; ``windows`` one :class:`WindowCheck` each.
    """

    sources: Mapping[str, str]
    months: np.ndarray
    stocks_per_month: np.ndarray
    n_stocks: int
    file_chars: tuple[str, ...]
    used_chars: tuple[str, ...]
    constant_chars: tuple[str, ...]
    n_factors: int
    n_sic2_dummies: int
    missing: pl.DataFrame
    file_rows: int
    dropped: Mapping[str, int]
    me_source: Mapping[str, int]
    sic2_codes: int | None
    sic2_missing: int
    macro: pl.DataFrame
    macro_transform: str
    spec: WindowSpec
    windows: tuple[WindowCheck, ...]

    @property
    def n_stock_months(self) -> int:
        return int(self.stocks_per_month.sum())

    @property
    def n_months(self) -> int:
        return int(self.months.size)

    @property
    def first_month(self) -> int:
        return int(self.months[0])

    @property
    def last_month(self) -> int:
        return int(self.months[-1])

    @property
    def absent_chars(self) -> tuple[str, ...]:
        """The GKX characteristics the file does not have."""
        return tuple(c for c in GKX_CHARS if c not in set(self.file_chars))

    @property
    def unused_chars(self) -> tuple[str, ...]:
        """Characteristics of the file left out of the panel."""
        return tuple(c for c in self.file_chars if c not in set(self.used_chars))

    @property
    def n_dropped(self) -> int:
        return int(sum(self.dropped.values()))

    @property
    def n_fillable(self) -> int:
        return sum(w.fillable for w in self.windows)

    def summary_paragraph(self) -> str:
        """One paragraph: stock-months, stocks, months, characteristics used, rows dropped and
        windows fillable (for a run's log or summary)."""
        spm = self.stocks_per_month
        absent = len(self.absent_chars)
        const = f", {len(self.constant_chars)} constant" if self.constant_chars else ""
        sic = f" and {self.n_sic2_dummies} SIC2 dummies" if self.n_sic2_dummies else ""
        w = self.windows
        return (
            f"{self.n_stock_months:,} stock-months of {self.n_stocks:,} stocks over {self.n_months} months "
            f"({month_label(self.first_month)} to {month_label(self.last_month)}; {int(spm.min()):,} to "
            f"{int(spm.max()):,} stocks a month, median {int(np.median(spm)):,}); "
            f"{len(self.used_chars)} of the 94 GKX characteristics used ({absent} absent from the file"
            f"{const}), {self.n_factors} factors with the {len(MACRO_NAMES)} macro predictors{sic}; "
            f"{self.n_dropped:,} of the file's {self.file_rows:,} rows dropped for want of a next-month "
            f"return; {self.n_fillable} of {len(w)} windows fillable (test years {w[0].window.test}"
            f"–{w[-1].window.test})."
        )


def month_label(month: int) -> str:
    """``200001`` → ``'2000-01'``."""
    return f"{month // 100}-{month % 100:02d}"


def check_files(
    characteristics: CharSource,
    returns: ReturnSource,
    macro: MacroSource = None,
    *,
    panel: Panel | None = None,
    spec: WindowSpec = WindowSpec(),
    macro_transform: str = "rank",
    **build_options,
) -> DataReport:
    """The data report of a characteristics file, CRSP returns and Welch–Goyal data.

    ``panel`` is the panel built from these inputs (the command line passes the one ``fapm run``
    would load, cache included); ``None`` builds it with
    :func:`~fapm_jax.data.preprocess.build_gkx_panel` (``macro_transform`` and
    ``build_options``: ``use_chars``, ``drop_chars``, ``sic2_dummies``, ``cache_dir`` …),
    which raises the loaders' one-line :class:`~fapm_jax.core.errors.DataError`. Windows the
    data cannot fill are reported (``WindowCheck.fillable``), not raised.

    With ``cache_dir`` in ``build_options`` (the command line passes the options of its load),
    the :class:`FileStats` stored with the cached panel are used when they are this panel's;
    otherwise they are read from the files (:func:`file_statistics`). The numbers are the same
    either way.

    Memory: besides the panel, when the files are read: the characteristics' keys and one
    missing flag per value (bits) and two copies of the returns' keys.
    """
    opts = {**build_options, "macro_transform": macro_transform}
    stats = None
    if panel is None:
        panel, stats = gkx_panel_and_stats(characteristics, returns, macro, **opts)
    cache_file = panel_cache_file(characteristics, returns, macro, **opts)
    if stats is None and cache_file is not None:
        stats = read_file_stats(cache_file)
    if stats is None or stats.panel_rows != panel.n_rows:  # none stored, or not this panel's
        stats = file_statistics(characteristics, returns, panel)

    months, stocks = np.unique(panel.month, return_counts=True)
    used = tuple(f for f in panel.feature_names if f in set(GKX_CHARS))
    wg = macro if isinstance(macro, pl.DataFrame) else load_welch_goyal(macro)
    sic2_codes = None if panel.sic2 is None else int(np.unique(panel.sic2[panel.sic2 >= 0]).size)
    return DataReport(
        sources={
            "characteristics": _source_name(characteristics, "characteristics frame"),
            "returns": _source_name(returns, "returns frame"),
            "macro": _source_name(macro, "Welch-Goyal frame")
            if macro is not None
            else "the Welch-Goyal data shipped with the package (2022)",
        },
        months=months.astype(np.int32),
        stocks_per_month=stocks.astype(np.int64),
        n_stocks=int(np.unique(panel.permno).size),
        file_chars=stats.file_chars,
        used_chars=used,
        constant_chars=_constant_columns(panel, used),
        n_factors=panel.n_features,
        n_sic2_dummies=sum(f.startswith("sic2_") for f in panel.feature_names),
        missing=missing_frame(stats, used),
        file_rows=stats.file_rows,
        dropped=dict(stats.dropped),
        me_source=dict(stats.me_source),
        sic2_codes=sic2_codes,
        sic2_missing=0 if panel.sic2 is None else int((panel.sic2 < 0).sum()),
        macro=macro_coverage(wg, int(months[0]), int(months[-1])),
        macro_transform=macro_transform,
        spec=spec,
        windows=window_checks(panel.year, spec),
    )


def file_statistics(characteristics: CharSource, returns: ReturnSource, panel: Panel) -> FileStats:
    """The :class:`FileStats` of the files, read from them (streamed: one boolean per value,
    never the float64 columns of the whole file at once); ``panel`` is the panel built from them."""
    scan = _char_scan(characteristics)
    schema = scan.collect_schema()
    file_chars = tuple(c for c in GKX_CHARS if c in schema.names())
    flags = scan.select("permno", "month", *[_is_missing(c, schema[c]).alias(c) for c in file_chars]).collect(
        engine="streaming"
    )
    keys = pl.DataFrame({"permno": panel.permno.astype(np.int64), "month": panel.month.astype(np.int32)})
    decades, rows, counts = _decade_counts(
        flags.join(keys, on=["permno", "month"], how="semi"), [pl.col(c) for c in file_chars], None
    )
    return FileStats(
        file_chars=file_chars,
        file_rows=flags.height,
        decades=decades,
        decade_rows=rows,
        missing={c: tuple(counts[i]) for i, c in enumerate(file_chars)},
        dropped=dropped_rows(flags.select("permno", "month"), return_status(returns)),
        me_source=_me_source(keys, returns),
    )


def _char_scan(characteristics: CharSource) -> pl.LazyFrame:
    if isinstance(characteristics, pl.LazyFrame):
        return characteristics
    if isinstance(characteristics, pl.DataFrame):
        return characteristics.lazy()
    return scan_characteristics(characteristics)


def _source_name(src, frame_name: str) -> str:
    return str(src) if isinstance(src, str | Path) else frame_name


_MINMAX_ROWS = 1 << 16  # rows of X per block of the min/max pass


def _constant_columns(panel: Panel, names: tuple[str, ...]) -> tuple[str, ...]:
    """Those of ``names`` whose column of ``X`` takes a single value over the panel (one
    vectorised min/max pass over row blocks of ``X``, float32)."""
    if not names:
        return ()
    n = panel.X.shape[0]
    if n == 0:
        return tuple(names)
    lo = np.full(panel.X.shape[1], np.inf, panel.X.dtype)
    hi = np.full(panel.X.shape[1], -np.inf, panel.X.dtype)
    for a in range(0, n, _MINMAX_ROWS):
        block = panel.X[a : a + _MINMAX_ROWS]
        np.minimum(lo, block.min(axis=0), out=lo)
        np.maximum(hi, block.max(axis=0), out=hi)
    const = lo == hi  # a NaN anywhere makes the column non-constant, as min() == max() did
    return tuple(name for name in names if const[panel.feature_names.index(name)])


def missing_frame(stats: FileStats, used: tuple[str, ...]) -> pl.DataFrame:
    """:attr:`DataReport.missing` from the counts of ``stats``: ``characteristic``, ``used``,
    ``missing_rows``, ``all`` and one share column per decade of the panel (``2000s``, ...)."""
    chars = stats.file_chars
    rows = np.asarray(stats.decade_rows, np.int64)  # [D]
    counts = (
        np.asarray([stats.missing[c] for c in chars], np.int64).reshape(len(chars), rows.size)
        if chars
        else np.zeros((0, rows.size), np.int64)
    )  # [C, D]
    total = max(int(rows.sum()), 1)
    cols = {
        "characteristic": list(chars),
        "used": [c in set(used) for c in chars],
        "missing_rows": counts.sum(axis=1).tolist(),
        "all": (counts.sum(axis=1) / total).tolist(),
    }
    for d, (decade, n) in enumerate(zip(stats.decades, rows)):
        cols[f"{decade}s"] = (counts[:, d] / n).tolist()
    return pl.DataFrame(
        cols,
        schema={
            "characteristic": pl.String,
            "used": pl.Boolean,
            "missing_rows": pl.Int64,
            "all": pl.Float64,
            **{f"{d}s": pl.Float64 for d in stats.decades},
        },
    )


def missing_table(flags: pl.DataFrame, chars: tuple[str, ...], used: tuple[str, ...]) -> pl.DataFrame:
    """Missing counts and shares by characteristic, overall and by decade.

    ``flags``: ``permno``, ``month`` and one boolean column per characteristic (true: the raw
    value is missing), one row per stock-month counted. Returns ``characteristic``, ``used``,
    ``missing_rows``, ``all`` and one share column per decade present (``2000s``, ...).
    """
    decades, rows, counts = _decade_counts(flags, [pl.col(c) for c in chars], None)
    stats = FileStats(tuple(chars), flags.height, decades, rows, dict(zip(chars, counts)), {}, {})
    return missing_frame(stats, used)


def _me_source(keys: pl.DataFrame, returns: ReturnSource) -> dict[str, int]:
    """Panel rows with market equity from CRSP at ``t`` and those falling back on ``mvel1``."""
    return _me_counts(
        keys, check_returns(returns) if isinstance(returns, pl.DataFrame) else load_returns(returns)
    )


def _month_index(month: int) -> int:
    return (month // 100) * 12 + month % 100 - 1


def _month_from_index(i: int) -> int:
    return (i // 12) * 100 + i % 12 + 1


def macro_coverage(wg: pl.DataFrame, first: int, last: int) -> pl.DataFrame:
    """How far each predictor of the Welch–Goyal frame ``wg`` (from
    :func:`~fapm_jax.data.macro.load_welch_goyal`) reaches, for a panel of months
    ``first``–``last``: see :class:`DataReport` ``macro``."""
    panel_months = [_month_from_index(i) for i in range(_month_index(first), _month_index(last) + 1)]
    rows = []
    for name in (*MACRO_NAMES, "rf"):
        have = wg.filter(pl.col(name).is_not_null() & pl.col(name).is_not_nan())["month"].to_numpy()
        need = [next_month_int(m) for m in panel_months] if name == "rf" else panel_months
        history = int((have <= first).sum())
        rows.append(
            {
                "predictor": name,
                "first": int(have.min()) if have.size else None,
                "last": int(have.max()) if have.size else None,
                "months": int(have.size),
                "missing": int(np.isin(need, have, invert=True).sum()),
                "history": None if name == "rf" else history,
                "history_ok": None if name == "rf" else history >= MACRO_HISTORY,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "predictor": pl.String,
            "first": pl.Int32,
            "last": pl.Int32,
            "months": pl.Int64,
            "missing": pl.Int64,
            "history": pl.Int64,
            "history_ok": pl.Boolean,
        },
        orient="row",
    )


def next_month_int(month: int) -> int:
    """``YYYYMM`` of the month after ``month``."""
    return _month_from_index(_month_index(month) + 1)


def window_checks(years: np.ndarray, spec: WindowSpec) -> tuple[WindowCheck, ...]:
    """Each window of ``spec`` with its training, validation and test rows among rows of
    ``years`` (``[N]``), and the years it needs without rows — the coverage check of
    :func:`~fapm_jax.data.windows.window_masks`, window by window."""
    ys, counts = np.unique(np.asarray(years), return_counts=True)
    per_year = dict(zip(ys.tolist(), counts.tolist()))

    def rows(lo: int, hi: int) -> int:
        return int(sum(per_year.get(y, 0) for y in range(lo, hi + 1)))

    out = []
    for w in rolling_windows(spec):
        missing = tuple(y for y in w.years if y not in per_year)
        out.append(WindowCheck(w, rows(*w.train), rows(*w.valid), rows(w.test, w.test), missing))
    return tuple(out)
