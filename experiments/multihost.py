"""FAPM training over several processes (hosts) with ``jax.distributed``, checked against one device.

On a cluster, start one process per host with the same arguments plus its ``--process-id``
(``--coordinator`` is host 0's ``address:port``), e.g. with two 4-GPU hosts::

    python experiments/multihost.py --coordinator host0:9876 --num-processes 2 --process-id 0 --rows 8
    python experiments/multihost.py --coordinator host0:9876 --num-processes 2 --process-id 1 --rows 8

Every process builds the same panel (here the embedded default simulation; on real data each
process loads the same files), the mesh spans all hosts' devices
(:func:`fapm_jax.make_mesh`), each process places only its own devices' rows, and
:func:`fapm_jax.fit_windows` runs one program across them (one ``psum`` per epoch over the
``rows`` axis). Process 0 writes the fitted models.

Without ``--process-id`` the script checks itself on this machine: it starts
``--num-processes`` CPU processes with ``--local-devices`` host devices each (Gloo
collectives between the processes), then trains on one device in this process and reports
the largest difference of the fitted models:

    python experiments/multihost.py                  # 2 processes × 1 CPU device, rows split over both

On a 2-core machine keep one device per core: with more forced host devices than cores the
devices' threads wait for each other inside XLA:CPU's all-reduce and the run stalls (seen with
4 devices on 2 cores); a real multi-GPU or multi-host run has no such limit.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--coordinator", default="localhost:9876", help="host 0's address:port")
    p.add_argument("--num-processes", type=int, default=2)
    p.add_argument("--process-id", type=int, default=None, help="this process (omit: run the local check)")
    p.add_argument(
        "--local-devices",
        type=int,
        default=1,
        help="CPU devices per process (local check, CPU only; more devices than cores can stall XLA:CPU's "
        "collectives, whose waiting threads then hold the cores the other devices need)",
    )
    p.add_argument("--rows", type=int, default=None, help="devices the rows are split over (default: all)")
    p.add_argument("--windows", type=int, default=1, help="devices the windows are split over")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--stocks", type=int, default=30, help="stocks of the simulated panel")
    p.add_argument("--out", type=Path, default=None, help="where process 0 writes the models (.npz)")
    return p.parse_args(argv)


def problem(args):
    import fapm_jax as fj

    panel, _ = fj.simulate_panel(fj.SimConfig(n_stocks=args.stocks))
    windows = fj.rolling_windows(fj.WindowSpec())
    train, valid, _ = fj.window_masks(panel.year, windows)
    return panel, train, valid, fj.TrainConfig(rank=args.rank, epochs=args.epochs)


def worker(args) -> None:
    import jax

    # CPU devices of different processes talk through Gloo (GPUs use NCCL; this setting is then unused).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    import numpy as np

    import fapm_jax as fj

    panel, train, valid, cfg = problem(args)
    n_dev = len(jax.devices())
    rows = args.rows or n_dev // args.windows
    mesh = fj.make_mesh(rows=rows, windows=args.windows)
    t0 = time.perf_counter()
    res = fj.fit_windows(panel.X, panel.r, train, valid, cfg, mesh=mesh)
    jax.block_until_ready(res.params)
    took = time.perf_counter() - t0
    print(
        f"process {jax.process_index()}/{jax.process_count()}: {n_dev} devices, mesh {dict(mesh.shape)}, "
        f"{took:.1f} s, mean best validation R² {float(np.mean(np.asarray(res.best_valid_r2))):.6f}",
        flush=True,
    )
    if jax.process_index() == 0 and args.out is not None:
        np.savez(
            args.out,
            V=np.asarray(res.params.V),
            w=np.asarray(res.params.w),
            w0=np.asarray(res.params.w0),
            best_valid_r2=np.asarray(res.best_valid_r2),
            best_epoch=np.asarray(res.best_epoch),
        )
    jax.distributed.shutdown()


def local_check(args) -> int:
    """Start the processes here, then compare their models with one device's."""
    out = Path(tempfile.mkdtemp()) / "multihost.npz"
    # the caller's other XLA flags (e.g. an optimisation level) pass through; the device count is ours
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
    flags.append(f"--xla_force_host_platform_device_count={args.local_devices}")
    env = dict(os.environ, XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu")
    base = [
        sys.executable,
        __file__,
        "--coordinator",
        args.coordinator,
        "--num-processes",
        str(args.num_processes),
        "--local-devices",
        str(args.local_devices),
        "--windows",
        str(args.windows),
        "--epochs",
        str(args.epochs),
        "--rank",
        str(args.rank),
        "--stocks",
        str(args.stocks),
        "--out",
        str(out),
    ]
    if args.rows:
        base += ["--rows", str(args.rows)]
    procs = [subprocess.Popen(base + ["--process-id", str(i)], env=env) for i in range(args.num_processes)]
    codes = [p.wait(timeout=900) for p in procs]
    if any(codes):
        print(f"multihost: a process failed (exit codes {codes})", file=sys.stderr)
        return 1
    import jax
    import numpy as np

    import fapm_jax as fj

    panel, train, valid, cfg = problem(args)
    one = fj.fit_windows(panel.X, panel.r, train, valid, cfg)
    got = np.load(out)
    diff = max(float(np.max(np.abs(np.asarray(getattr(one.params, k)) - got[k]))) for k in ("V", "w", "w0"))
    same_epochs = bool((np.asarray(one.best_epoch) == got["best_epoch"]).all())
    r2 = float(np.max(np.abs(np.asarray(one.best_valid_r2) - got["best_valid_r2"])))
    print(
        f"{args.num_processes} processes × {args.local_devices} devices against one device "
        f"({jax.devices()[0]}): "
        f"largest parameter difference {diff:.2e}, best validation R² {r2:.2e}, same best epochs: "
        f"{same_epochs}"
    )
    return 0 if same_epochs and diff < 1e-4 else 1


def main(argv=None) -> int:
    args = parse(argv)
    if args.process_id is None:
        return local_check(args)
    worker(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
