"""Compute cells of the GKX simulation study (Table A.1) into a folder that ``fapm simulate``
picks up: run this on an accelerator, copy the folder to ``<out>/.study`` and ``fapm simulate``
with the same options reuses every cell and writes the report.

    python experiments/simstudy_cells.py --reps 100 --models OLS,PCR,NN3 --out runs/simulate/.study

Only numpy, jax, equinox and optax are needed here: on a machine without polars (a bare
accelerator image) a stand-in module is installed, since no table is built in this script.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import types

if importlib.util.find_spec("polars") is None:  # tables are built later, where polars exists
    sys.modules["polars"] = types.ModuleType("polars")
    sys.modules["polars"].__getattr__ = lambda name: object  # type: ignore[attr-defined]

import jax  # noqa: E402

from fapm_jax.core.config import TrainConfig  # noqa: E402
from fapm_jax.studies.simulation_study import DESIGNS, SIM_MODELS, design_data, sim_models, study_cell  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--designs", default="a50,a100,b50,b100")
    p.add_argument("--models", default=",".join(SIM_MODELS))
    p.add_argument("--no-fapm", action="store_true")
    p.add_argument("--members", type=int, default=1, help="> 1: also the FAPM-MAP-ens row of that many fits")
    p.add_argument("--profile", default="full")
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--then", default="", help="models of a second pass over all designs (e.g. the networks)")
    p.add_argument("--workers", type=int, default=1, help="processes drawing the data")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    designs = [(d[0], int(d[1:])) for d in a.designs.split(",")]
    assert all(d in DESIGNS for d in designs), designs
    first = sim_models(
        [m for m in a.models.split(",") if m],
        profile=a.profile,
        fapm=not a.no_fapm,
        fapm_config=TrainConfig(),
        map_members=a.members,
    )
    then = sim_models([m for m in a.then.split(",") if m], profile=a.profile, fapm=False)
    seeds = list(range(a.first_seed, a.first_seed + a.reps))
    print(f"devices: {jax.devices()}", flush=True)
    data = {}
    for dm, pc in designs:
        t0 = time.perf_counter()
        data[dm, pc] = design_data(dm, pc, seeds, workers=a.workers)
        print(f"{dm}{pc}: data {time.perf_counter() - t0:.1f} s", flush=True)
    for models in (first, then):
        for dm, pc in designs:
            for model in models:
                t0 = time.perf_counter()
                r2_is, r2_oos, reused = study_cell(
                    model, data[dm, pc], dm, pc, seeds, chunk=a.chunk, checkpoint_dir=a.out
                )
                print(
                    f"{dm}{pc} {model.name:<8} {time.perf_counter() - t0:7.1f} s  is "
                    f"{100 * r2_is.mean():6.2f}"
                    f"  oos {100 * r2_oos.mean():6.2f}{'  reused' if reused else ''}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
