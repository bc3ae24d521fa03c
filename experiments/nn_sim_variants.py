"""Why do the networks fall short of GKX on simulation model (b)? Fit NN variants (one setting
changed at a time) on one design of the GKX Monte Carlo and print mean R² in and out of sample.

    python experiments/nn_sim_variants.py --design b50 --reps 100 --nets NN1,NN3 \
        --variant "patience=20" --variant "batch_size=256" --variant "l1=(1e-5,)"

Each ``--variant`` is ``field=value[;field=value]`` over :class:`fapm_jax.baselines.NN`
(values are Python literals), applied to the study's network
(:func:`~fapm_jax.studies.simulation_study.sim_models`);
the unchanged network is always run first. Runs where polars is missing (a bare accelerator).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import sys
import time
import types

if importlib.util.find_spec("polars") is None:  # no table is built here
    sys.modules["polars"] = types.ModuleType("polars")
    sys.modules["polars"].__getattr__ = lambda name: object  # type: ignore[attr-defined]

from fapm_jax.studies.simulation_study import design_data, fit_design, sim_models  # noqa: E402


def parse_variant(text: str) -> dict:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        field, _, value = part.partition("=")
        out[field.strip()] = ast.literal_eval(value.strip())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--design", default="b50")
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--nets", default="NN1,NN3")
    p.add_argument("--variant", action="append", default=[])
    p.add_argument("--chunk", type=int, default=25)
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args()
    dm, pc = a.design[0], int(a.design[1:])
    t0 = time.perf_counter()
    data = design_data(dm, pc, range(a.reps), workers=a.workers)
    print(f"{a.design}: {a.reps} repetitions drawn in {time.perf_counter() - t0:.1f} s", flush=True)
    for net in sim_models(a.nets.split(","), fapm=False):
        for text in ["", *a.variant]:
            model = dataclasses.replace(net, **parse_variant(text))
            t0 = time.perf_counter()
            r2_is, r2_oos = fit_design(model, data, chunk=a.chunk)
            print(
                f"{a.design} {net.name:<4} {text or 'as in the study':<40} {time.perf_counter() - t0:6.1f} s"
                f"  is {100 * r2_is.mean():6.2f}  oos {100 * r2_oos.mean():6.2f}"
                f"  (se {100 * r2_oos.std(ddof=1) / len(r2_oos) ** 0.5:.2f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
