"""FAPM training at the GKX panel's real size, against this device's own measured limits.

A synthetic panel of GKX's shape (1957–2016, 720 months, the cross-section growing from ~2,300
to ~9,100 stocks: ≈ 4.1 million stock-months; 94 characteristics as cross-sectional ranks in
[−1, 1], 8 macro series, 74 SIC2 dummies = 176 factors), held once on the device. FAPM is trained
on GKX's 30 rolling windows in one vmapped program (:func:`fapm_jax.fit_windows`, full batch,
rank ``k``), and timed in the same run as

* the device's matmul peak: a large float32 matrix product (GFLOP/s), and
* its memory bandwidth: a reduction over a large float32 array (GB/s),

so the training step is reported as a fraction of what this device can do (the roofline ratio).
One epoch of one window costs ``N n (4k + 8)`` flops over the ``N`` rows of the panel (forward
``x [w | V]`` and ``(x ⊙ x) · u``, and their transposes in the backward pass; the masks make
every window pass over all rows). Times: the first call of a 1-epoch run (compilation
included), then steady 1-epoch and 2-epoch runs (best of two), whose difference is one epoch
and whose rest is the start (OLS starts from block moments, linear validation R², the last
epoch's evaluation); a 100-epoch run is ``start + 100 × epoch``; with ``full`` the 100 epochs
are run and timed too. Compilation is the time JAX reports spending on tracing, lowering and
XLA during the first call (:func:`benchmarks.timing.compile_clock`). Peak memory is the
process's peak resident set (CPU) or the device's peak bytes in use (GPU), against the panel's
float32 size.
"""

from __future__ import annotations

import gc
import resource

import jax
import jax.numpy as jnp
import numpy as np

from fapm_jax import TrainConfig, WindowSpec, fit_windows
from fapm_jax.data.windows import rolling_windows, window_masks

from .timing import compile_clock
from .timing import timed as _timed

FIRST_YEAR, LAST_YEAR = 1957, 2016
N_CHARS, N_MACRO, N_SIC2 = 94, 8, 74


