"""Checkpoints of a training run, so that a long rolling run or sweep can resume.

A checkpoint holds every leaf of the batched :class:`~fapm_jax.core.engine.TrainState` (typed PRNG
keys as their raw key data) plus a fingerprint of what was being trained: configuration,
sweep settings, data shape and checksums, and window masks. It is written atomically; a
checkpoint whose fingerprint does not match the run at hand is ignored, never half-applied.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax
import numpy as np

from .io import write_arrays


def fingerprint(*parts) -> str:
    """A stable hex digest of configuration objects and arrays."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, (np.ndarray, jax.Array)):
            a = np.asarray(part)
            h.update(str((a.shape, a.dtype)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def save_state(path: str | Path, tree, *, fingerprint: str, epochs_done: int) -> Path:
    """Write the leaves of ``tree`` with the run's fingerprint and progress."""
    leaves = jax.tree_util.tree_leaves(tree)
    arrays = {
        f"leaf_{i}": np.asarray(jax.random.key_data(x) if _is_key(x) else x) for i, x in enumerate(leaves)
    }
    arrays["fingerprint"] = np.asarray(fingerprint)
    arrays["epochs_done"] = np.asarray(epochs_done)
    return write_arrays(path, arrays)


def load_state(path: str | Path, like, *, fingerprint: str):
    """``(tree, epochs_done)`` restored into the structure of ``like``, or ``None`` when there is
    no checkpoint at ``path`` or it belongs to another run."""
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path) as f:
        if str(f["fingerprint"]) != fingerprint:
            return None
        leaves, treedef = jax.tree_util.tree_flatten(like)
        restored = []
        for i, x in enumerate(leaves):
            data = f[f"leaf_{i}"]
            if _is_key(x):
                restored.append(jax.random.wrap_key_data(data, impl=jax.random.key_impl(x)))
            else:
                restored.append(jax.numpy.asarray(data, dtype=x.dtype))
        return jax.tree_util.tree_unflatten(treedef, restored), int(f["epochs_done"])
