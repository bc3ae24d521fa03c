"""Atomic output: every file is written beside its target and renamed into place.

A run that is interrupted, or fails half-way, never leaves a truncated table or parameter file
behind: readers see either the previous file or the complete new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import polars as pl


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_frame(path: str | Path, frame: pl.DataFrame) -> Path:
    """Write a polars frame as parquet or CSV, chosen by the suffix of ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            frame.write_parquet(tmp)
        elif path.suffix == ".csv":
            frame.write_csv(tmp)
        else:
            raise ValueError(f"write_frame: unsupported suffix {path.suffix!r} of {path}")
    return path


def write_arrays(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write named arrays as an ``.npz`` archive."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    return Path(path)


def safe_name(name: str) -> str:
    """``name`` as a file-name stem: anything but letters, digits, ``_ . -`` becomes ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def write_keyed(path: str | Path, fingerprint: str, arrays: Mapping[str, np.ndarray]) -> Path:
    """A saved result, stamped with the ``fingerprint`` of what produced it (atomic)."""
    return write_arrays(path, {"fingerprint": np.asarray(fingerprint), **arrays})


def read_keyed(path: str | Path, fingerprint: str, keys: tuple[str, ...]) -> tuple[np.ndarray, ...] | None:
    """The arrays ``keys`` of a :func:`write_keyed` file, or ``None`` when it is missing or was
    produced by something else (its fingerprint differs): resumable work is reused only if it
    is exactly the work asked for."""
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path) as z:
        if str(z["fingerprint"]) != fingerprint:
            return None
        return tuple(z[k] for k in keys)


def save_figure(path: str | Path, fig) -> Path:
    """Save a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