def gkx_shaped_panel(scale: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X [N, 176]`` float32, ``r [N]`` float32 and the year of each row, GKX's shape
    (``scale`` < 1 thins every month's cross-section, for a quick run). Rows sorted by month."""
    rng = np.random.default_rng(seed)
    months = [y * 100 + m for y in range(FIRST_YEAR, LAST_YEAR + 1) for m in range(1, 13)]
    sizes = np.round(np.linspace(2300, 9100, len(months)) * scale).astype(int)  # mean 5,700
    N, n = int(sizes.sum()), N_CHARS + N_MACRO + N_SIC2
    X = np.zeros((N, n), np.float32)
    r = np.empty(N, np.float32)
    year = np.repeat(np.array(months) // 100, sizes)
    macro = rng.standard_normal((len(months), N_MACRO)).astype(np.float32)
    beta = (rng.standard_normal(N_CHARS) * 0.002).astype(np.float32)
    a = 0
    for t, k in enumerate(sizes):
        b = a + k
        ranks = rng.permuted(
            np.tile((2.0 * np.arange(1, k + 1) / (k + 1) - 1.0).astype(np.float32), (N_CHARS, 1)), axis=1
        ).T
        X[a:b, :N_CHARS] = ranks
        X[a:b, N_CHARS : N_CHARS + N_MACRO] = macro[t]
        X[np.arange(a, b), N_CHARS + N_MACRO + rng.integers(0, N_SIC2, k)] = 1.0
        r[a:b] = (
            ranks @ beta + 0.01 * ranks[:, 0] * ranks[:, 1] + rng.standard_normal(k).astype(np.float32) * 0.15
        )
        a = b
    return X, r, year


def matmul_peak(size: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of a ``size``-square float32 matrix product, best of ``repeats``."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    best = min(_timed(lambda: f(a, b))[0] for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def read_bandwidth(n_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """GB/s of a sum over an ``n_bytes`` float32 array, best of ``repeats``."""
    x = jnp.ones((n_bytes // 4,), jnp.float32)
    f = jax.jit(jnp.sum)
    f(x).block_until_ready()
    best = min(_timed(lambda: f(x))[0] for _ in range(repeats))  # noqa: F821 (x is deleted after)
    del x
    return n_bytes / best / 1e9


def _reset_peak() -> None:
    """Start a new peak of the resident set (Linux: ``clear_refs`` 5 resets ``VmHWM``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_bytes() -> int:
    """The device's peak bytes in use (GPU), else the process's peak resident set since the last
    :func:`_reset_peak` (Linux ``VmHWM``; elsewhere the lifetime peak)."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def train_timing(X, r, tm, vm, rank: int, epochs: int = 2, full: bool = False, repeats: int = 2) -> dict:
    """Steady times (best of ``repeats``, interleaved) of a 1-epoch and an ``epochs``-epoch run
    (each compiled by a first call):
    ``epoch = (t_epochs − t_1) / (epochs − 1)`` and ``start = t_1 − epoch`` (the OLS starts,
    the linear validation R² and the forward pass that evaluates the last epoch, once per run);
    with ``full``, a 100-epoch run. Timing epochs one call at a time would add that last
    forward pass to every epoch."""

    def run(e):
        return _timed(lambda: fit_windows(X, r, tm, vm, TrainConfig(rank=rank, epochs=e)))

    with compile_clock() as compiling:
        first, _ = run(1)
    run(epochs)  # compiles the longer scan
    t1 = tE = float("inf")
    for _ in range(repeats):  # a shared machine's drift hits both; the best of each is kept
        t1 = min(t1, run(1)[0])
        t, res = run(epochs)
        tE = min(tE, t)
    epoch = (tE - t1) / (epochs - 1)
    start = t1 - epoch
    out = dict(
        rank=rank,
        first_call_s=first,
        steady_s=tE,
        start_s=start,
        epoch_s=epoch,
        compile_s=compiling(),
        est_100_epochs_s=start + 100 * epoch,
        best_valid_r2=float(np.mean(np.asarray(res.best_valid_r2))),
    )
    if full:
        t100, res100 = run(100)
        out.update(
            full_100_epochs_s=t100, full_best_valid_r2=float(np.mean(np.asarray(res100.best_valid_r2)))
        )
    return out


def run(scale: float = 1.0, ranks=(8, 32), epochs: int = 2, full: bool = False) -> list[dict]:
    """Build the panel, place it on the device once, then time each rank; peak memory is
    measured from the moment the panel is in place (the process then holds the panel, the
    masks and Python/JAX themselves: ``base``)."""
    Xh, rh, year = gkx_shaped_panel(scale)
    N, n = Xh.shape
    panel_bytes = Xh.nbytes
    tm, vm, _ = window_masks(year, rolling_windows(WindowSpec()))
    X, r = jax.block_until_ready((jax.device_put(Xh), jax.device_put(rh)))  # the copy is done
    del Xh, rh
    gc.collect()
    _reset_peak()
    base = _peak_bytes()
    rows = []
    for k in ranks:
        t = train_timing(X, r, tm, vm, k, epochs, full)
        flops = tm.shape[0] * N * n * (4 * k + 8)
        t.update(
            device=str(jax.devices()[0].device_kind),
            platform=jax.devices()[0].platform,
            rows=N,
            factors=n,
            windows=tm.shape[0],
            epoch_gflop=flops / 1e9,
            epoch_gflops_per_s=flops / t["epoch_s"] / 1e9,
            epoch_gb_per_s=2 * X.nbytes / t["epoch_s"] / 1e9,
            panel_gb=panel_bytes / 1e9,
        )
        rows.append(t)
    peak = _peak_bytes()
    del X, r
    gc.collect()
    mm, bw = matmul_peak(), read_bandwidth()
    for t in rows:
        t.update(
            matmul_peak_gflops=mm,
            read_gb_per_s=bw,
            roofline_ratio=t["epoch_gflops_per_s"] / mm,
            peak_memory_gb=peak / 1e9,
            peak_over_panel=peak / panel_bytes,
            peak_over_panel_net=(peak - base) / panel_bytes,
        )
    return rows


def describe(rows: list[dict]) -> str:
    from fapm_jax.reporting.markdown import md_table

    r0 = rows[0]
    head = [
        "rank",
        "first call (s)",
        "compile (s)",
        "start (s)",
        "epoch (s)",
        "100 epochs (s)",
        "GFLOP/epoch",
        "GFLOP/s",
        "of matmul peak",
    ]
    body = [
        [
            t["rank"],
            f"{t['first_call_s']:.1f}",
            f"{t['compile_s']:.1f}",
            f"{t['start_s']:.1f}",
            f"{t['epoch_s']:.2f}",
            (
                f"{t['full_100_epochs_s']:.0f} (run)"
                if "full_100_epochs_s" in t
                else f"{t['est_100_epochs_s']:.0f} (start + 100 epochs)"
            ),
            f"{t['epoch_gflop']:.0f}",
            f"{t['epoch_gflops_per_s']:.1f}",
            f"{100 * t['roofline_ratio']:.0f}%",
        ]
        for t in rows
    ]
    return (
        f"GKX-shaped panel on {r0['platform']} ({r0['device']}): {r0['rows']:,} rows × "
        f"{r0['factors']} factors "
        f"({r0['panel_gb']:.2f} GB float32), {r0['windows']} windows vmapped, full batch.\n\n"
        + md_table(head, body)
        + "\n\nDevice limits measured in the same run: float32 matmul "
        f"{r0['matmul_peak_gflops']:.0f} GFLOP/s, "
        f"array read {r0['read_gb_per_s']:.1f} GB/s. Peak memory {r0['peak_memory_gb']:.2f} GB = "
        f"{r0['peak_over_panel']:.2f}× the panel's float32 size, from the moment the panel is on the device "
        f"(training adds {r0['peak_over_panel_net']:.2f}× the panel to what the process held then).\n"
    )
