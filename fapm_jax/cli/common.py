"""What the commands share: progress lines on stderr, the output folder and the comparison
models whose optional libraries are installed."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import ConfigError

#: The optional library of each tree model (``pip install "fapm-jax[trees]"``).
_TREE_LIBRARIES = {"RF": "sklearn", "GBRT": "lightgbm"}


def log(args, msg: str) -> None:
    """A progress line on stderr, unless ``--quiet``."""
    if not args.quiet:
        print(msg, file=sys.stderr, flush=True)


def output_dir(args) -> Path:
    """``--out`` as a path; a file there is a :class:`ConfigError`."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    return out


def available(names: Sequence[str], args) -> tuple[list[str], list[str]]:
    """Split ``names`` into models whose libraries are installed and tree models that are not."""
    ok, missing = [], []
    for nm in names:
        lib = _TREE_LIBRARIES.get(nm.split("+")[0])
        (missing if lib and importlib.util.find_spec(lib) is None else ok).append(nm)
    for nm in missing:
        log(args, f'fapm: skipping {nm}: its library is not installed (pip install "fapm-jax[trees]")')
    return ok, missing
