"""``python -m benchmarks``: run the benchmark suite and write ``benchmarks/results/``."""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from fapm_jax.io import write_frame, write_text
from fapm_jax.report import md_table

from . import gkx_scale, moments, torch_peer, vmap_vs_loop


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--stocks", type=int, default=100, help="simulated stocks per month")
    p.add_argument("--chars", type=int, default=30, help="simulated characteristics (+8 macro)")
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--windows", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--only", choices=("vmap", "moments", "gkx", "torch"), default=None, help="run one benchmark (default: all)")
    p.add_argument("--gkx-scale", type=float, default=1.0,
                   help="fraction of GKX's cross-section in the GKX-shaped panel (1: ≈4.1M rows)")
    p.add_argument("--gkx-ranks", default="8,32", help="ranks of the GKX-scale runs")
    p.add_argument("--gkx-full", action="store_true", help="also run (not only extrapolate) the 100 epochs")
    p.add_argument("--moment-stocks", type=int, default=200, help="stocks of the moment-trainer benchmark")
    a = p.parse_args()
    out = Path(a.out)
    if a.only in (None, "gkx"):
        rows = gkx_scale.run(a.gkx_scale, [int(k) for k in a.gkx_ranks.split(",")], full=a.gkx_full)
        name = f"gkx_scale_{rows[0]['platform']}"
        write_frame(out / f"{name}.csv", pl.DataFrame(rows))
        text = gkx_scale.describe(rows)
        write_text(out / f"{name}.md", text)
        print(text)
        if a.only == "gkx":
            return
    if a.only in (None, "torch"):
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch: not installed (pip install \"fapm-jax[torch]\"); the PyTorch comparison is left out")
        else:
            rows = torch_peer.run(a.stocks, a.chars, a.rank, a.epochs, a.windows)
            write_frame(out / "torch_peer.csv", pl.DataFrame(rows))
            text = torch_peer.describe(rows)
            write_text(out / "torch_peer.md", text)
            print(text)
        if a.only == "torch":
            return
    if a.only not in ("vmap", "torch"):
        rows = moments.run(a.moment_stocks, a.chars, a.rank)
        write_frame(out / "moments.csv", pl.DataFrame(rows))
        text = moments.describe(rows)
        write_text(out / "moments.md", text)
        print(text)
    if a.only == "moments":
        return
    rows = vmap_vs_loop.run(a.stocks, a.chars, a.rank, a.epochs, a.windows, a.batch_size)
    frame = pl.DataFrame(rows)
    write_frame(out / "vmap_vs_loop.csv", frame)
    table = md_table(
        ["method", "rows", "factors", "rank", "windows", "epochs", "first call (s)", "steady (s)",
         "train rows/s"],
        [[r["method"], f"{r['rows']:,}", r["factors"], r["rank"], r["windows"], r["epochs"],
          f"{r['first_call_s']:.2f}", f"{r['steady_s']:.2f}", f"{r['train_rows_per_s']:,.0f}"] for r in rows],
    )
    text = f"{table}\n\nloop / vmap time (steady state): **{rows[0]['loop_over_vmap']:.2f}x**\n"
    write_text(out / "vmap_vs_loop.md", text)
    print(text)


if __name__ == "__main__":
    main()
