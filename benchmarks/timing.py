"""Wall-clock timing shared by the benchmarks: a call until its results are ready, and the
compilation time JAX itself reports (tracing, lowering, XLA) during a block of code."""

from __future__ import annotations

import contextlib
import time

import jax
import jax.monitoring

#: JAX's duration events that make up compiling a program (jax/_src/dispatch.py, pxla.py).
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_totals = {name: 0.0 for name in COMPILE_EVENTS}
_listening = False


def timed(fn):
    """``(seconds, result)`` of ``fn()``, waiting for its arrays."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - t0, out


def _listen(name: str, seconds: float, **_) -> None:
    if name in _totals:
        _totals[name] += seconds


@contextlib.contextmanager
def compile_clock():
    """``with compile_clock() as spent: ...`` then ``spent()``: the seconds JAX spent
    compiling inside the block (from its own monitoring events, not a difference of timings)."""
    global _listening
    if not _listening:
        jax.monitoring.register_event_duration_secs_listener(_listen)
        _listening = True
    before = sum(_totals.values())
    result = [0.0]
    try:
        yield lambda: result[0]
    finally:
        result[0] = sum(_totals.values()) - before
