"""GKX preprocessing: the real characteristics, CRSP returns and Welch–Goyal predictors as a
:class:`~fapm_jax.data.panel.Panel`.

:func:`build_gkx_panel` follows Gu, Kelly and Xiu (2020, section 2.1 "Data and the overarching
model" and its footnotes), as the FAPM paper does (its section 3.1):

1. **Ranks.** Every characteristic is ranked cross-sectionally each month and mapped into
   ``[−1, 1]`` by ``2·rank/(n + 1) − 1``, ``n`` the number of non-missing values that month,
   ties taking their average rank. A month is ranked over EVERY stock of the characteristics
   file that month, before rows without a next-month return are dropped, so that a factor at
   ``t`` uses only what is known at ``t`` (whether a stock survives to ``t + 1`` is not).
2. **Missing values** are set to the cross-sectional median, which after ranking is 0.
3. **Alignment.** The row dated ``t`` (its characteristics are already lagged, GKX section
   2.1) predicts the return of ``t + 1``: ``r = RET(t+1) − rf(t+1)``, ``rf`` the Welch–Goyal
   monthly risk-free return. Rows without a return in ``t + 1`` (no CRSP row, or a CRSP
   letter code) are dropped.
4. **Value weights** ``mktcap`` are market equity at ``t``: ``|PRC| × SHROUT`` of CRSP month
   ``t``; where that is missing (no PRC/SHROUT in the returns, or no CRSP row at ``t``) the raw
   ``mvel1`` characteristic of the row, which GKX define as the same quantity (market equity
   in $ thousands at the end of month ``t``). A row with neither is an error.
5. **Macro predictors.** The eight Welch–Goyal predictors of month ``t`` (GKX section 2.1,
   :mod:`fapm_jax.data.macro`, transformed by ``macro_transform``) are appended after the
   characteristics.
6. **Exchange.** When the returns have CRSP's ``EXCHCD``, ``Panel.exchange`` is the code at
   ``t`` (−1 where CRSP has no row or no code at ``t``); the portfolio sorts then use NYSE
   breakpoints (Fama and French), otherwise all-stock breakpoints.
7. **Industry.** ``Panel.sic2`` is the file's ``sic2`` (−1 where missing); with
   ``sic2_dummies=True`` one-hot columns ``sic2_XX`` (one per code present, ascending) are
   appended after the macro predictors (GKX's 74 industry dummies).

Memory: the GKX file (≈4.1M rows × 94 characteristics) is read as Float64 (exact raw values:
a float32 read would turn ``1e308`` into ``inf`` and tie distinct large values), ranked a few
columns at a time and written straight into the float32 ``X``. A ``cache_dir`` keeps the
finished panel as parquet, keyed by the inputs and options, and with it (in its metadata) the raw
files' statistics ``fapm data check`` reports (:class:`~fapm_jax.data.check.FileStats`: a few
kB, counted while the raw frames are in memory), so that a cached data check reads no raw file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from ..core.errors import DataError
from .crsp_returns import check_returns, load_returns, next_month
from .file_stats import char_statistics, me_source_counts
from .gkx_files import GKX_CHARS, check_characteristics, load_characteristics
from .macro import MACRO_NAMES, MACRO_TRANSFORMS, load_welch_goyal, macro_panel
from .panel import Panel
from .panel_cache import CACHE_VERSION as CACHE_VERSION
from .panel_cache import _cache_key, read_panel_cache, write_panel_cache
from .panel_cache import read_file_stats as read_file_stats

_RANK_CHUNK = 8  # characteristics ranked per polars query (bounds the float64 temporaries)

CharSource = str | Path | pl.DataFrame | pl.LazyFrame
ReturnSource = str | Path | pl.DataFrame
MacroSource = str | Path | pl.DataFrame | None


def build_gkx_panel(
    characteristics: CharSource,
    returns: ReturnSource,
    macro: MacroSource = None,
    *,
    sic2_dummies: bool = False,
    macro_transform: str = "rank",
    min_stocks: int = 10,
    cache_dir: str | Path | None = None,
    name: str = "gkx",
    use_chars: Sequence[str] | str = "all",
    drop_chars: Sequence[str] = (),
) -> Panel:
    """The GKX stock-month panel (see the module docstring for every step).

    Args:
        characteristics: GKX ``datashare`` file (path, see
            :func:`fapm_jax.data.gkx_files.scan_characteristics`),
            a frame from :func:`~fapm_jax.data.gkx_files.scan_characteristics` or
            :func:`~fapm_jax.data.gkx_files.load_characteristics`.
        returns: CRSP monthly file (path, see :func:`fapm_jax.data.crsp_returns.load_returns`) or its
            loaded frame.
        macro: Welch–Goyal CSV or workbook, or a frame from :func:`fapm_jax.data.macro.load_welch_goyal`;
            ``None`` is the copy shipped with the package.
        sic2_dummies: append one-hot ``sic2_XX`` columns.
        macro_transform: ``"rank"``, ``"zscore"`` or ``"raw"``
            (:func:`fapm_jax.data.macro.transform_expanding`).
        min_stocks: a panel month whose characteristics cross-section has fewer stocks is an error.
        cache_dir: if given, the finished panel is cached there as parquet and later calls with
            the same inputs (paths, sizes and modification times, or frame contents) and options
            read it back instead of rebuilding.
        name: the panel's label.
        use_chars: the characteristics to train on: ``"all"`` (default) the 94 of GKX, each of
            which the file must have; a list of names (a subset the user chose); ``"file"``
            whatever GKX characteristics the file has. A characteristic asked for and absent is
            a :class:`DataError` naming it: which characteristics were used is never a surprise.
        drop_chars: characteristics to leave out of ``use_chars`` (need not be in the file).

    Raises:
        DataError: bad characteristics/returns, no overlap, too few stocks, no market equity.
        DataError: macro data missing for a panel month (or ``rf`` for a month ``t + 1``).
    """
    panel, _ = gkx_panel_and_stats(
        characteristics,
        returns,
        macro,
        with_stats=cache_dir is not None,
        sic2_dummies=sic2_dummies,
        macro_transform=macro_transform,
        min_stocks=min_stocks,
        cache_dir=cache_dir,
        name=name,
        use_chars=use_chars,
        drop_chars=drop_chars,
    )
    return panel


def gkx_panel_and_stats(
    characteristics: CharSource,
    returns: ReturnSource,
    macro: MacroSource = None,
    *,
    with_stats: bool = True,
    sic2_dummies: bool = False,
    macro_transform: str = "rank",
    min_stocks: int = 10,
    cache_dir: str | Path | None = None,
    name: str = "gkx",
    use_chars: Sequence[str] | str = "all",
    drop_chars: Sequence[str] = (),
):
    """:func:`build_gkx_panel` and, with ``with_stats``, the
    :class:`~fapm_jax.data.check.FileStats` of the raw files (what ``fapm data check`` reports
    that the panel no longer shows), computed while the raw frames are in memory.

    With a ``cache_dir`` the statistics are stored with the cached panel (in its parquet
    metadata, under the same key) and read back with it; ``None`` in their place: not asked for, or a
    cached panel without them (the data check then computes them from the files).
    """
    if macro_transform not in MACRO_TRANSFORMS:
        raise DataError(f"macro transform {macro_transform!r}: must be one of {', '.join(MACRO_TRANSFORMS)}")
    if min_stocks < 2:
        raise ValueError(f"min_stocks={min_stocks}: need at least 2 stocks to rank")
    # A frame given by the caller is never modified; one we load ourselves is freed as we go.
    chars, owned = None, False
    if isinstance(characteristics, pl.LazyFrame):
        chars, owned = load_characteristics(characteristics), True
    elif isinstance(characteristics, pl.DataFrame):
        chars = characteristics
    wanted, options = _panel_options(use_chars, drop_chars, sic2_dummies, macro_transform, min_stocks)
    cache_file = None
    if cache_dir is not None:
        key = _cache_key((characteristics if chars is None else chars, returns, macro), options)
        cache_file = Path(cache_dir) / f"gkx_panel_{key}.parquet"
        if cache_file.is_file():
            stats = read_file_stats(cache_file) if with_stats else None
            return read_panel_cache(cache_file, name=name), stats

    if chars is None:
        chars, owned = load_characteristics(characteristics), True
    elif not owned:
        check_characteristics(chars)
        if "sic2" in chars.columns:
            chars = chars.with_columns(pl.col("sic2").cast(pl.Int32))
    full = chars
    chars = _select_chars(chars, wanted, drop_chars, characteristics)
    rets = check_returns(returns) if isinstance(returns, pl.DataFrame) else load_returns(returns)
    wg = macro if isinstance(macro, pl.DataFrame) else load_welch_goyal(macro)
    partial = None
    if with_stats:
        partial = char_statistics(full, rets, returns)
    del full  # the columns left out are freed; _build frees the others as it ranks them
    panel = _build(
        chars,
        rets,
        wg,
        owned=owned,
        sic2_dummies=sic2_dummies,
        macro_transform=macro_transform,
        min_stocks=min_stocks,
        name=name,
    )
    stats = None
    if partial is not None:
        stats = dataclasses.replace(partial, me_source=me_source_counts(panel.permno, panel.month, rets))
    if cache_file is not None:
        write_panel_cache(cache_file, panel, stats)
    return panel, stats


def _panel_options(
    use_chars, drop_chars, sic2_dummies, macro_transform, min_stocks
) -> tuple[list[str] | None, dict]:
    """The characteristics asked for (see :func:`_wanted_chars`) and the options the cache key holds."""
    wanted = _wanted_chars(use_chars, drop_chars)
    options = {
        "use_chars": wanted if wanted is not None else "file",
        "sic2_dummies": bool(sic2_dummies),
        "macro_transform": macro_transform,
        "min_stocks": int(min_stocks),
    }
    return wanted, options


def panel_cache_file(
    characteristics: CharSource,
    returns: ReturnSource,
    macro: MacroSource = None,
    *,
    cache_dir: str | Path | None = None,
    sic2_dummies: bool = False,
    macro_transform: str = "rank",
    min_stocks: int = 10,
    use_chars: Sequence[str] | str = "all",
    drop_chars: Sequence[str] = (),
    name: str = "gkx",
) -> Path | None:
    """The cache file :func:`build_gkx_panel` uses for these inputs and options (whether or not
    it exists); ``None`` without a ``cache_dir`` or for a lazy characteristics frame (whose key
    is its collected content)."""
    del name  # not part of the key
    if cache_dir is None or isinstance(characteristics, pl.LazyFrame):
        return None
    _, options = _panel_options(use_chars, drop_chars, sic2_dummies, macro_transform, min_stocks)
    return Path(cache_dir) / f"gkx_panel_{_cache_key((characteristics, returns, macro), options)}.parquet"


def _wanted_chars(use_chars: Sequence[str] | str, drop_chars: Sequence[str]) -> list[str] | None:
    """The characteristics asked for, in GKX order (``None``: those of the file, less drops)."""
    if isinstance(use_chars, str) and use_chars not in ("all", "file"):
        raise DataError(f"use_chars={use_chars!r}: must be 'all', 'file' or a list of characteristic names")
    named = [] if isinstance(use_chars, str) else list(use_chars)
    unknown = [c for c in [*named, *drop_chars] if c not in GKX_CHARS]
    if unknown:
        raise DataError(
            f"unknown characteristic(s) {', '.join(repr(c) for c in unknown[:10])}: not among the 94 GKX "
            "characteristics (see fapm_jax.data.gkx_files.GKX_CHARS)"
        )
    if use_chars == "file":
        return None
    base = GKX_CHARS if use_chars == "all" else tuple(c for c in GKX_CHARS if c in set(named))
    return [c for c in base if c not in set(drop_chars)]


def _select_chars(chars: pl.DataFrame, wanted, drop_chars, source) -> pl.DataFrame:
    """``chars`` cut to the characteristics asked for; one that is absent is an error."""
    present = [c for c in GKX_CHARS if c in chars.columns]
    where = source if isinstance(source, str | Path) else "characteristics frame"
    if wanted is None:
        wanted = [c for c in present if c not in set(drop_chars)]
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DataError(
            f"{where}: missing GKX characteristic(s) {', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''} ({len(present)} of the 94 in the file); to "
            "train on a subset, name it: --use-chars NAMES or --drop-chars NAMES "
            "(use_chars= / drop_chars=)"
        )
    if not wanted:
        raise DataError(f"{where}: no characteristic left to train on after --drop-chars")
    keep = ["permno", "month", *wanted] + (["sic2"] if "sic2" in chars.columns else [])
    return chars if keep == chars.columns else chars.select(keep)


def rank_expr(col: str) -> pl.Expr:
    """GKX's map of ``col`` into ``[−1, 1]`` within each ``month``: ``2·rank/(n+1) − 1`` over the
    ``n`` non-missing values (average rank for ties); missing → 0, the cross-sectional median."""
    x = pl.col(col)
    n = x.count().over("month")
    return (2.0 * x.rank("average").over("month") / (n + 1) - 1.0).fill_null(0.0).cast(pl.Float32).alias(col)


def _build(
    chars: pl.DataFrame,
    rets: pl.DataFrame,
    wg: pl.DataFrame,
    *,
    owned: bool,
    sic2_dummies: bool,
    macro_transform: str,
    min_stocks: int,
    name: str,
) -> Panel:
    char_names = [c for c in GKX_CHARS if c in chars.columns]
    if sic2_dummies and "sic2" not in chars.columns:
        raise DataError("sic2_dummies=True but the characteristics have no sic2 column")
    has_me = rets["me"].null_count() < rets.height
    if not has_me and "mvel1" not in chars.columns:
        raise DataError(
            "no market equity: the returns have no PRC/SHROUT and the characteristics have no mvel1 column"
        )

    # Row keys of the characteristics, joined with the return of t+1 and market equity at t.
    # ``everyone``: all rows sorted by (month, permno); ``_row`` is a row's place in ``chars``.
    # Ranking a sorted copy of a few columns at a time is faster than grouping unsorted rows
    # (a file sorted by permno, say), and ``_pos`` (a row's place in ``everyone``) of
    # the panel rows is then increasing.
    everyone = (
        chars.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"), "permno", "month")
        .sort("month", "permno")
        .with_row_index("_pos")
    )
    keys = everyone.select(
        "_pos",
        "_row",
        "permno",
        "month",
        next_month(pl.col("month")).cast(pl.Int32).alias("nxt"),
    )
    if "mvel1" in chars.columns:
        keys = keys.with_columns(chars["mvel1"].gather(everyone["_row"]))
    nxt_ret = rets.filter(pl.col("ret").is_not_null()).select(
        "permno", pl.col("month").alias("nxt"), pl.col("ret").alias("ret_next")
    )
    has_exch = "exchcd" in rets.columns
    at_t = ["permno", "month", "me"] + (["exchcd"] if has_exch else [])
    keys = (
        keys.join(nxt_ret, on=["permno", "nxt"], how="inner")
        .join(rets.select(at_t), on=["permno", "month"], how="left")
        .sort("month", "permno")
    )
    if keys.height == 0:
        raise DataError(
            f"no overlap between characteristics (months {chars['month'].min()}-{chars['month'].max()}) "
            f"and returns (months {rets['month'].min()}-{rets['month'].max()}): no stock has a return "
            "in the month after a characteristics row"
        )

    # Every panel month must have a cross-section large enough to rank.
    counts = chars.group_by("month").len().filter(pl.col("month").is_in(keys["month"].unique().implode()))
    small = counts.filter(pl.col("len") < min_stocks).sort("month")
    if small.height:
        m, k = small.row(0)
        raise DataError(
            f"characteristics month {m}: only {k} stocks, fewer than min_stocks={min_stocks} "
            f"needed to rank ({small.height} such months)"
        )

    # Market equity at t.
    me = keys["me"]
    if "mvel1" in keys.columns:
        me = pl.select(pl.coalesce(me, keys["mvel1"].cast(pl.Float64))).to_series()
    if me.null_count():
        i = int(me.is_null().arg_max())
        raise DataError(
            f"no market equity for permno {keys['permno'][i]}, month {keys['month'][i]}: neither "
            f"|PRC|*SHROUT at t in the returns nor mvel1 in the characteristics ({me.null_count()} such rows)"
        )

    # Macro predictors of t and the risk-free return of t+1.
    month = keys["month"].to_numpy().astype(np.int32)
    macro = macro_panel(int(month[0]), int(month[-1]), path=wg, transform=macro_transform)
    m_idx = np.searchsorted(macro["month"].to_numpy(), month)
    rf_tab = wg.filter(pl.col("rf").is_not_null()).select("month", "rf").sort("month")
    need = keys["nxt"].unique().sort()
    absent = need.filter(~need.is_in(rf_tab["month"].implode()))
    if absent.len():
        raise DataError(
            f"Welch-Goyal data: no risk-free rate 'rf' for month {absent[0]} (needed for the excess "
            f"return of t+1; {absent.len()} months missing)"
        )
    nxt = keys["nxt"].to_numpy()
    rf = rf_tab["rf"].to_numpy()[np.searchsorted(rf_tab["month"].to_numpy(), nxt)]
    r = (keys["ret_next"].to_numpy() - rf).astype(np.float32)

    order = keys["_row"].to_numpy()
    pos = keys["_pos"].to_numpy()
    all_order = everyone["_row"]
    all_month = everyone["month"].set_sorted()
    del everyone
    sic = None
    if "sic2" in chars.columns:
        sic = chars["sic2"].fill_null(-1).to_numpy()[order].astype(np.int32)
    codes = np.unique(sic[sic >= 0]) if sic2_dummies else np.array([], np.int32)
    dummy_names = [f"sic2_{int(c):02d}" for c in codes]
    n_char, n_macro = len(char_names), len(MACRO_NAMES)
    X = np.empty((order.size, n_char + n_macro + len(codes)), np.float32)

    # Ranks, a few characteristics per query; a column we loaded ourselves is freed once used.
    for start in range(0, n_char, _RANK_CHUNK):
        block = char_names[start : start + _RANK_CHUNK]
        ranked = chars.select(block)[all_order].with_columns(all_month).select([rank_expr(c) for c in block])
        X[:, start : start + len(block)] = ranked[pos].to_numpy()
        del ranked
        if owned:
            for c in block:
                chars.drop_in_place(c)
    macro_vals = macro.select(MACRO_NAMES).to_numpy()
    for k in range(n_macro):
        X[:, n_char + k] = macro_vals[m_idx, k]
    for k, code in enumerate(codes):
        X[:, n_char + n_macro + k] = sic == code

    return Panel(
        X=X,
        r=r,
        permno=keys["permno"].to_numpy().astype(np.int64),
        month=month,
        mktcap=me.to_numpy().astype(np.float32),
        feature_names=tuple(char_names) + MACRO_NAMES + tuple(dummy_names),
        macro_names=MACRO_NAMES,
        sic2=sic,
        name=name,
        exchange=keys["exchcd"].fill_null(-1).to_numpy().astype(np.int32) if has_exch else None,
    )


# --------------------------------------------------------------------------- cache
