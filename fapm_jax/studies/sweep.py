"""Hyperparameter sweeps as a user tool: rank, learning rate, init scale, epochs, seed and the
FAPM-m subset size ``m`` in one vmapped, jit-compiled program, chosen per window on validation.

The paper tunes nothing in public; a researcher tunes on the validation years, as GKX do
for every baseline. :func:`sweep` trains the Cartesian grid of settings on all windows at once
(:func:`~fapm_jax.core.config.sweep_grid`: ranks padded to the largest and masked, epoch budgets as
per-setting stopping points, ``m`` as per-window factor masks from each window's own training
rows, :func:`~fapm_jax.studies.fapm_m.subset_masks`), lets each window keep the setting with the best
validation R² (:func:`~fapm_jax.studies.rolling.run_rolling`), and reports every setting's R²_oos
beside that of the per-window choice and which settings were chosen.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

from ..core.config import TrainConfig, sweep_grid
from ..core.errors import ConfigError
from ..core.masked import window_rows
from ..data.panel import Panel
from ..data.windows import WindowSpec, rolling_windows, window_masks
from .fapm_m import RANKINGS, subset_masks
from .rolling import RollingRun, run_rolling, settings_sse


@dataclasses.dataclass(frozen=True, eq=False)
class Sweep:
    """The outcome of :func:`sweep`.

    ``points``: one dict per setting (``rank, learning_rate, init_scale, seed, epochs`` and
    ``m`` when swept; ``m=None`` is all factors); ``r2_oos`` ``[S]``: each setting used in every
    window, pooled over all test rows; ``valid_r2`` ``[S, W]``: its best validation R²;
    ``run``: the per-window choice (``run.setting`` ``[W]`` indexes ``points``; its
    ``r2`` table is the tuned model's R²_oos); ``seconds``: wall time in all.
    """

    points: list[dict]
    r2_oos: np.ndarray
    valid_r2: np.ndarray
    run: RollingRun
    seconds: float

    def table(self) -> pl.DataFrame:
        """One row per setting: its values, ``r2_oos``, mean validation R², windows chosen in."""
        counts = collections.Counter(self.run.setting.tolist())
        return pl.DataFrame(
            [
                {
                    **{k: (-1 if v is None else v) for k, v in p.items()},
                    "r2_oos": float(self.r2_oos[s]),
                    "mean_valid_r2": float(np.nanmean(self.valid_r2[s])),
                    "chosen_in": counts.get(s, 0),
                }
                for s, p in enumerate(self.points)
            ]
        )

    def choices(self) -> pl.DataFrame:
        """One row per window: test year, chosen setting's index and values, its validation R²."""
        return pl.DataFrame(
            [
                {
                    "test_year": w.test,
                    "setting": int(s),
                    **{k: (-1 if v is None else v) for k, v in self.points[int(s)].items()},
                    "valid_r2": float(self.valid_r2[int(s), i]),
                }
                for i, (w, s) in enumerate(zip(self.run.windows, self.run.setting))
            ]
        )


def sweep(
    panel: Panel,
    config: TrainConfig = TrainConfig(),
    spec: WindowSpec = WindowSpec(),
    *,
    ranks: Sequence[int] | None = None,
    learning_rates: Sequence[float] | None = None,
    init_scales: Sequence[float] | None = None,
    epochs: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    penalties: Sequence[dict] | None = None,
    ms: Sequence[int | None] | None = None,
    ranking: str = "window",
    always: Sequence[str] = (),
    size_group: int | None = None,
    method: str = "auto",
) -> Sweep:
    """Train every combination of the given axes on every window in one compiled program and
    choose per window on validation R².

    Axes left ``None`` take ``config``'s value. ``ms``: FAPM-m subset sizes (``None`` in the
    list = all factors), chosen inside each window from its training rows (``ranking="full"``:
    the paper's full-sample ranking, which looks ahead); ``always``: factors kept in every
    subset (e.g. SIC2 dummies). ``penalties``: penalised FAPM's weight settings
    (:func:`~fapm_jax.core.config.sweep_grid`, e.g. ``[{}, {"group_v": 1e-4, "l1_w": 1e-5}]``). Cost:
    one program of ``S`` settings × ``W`` windows, ``S`` the
    product of the axes' lengths, run for ``max(epochs)`` epochs. ``method``: the trainer
    (default: moments wherever they apply, :func:`~fapm_jax.core.fit.fit_windows`).
    """
    if ranking not in RANKINGS:
        raise ConfigError(f"sweep: ranking must be one of {RANKINGS}, got {ranking!r}")
    t0 = time.perf_counter()
    hyper, points = sweep_grid(
        config,
        ranks=ranks,
        learning_rates=learning_rates,
        init_scales=init_scales,
        seeds=seeds,
        epochs=epochs,
        penalties=penalties,
    )
    cfg = dataclasses.replace(config, epochs=max(p["epochs"] for p in points))
    train_m, _, test_m = window_masks(panel.year, rolling_windows(spec))
    if ms is not None:
        ms = tuple(ms)
        _, features = subset_masks(panel, train_m, ms, ranking=ranking, always=always)
        M, S0 = len(ms), len(points)
        hyper = jax.tree_util.tree_map(lambda a: jnp.repeat(a, M, axis=0), hyper)
        hyper = hyper._replace(features=jnp.tile(features, (S0, 1, 1)))
        points = [{**p, "m": m} for p in points for m in ms]
    run = run_rolling(panel, cfg, spec, hyper=hyper, size_group=size_group, method=method)
    X = jnp.asarray(panel.X)
    idx, wt = window_rows(test_m)
    sse, tot = settings_sse(
        run.result.params, X, jnp.asarray(panel.r, X.dtype), jnp.asarray(idx), jnp.asarray(wt)
    )
    r2_oos = 1.0 - np.asarray(sse, np.float64).sum(axis=1) / np.asarray(tot, np.float64).sum()
    return Sweep(
        points=points,
        r2_oos=r2_oos,
        valid_r2=np.asarray(run.result.best_valid_r2, np.float64),
        run=run,
        seconds=time.perf_counter() - t0,
    )
