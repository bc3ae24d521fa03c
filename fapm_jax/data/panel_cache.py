"""The parquet cache of preprocessed GKX panels (:func:`~fapm_jax.data.preprocess.build_gkx_panel`
with ``cache_dir``): the key of the inputs and options, the atomic write of a panel (with the
raw-file statistics of ``fapm data check`` in its metadata, :class:`~fapm_jax.data.file_stats.FileStats`)
and its read back, in row groups that bound the memory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl

from ..core.errors import DataError
from ..core.io import atomic_path
from .file_stats import FileStats
from .macro import welch_goyal_path
from .panel import Panel

#: Bumped whenever the preprocessing changes, so that old caches are not reused.
CACHE_VERSION = 4  # 3: characteristics parsed as float64; 4: the data check's file statistics in the metadata


_CACHE_ROW_GROUP = 1 << 18


def read_file_stats(cache_file: str | Path):
    """The :class:`~fapm_jax.data.check.FileStats` stored in the metadata of the cached panel
    ``cache_file`` (whose name holds the key of the inputs and options, so they are never
    another panel's); ``None`` when the file or the statistics are absent or unreadable, or the
    cache version differs."""
    import pyarrow.parquet as pq

    try:
        meta = json.loads(pq.read_schema(cache_file).metadata[b"fapm_panel"])
        if meta.get("version") != CACHE_VERSION or meta.get("file_stats") is None:
            return None
        return FileStats.from_json(meta["file_stats"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def _identity(src) -> dict:
    """What identifies an input for the cache: a file's path, size and mtime, or a frame's content."""
    if src is None:
        src = welch_goyal_path()
    if isinstance(src, pl.LazyFrame):  # pragma: no cover - collected by the caller
        src = src.collect()
    if isinstance(src, pl.DataFrame):
        h = hashlib.sha256(repr(list(src.schema.items())).encode())
        h.update(src.hash_rows(seed=0).to_numpy().tobytes())
        return {"frame": h.hexdigest(), "polars": pl.__version__}
    path = Path(src).resolve()
    if not path.exists():
        return {"path": str(path)}  # the loader reports it
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _cache_key(sources, options: dict) -> str:
    blob = json.dumps(
        {"version": CACHE_VERSION, "options": options, "inputs": [_identity(s) for s in sources]},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def write_panel_cache(path: str | Path, panel: Panel, file_stats=None) -> Path:
    """Write ``panel`` as parquet (keys, target, weights, ``sic2``, one column per factor),
    row group by row group so that no second copy of ``X`` is made; atomically. ``file_stats``
    (a :class:`~fapm_jax.data.check.FileStats`) go into the file's metadata
    (:func:`read_file_stats`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = {
        "feature_names": list(panel.feature_names),
        "macro_names": list(panel.macro_names),
        "has_sic2": panel.sic2 is not None,
        "has_exchange": panel.exchange is not None,
        "version": CACHE_VERSION,
        "file_stats": None if file_stats is None else file_stats.to_json(),
    }
    fields = [("permno", pa.int64()), ("month", pa.int32()), ("r", pa.float32()), ("mktcap", pa.float32())]
    if panel.sic2 is not None:
        fields.append(("sic2", pa.int32()))
    if panel.exchange is not None:
        fields.append(("exchange", pa.int32()))
    fields += [(f, pa.float32()) for f in panel.feature_names]
    schema = pa.schema(fields, metadata={"fapm_panel": json.dumps(meta)})
    path = Path(path)
    with atomic_path(path) as tmp:
        # Ranks take ~N distinct values per row group, so dictionary encoding only costs time;
        # lz4 keeps the cache fast to read (the point of having one).
        with pq.ParquetWriter(
            tmp, schema, compression="lz4", use_dictionary=False, write_statistics=False
        ) as writer:
            for a in range(0, max(panel.n_rows, 1), _CACHE_ROW_GROUP):
                b = min(a + _CACHE_ROW_GROUP, panel.n_rows)
                cols = [panel.permno[a:b], panel.month[a:b], panel.r[a:b], panel.mktcap[a:b]]
                if panel.sic2 is not None:
                    cols.append(panel.sic2[a:b])
                if panel.exchange is not None:
                    cols.append(panel.exchange[a:b])
                cols += list(_rows_to_columns(panel.X[a:b]))
                writer.write_table(pa.Table.from_arrays([pa.array(c) for c in cols], schema=schema))
    return path


def read_panel_cache(path: str | Path, name: str = "gkx") -> Panel:
    """Read a panel written by :func:`write_panel_cache` into a fresh float32 ``X``."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    meta = json.loads(pf.schema_arrow.metadata[b"fapm_panel"])
    if meta.get("version") != CACHE_VERSION:
        raise DataError(f"{path}: panel cache version {meta.get('version')}, expected {CACHE_VERSION}")
    features = meta["feature_names"]
    n = pf.metadata.num_rows
    X = np.empty((n, len(features)), np.float32)
    keys = {
        "permno": np.empty(n, np.int64),
        "month": np.empty(n, np.int32),
        "r": np.empty(n, np.float32),
        "mktcap": np.empty(n, np.float32),
    }
    if meta["has_sic2"]:
        keys["sic2"] = np.empty(n, np.int32)
    if meta["has_exchange"]:
        keys["exchange"] = np.empty(n, np.int32)
    a = 0
    for g in range(pf.num_row_groups):
        t = pf.read_row_group(g)
        b = a + t.num_rows
        for k, arr in keys.items():
            arr[a:b] = t.column(k).to_numpy()
        _columns_to_rows([t.column(f).to_numpy() for f in features], X[a:b])
        a = b
        del t
    return Panel(
        X=X,
        r=keys["r"],
        permno=keys["permno"],
        month=keys["month"],
        mktcap=keys["mktcap"],
        feature_names=tuple(features),
        macro_names=tuple(meta["macro_names"]),
        sic2=keys.get("sic2"),
        exchange=keys.get("exchange"),
        name=name,
    )


_TRANSPOSE_ROWS = 8192  # rows per tile: a tile of ~100 float32 columns stays in cache


def _rows_to_columns(block: np.ndarray) -> np.ndarray:
    """``block.T`` as a C-contiguous ``[F, rows]`` array, copied tile by tile (a cache-friendly
    transpose: ~2x faster than one strided copy per column)."""
    out = np.empty(block.shape[::-1], block.dtype)
    for s in range(0, block.shape[0], _TRANSPOSE_ROWS):
        out[:, s : s + _TRANSPOSE_ROWS] = block[s : s + _TRANSPOSE_ROWS].T
    return out


def _columns_to_rows(cols: list[np.ndarray], out: np.ndarray) -> None:
    """Write the columns ``cols`` into the row-major ``out[rows, F]``, tile by tile."""
    tile = np.empty((len(cols), min(_TRANSPOSE_ROWS, out.shape[0])), out.dtype)
    for s in range(0, out.shape[0], _TRANSPOSE_ROWS):
        e = min(s + _TRANSPOSE_ROWS, out.shape[0])
        for j, c in enumerate(cols):
            tile[j, : e - s] = c[s:e]
        out[s:e] = tile[:, : e - s].T
