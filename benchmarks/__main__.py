"""``python -m benchmarks``: run the benchmark suite and write ``benchmarks/results/``."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import polars as pl

from fapm_jax.cli.progress import Stages
from fapm_jax.core.io import write_frame, write_text

from . import gibbs_peer, gkx_scale, moments, precision, settings_memory, torch_peer, vmap_vs_loop


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--stocks", type=int, default=100, help="simulated stocks per month")
    p.add_argument("--chars", type=int, default=30, help="simulated characteristics (+8 macro)")
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--windows", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument(
        "--only",
        choices=("vmap", "moments", "gkx", "torch", "precision", "peers", "settings"),
        default=None,
        help="run one benchmark (default: all)",
    )
    p.add_argument(
        "--gkx-scale",
        type=float,
        default=1.0,
        help="fraction of GKX's cross-section in the GKX-shaped panel (1: ≈4.1M rows)",
    )
    p.add_argument("--gkx-ranks", default="8,32", help="ranks of the GKX-scale runs")
    p.add_argument("--gkx-full", action="store_true", help="also run (not only extrapolate) the 100 epochs")
    p.add_argument("--quiet", action="store_true", help="no progress bar or lines (results still printed)")
    p.add_argument("--moment-stocks", type=int, default=200, help="stocks of the moment-trainer benchmark")
    a = p.parse_args()
    out = Path(a.out)
    runs = {  # name: (results file stem or None for the platform's, run, describe), in this order
        "gkx": (
            None,
            lambda: gkx_scale.run(a.gkx_scale, [int(k) for k in a.gkx_ranks.split(",")], full=a.gkx_full),
            gkx_scale.describe,
        ),
        "torch": (
            "torch_peer",
            lambda: torch_peer.run(a.stocks, a.chars, a.rank, a.epochs, a.windows),
            torch_peer.describe,
        ),
        "moments": ("moments", lambda: moments.run(a.moment_stocks, a.chars, a.rank), moments.describe),
        "vmap": (
            "vmap_vs_loop",
            lambda: vmap_vs_loop.run(a.stocks, a.chars, a.rank, a.epochs, a.windows, a.batch_size),
            vmap_vs_loop.describe,
        ),
        "precision": (
            "precision",
            lambda: precision.run(a.stocks, a.chars, a.rank, a.epochs, a.windows),
            precision.describe,
        ),
        "settings": ("settings_memory", lambda: settings_memory.run(), settings_memory.describe),
        "peers": (  # myFM on the same windows, rank and sweeps: a loop, as a user runs it
            "gibbs_peer",
            lambda: [gibbs_peer.run(a.stocks, a.chars, a.windows, a.rank, myfm_windows=None)],
            gibbs_peer.describe,
        ),
    }
    chosen = [n for n in runs if a.only in (None, n)]
    stages = Stages(a, len(chosen), "benchmarks")
    for name, (stem, run, describe) in runs.items():
        if name not in chosen:
            continue
        if name == "peers" and importlib.util.find_spec("myfm") is None:
            stages.note(
                'peers: myfm not installed (pip install "fapm-jax[dev]"); the myFM comparison is left out'
            )
            stages.done(name)
            continue
        if name == "torch" and importlib.util.find_spec("torch") is None:
            stages.note(
                'torch: not installed (pip install "fapm-jax[torch]"); the PyTorch comparison is left out'
            )
            stages.done(name)
            continue
        rows = run()
        stem = stem or f"gkx_scale_{rows[0]['platform']}"
        write_frame(out / f"{stem}.csv", pl.DataFrame(rows))
        text = describe(rows)
        write_text(out / f"{stem}.md", text)
        print(text) if a.quiet else stages.note(text)  # the results always; above the bar when there is one
        stages.done(name)
    stages.close()


if __name__ == "__main__":
    main()
