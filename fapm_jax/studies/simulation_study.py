"""The GKX (2020) Monte Carlo study (Internet Appendix A, Table A.1), with FAPM rows.

For each design (model (a) or (b), ``Pc = 50`` or ``100``) and each repetition, a panel is
drawn by :func:`~fapm_jax.data.gkx_design.simulate_gkx` and preprocessed as the authors do
(:func:`~fapm_jax.data.gkx_design.preprocess_gkx_sim`); every model is fitted on the 60 training
months, tuned on the 60 validation months and scored on the 60 test months. R² is against the
training mean (the returns are demeaned by it, so ``R² = 1 − Σ(y − ŷ)² / Σ y²`` over a block).
Each model's family batches the repetitions, in chunks
(:meth:`~fapm_jax.baselines.AbstractModel.fit_predict_datasets`): JAX models are vmapped over
them, trees loop.

The GKX models see the covariates ``z = [c, c·x]`` (``P = 2·Pc``), as in the paper. FAPM sees
its own factors — the ``Pc`` characteristics and the macro series ``x`` (``Pc + 1`` columns,
each divided by its training standard deviation) — and learns ``c·x`` as a pairwise
interaction; "FAPM+SI" adds the ``x_i²`` terms (self-interactions) that model (b)'s ``c1²``
needs. The oracle is :func:`~fapm_jax.data.gkx_design.oracle_r2`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
import polars as pl

from ..baselines.base import AbstractJaxModel, AbstractModel, Fit, window_keys
from ..baselines.fapm import FAPM, TunedFAPM
from ..core.checkpoint import fingerprint
from ..core.errors import StudyError
from ..core.io import read_keyed, safe_name, write_keyed
from ..data.gkx_design import GKXSimConfig, oracle_r2, preprocess_gkx_sim, simulate_gkx

#: Table A.1's methods, in its order.
SIM_MODELS = (
    "OLS",
    "OLS+H",
    "PCR",
    "PLS",
    "Lasso",
    "Lasso+H",
    "Ridge",
    "Ridge+H",
    "ENet",
    "ENet+H",
    "GLM",
    "GLM+H",
    "RF",
    "GBRT",
    "GBRT+H",
    "NN1",
    "NN2",
    "NN3",
    "NN4",
    "NN5",
)
#: (model, Pc) of Table A.1's four column pairs.
DESIGNS = (("a", 50), ("a", 100), ("b", 50), ("b", 100))
#: The authors' Huber threshold in the simulation.
SIM_HUBER_XI = 0.2
#: Network mini-batch in the simulation. GKX's empirical 10,000 (Table A.5) would be about one
#: Adam step per epoch on the 12,000 training rows here, and early stopping (patience 5) would
#: end training after a few dozen steps (NN1, model (b), Pc = 50, 3 repetitions: R² 1.1% in
#: sample, 0.3% out of sample, against 7.8% / 2.5% with 1,000 and GKX's 5.6% / 2.8%).
SIM_NN_BATCH = 1000
#: Early-stopping patience of the networks in the simulation (GKX's empirical value is 5).
SIM_NN_PATIENCE = 20
REFERENCE = Path(__file__).parents[1] / "data" / "gkx2020_simulation_table_a1.csv"


@dataclasses.dataclass(frozen=True)
class DesignData:
    """``R`` repetitions of one design, rows month-major (``t·N + i``).

    ``z`` [R, T·N, 2·Pc] the GKX covariates; ``f`` [R, T·N, Pc+1] FAPM's factors; ``y``
    [R, T·N] returns demeaned by their training mean; ``train``/``valid``/``test`` [T·N] 0/1
    block masks; ``oracle`` [R, 2] the oracle's (in-sample, out-of-sample) R².
    """

    z: np.ndarray
    f: np.ndarray
    y: np.ndarray
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    oracle: np.ndarray


class OnSimCovariates(AbstractJaxModel):
    """A FAPM row fitted on the GKX models' covariates ``z = [c, c·x]`` of each repetition (the
    authors' preprocessing, :func:`~fapm_jax.data.gkx_design.preprocess_gkx_sim`) instead of
    FAPM's own factors ``(c, x)`` — ``fapm simulate --covariates gkx``, the rows named
    ``<row>-gkx``. The model then holds a linear term for every ``c·x`` and interactions among
    them."""

    inner: AbstractJaxModel

    @property
    def name(self) -> str:
        return f"{self.inner.name}-gkx"

    def fit(self, X, y, train, valid, key) -> Fit:
        return self.inner.fit(X, y, train, valid, key)

    def predict(self, params, X):
        return self.inner.predict(params, X)

    def fit_predict_datasets(self, X, y, train, valid, keys) -> np.ndarray:
        return self.inner.fit_predict_datasets(X, y, train, valid, keys)


def _one_rep(model: str, n_chars: int, n_stocks: int, seed: int):
    sim = simulate_gkx(GKXSimConfig(model=model, n_chars=n_chars, n_stocks=n_stocks, seed=int(seed)))
    pre = preprocess_gkx_sim(sim)
    T, N, Pc = sim.c.shape
    f = np.concatenate([sim.c, np.broadcast_to(sim.x[:, None, None], (T, N, 1))], axis=-1)
    f = f / f[sim.train].reshape(-1, Pc + 1).std(axis=0)
    o = oracle_r2(sim)
    return (
        pre.z.reshape(T * N, -1).astype(np.float32),
        f.reshape(T * N, -1).astype(np.float32),
        pre.y.reshape(T * N).astype(np.float32),
        (o.r2_is, o.r2_oos),
        (sim.train, sim.valid, sim.test, T, N),
    )


def design_data(
    model: str, n_chars: int, seeds: Sequence[int], n_stocks: int = 200, workers: int = 1
) -> DesignData:
    """Draw and preprocess the repetitions ``seeds`` of design ``(model, n_chars)``
    (``workers > 1``: in that many processes; same data either way)."""
    args = [(model, n_chars, n_stocks, int(s)) for s in seeds]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as ex:
            reps = list(ex.map(_one_rep, *zip(*args)))
    else:
        reps = [_one_rep(*a) for a in args]
    train, valid, test, T, N = reps[0][4]
    month = np.repeat(np.arange(T), N)
    block = lambda idx: np.isin(month, idx).astype(np.float32)  # noqa: E731
    return DesignData(
        z=np.stack([r[0] for r in reps]),
        f=np.stack([r[1] for r in reps]),
        y=np.stack([r[2] for r in reps]),
        train=block(train),
        valid=block(valid),
        test=block(test),
        oracle=np.asarray([r[3] for r in reps]),
    )


def sim_models(
    names: Sequence[str] = SIM_MODELS,
    *,
    profile: str = "full",
    fapm: bool = True,
    fapm_config=None,
    map_epochs: int | None = None,
    covariates: Sequence[str] = ("factors",),
    map_members: int = 1,
) -> list:
    """The study's models: GKX's (Huber threshold :data:`SIM_HUBER_XI`) and FAPM's rows: FAPM
    and FAPM+SI (the paper's training recipe) and FAPM-MAP (penalised, tuned on validation:
    :class:`~fapm_jax.baselines.fapm.TunedFAPM`, ``map_epochs`` steps; ``None``: its 1,000),
    on FAPM's factors (``"factors"`` in ``covariates``) and on GKX's covariates (``"gkx"``:
    :class:`OnSimCovariates`, rows ``FAPM-gkx`` …). ``map_members > 1`` adds ``FAPM-MAP-ens``,
    the mean of that many FAPM-MAP fits from independent draws of ``V``."""
    from ..core.config import TrainConfig
    from .comparison import make_model

    out = [make_model(n, (), profile=profile, huber_xi=SIM_HUBER_XI) for n in names]
    out = [
        dataclasses.replace(m, batch_size=SIM_NN_BATCH, patience=SIM_NN_PATIENCE) if n.startswith("NN") else m
        for n, m in zip(names, out)
    ]
    bad = sorted(set(covariates) - {"factors", "gkx"})
    if bad or not covariates:
        raise StudyError(f"covariates {list(covariates)!r}: each must be 'factors' or 'gkx'")
    if not (isinstance(map_members, int) and map_members >= 1):
        raise StudyError(f"map_members {map_members!r}: must be a positive integer")
    if fapm:
        cfg = fapm_config or TrainConfig()
        rows = [FAPM(name="FAPM", config=cfg)]
        rows.append(FAPM(name="FAPM+SI", config=dataclasses.replace(cfg, self_interactions=True)))
        tuned = TunedFAPM()
        if map_epochs is not None:
            tuned = dataclasses.replace(tuned, config=dataclasses.replace(tuned.config, epochs=map_epochs))
        rows.append(tuned)
        if map_members > 1:
            rows.append(dataclasses.replace(tuned, name="FAPM-MAP-ens", members=map_members))
        out += rows if "factors" in covariates else []
        out += [OnSimCovariates(m) for m in rows] if "gkx" in covariates else []
    return out


def _r2(y: np.ndarray, y_hat: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per repetition ``1 − Σ m(y − ŷ)² / Σ m y²`` (float64)."""
    y, y_hat = np.asarray(y, np.float64), np.asarray(y_hat, np.float64)
    return 1.0 - ((y - y_hat) ** 2 * mask).sum(-1) / ((y**2) * mask).sum(-1)


def fit_design(
    model: AbstractModel, data: DesignData, seed: int = 0, chunk: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """In- and out-of-sample R² ``[R]`` of ``model`` on every repetition of ``data``
    (``chunk`` repetitions per batch; repetition ``r`` draws from ``fold_in(key(seed), r)``)."""
    X_all = data.f if isinstance(model, FAPM | TunedFAPM) else data.z  # FAPM's own factors (c, x); else z
    R = X_all.shape[0]
    keys = window_keys(jax.random.key(seed), R)
    preds = []
    for lo in range(0, R, chunk):
        sl = slice(lo, min(R, lo + chunk))
        preds.append(model.fit_predict_datasets(X_all[sl], data.y[sl], data.train, data.valid, keys[sl]))
    y_hat = np.concatenate(preds)
    if not np.all(np.isfinite(y_hat)):
        raise StudyError(
            f"model {model.name}: non-finite forecasts in "
            f"{int((~np.isfinite(y_hat)).any(-1).sum())} repetitions"
        )
    return _r2(data.y, y_hat, data.train), _r2(data.y, y_hat, data.test)


def run_study(
    models: Sequence,
    reps: int = 100,
    designs: Sequence[tuple[str, int]] = DESIGNS,
    *,
    first_seed: int = 0,
    chunk: int = 10,
    checkpoint_dir: str | Path | None = None,
    progress: Callable[[str, str, float, bool], None] | None = None,
) -> pl.DataFrame:
    """Every model on ``reps`` repetitions (seeds ``first_seed …``) of every design.

    Returns one row per (method, design, repetition): ``method, model, n_chars, rep, r2_is,
    r2_oos`` (fractions), the oracle included as method ``"Oracle"``. With ``checkpoint_dir``
    each finished (model, design) is saved atomically and reused on rerun (same seeds, same
    model), so a long study resumes.
    """
    if reps < 1:
        raise StudyError(f"reps must be >= 1, got {reps}")
    for d in designs:
        if d[0] not in ("a", "b") or d[1] not in (50, 100):
            raise StudyError(f"design {d!r}: model must be 'a' or 'b' and Pc 50 or 100")
    seeds = list(range(first_seed, first_seed + reps))
    frames = []
    for dm, pc in designs:
        data = design_data(dm, pc, seeds)
        label = f"{dm}_pc{pc}"
        frames.append(_rows("Oracle", dm, pc, seeds, data.oracle[:, 0], data.oracle[:, 1]))
        for model in models:
            t0 = time.perf_counter()
            r2_is, r2_oos, reused = study_cell(
                model, data, dm, pc, seeds, chunk=chunk, checkpoint_dir=checkpoint_dir
            )
            frames.append(_rows(model.name, dm, pc, seeds, r2_is, r2_oos))
            if progress is not None:
                progress(model.name, label, time.perf_counter() - t0, reused)
    return pl.concat(frames)


def study_cell(
    model,
    data: DesignData,
    dm: str,
    pc: int,
    seeds: Sequence[int],
    *,
    chunk: int = 10,
    checkpoint_dir: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """One (model, design) cell: R² ``[R]`` in and out of sample, and whether it was reused.

    With ``checkpoint_dir`` the result is saved atomically under a fingerprint of the model and
    the seeds, and a matching saved result is reused (a cell computed elsewhere — e.g. on an
    accelerator by ``experiments/simstudy_cells.py`` — is picked up by ``fapm simulate``).
    """
    path = fp = None
    if checkpoint_dir is not None:
        fp = fingerprint(repr(model), dm, pc, list(seeds))
        path = Path(checkpoint_dir) / f"{dm}_pc{pc}__{safe_name(model.name)}.npz"
        cached = read_keyed(path, fp, ("r2_is", "r2_oos"))
        if cached is not None:
            return cached[0], cached[1], True
    r2_is, r2_oos = fit_design(model, data, chunk=chunk)
    if path is not None:
        write_keyed(path, fp, {"r2_is": r2_is, "r2_oos": r2_oos})
    return r2_is, r2_oos, False


def _rows(name, dm, pc, seeds, r2_is, r2_oos) -> pl.DataFrame:
    n = len(seeds)
    return pl.DataFrame(
        {
            "method": [name] * n,
            "model": [dm] * n,
            "n_chars": [pc] * n,
            "rep": seeds,
            "r2_is": np.asarray(r2_is, np.float64),
            "r2_oos": np.asarray(r2_oos, np.float64),
        },
        schema={
            "method": pl.String,
            "model": pl.String,
            "n_chars": pl.Int64,
            "rep": pl.Int64,
            "r2_is": pl.Float64,
            "r2_oos": pl.Float64,
        },
    )


def table_a1(results: pl.DataFrame) -> pl.DataFrame:
    """Mean R² in percent per method, in Table A.1's layout: ``method``, ``a_pc50_is``,
    ``a_pc50_oos``, … (only the designs present), plus ``reps``."""
    agg = results.group_by("method", "model", "n_chars").agg(
        (100 * pl.col("r2_is").mean()).alias("is"),
        (100 * pl.col("r2_oos").mean()).alias("oos"),
        pl.len().alias("reps"),
    )
    order = {m: i for i, m in enumerate(results["method"].unique(maintain_order=True).to_list())}
    out = None
    for (dm, pc), sub in sorted(agg.group_by("model", "n_chars"), key=lambda kv: kv[0]):
        col = f"{dm}_pc{pc}"
        part = sub.select(
            "method",
            pl.col("is").alias(f"{col}_is"),
            pl.col("oos").alias(f"{col}_oos"),
            pl.col("reps").alias(f"{col}_reps"),
        )
        out = part if out is None else out.join(part, on="method", how="full", coalesce=True)
    reps_cols = [c for c in out.columns if c.endswith("_reps")]
    out = out.with_columns(pl.max_horizontal(reps_cols).alias("reps")).drop(reps_cols)
    return out.sort(pl.col("method").replace_strict(order, default=len(order)))


def published_table_a1(path: str | Path = REFERENCE) -> pl.DataFrame:
    """GKX (2020) Internet Appendix Table A.1 (percent), as shipped with the package."""
    return pl.read_csv(path)


def compare_table(ours: pl.DataFrame, published: pl.DataFrame | None = None) -> pl.DataFrame:
    """Ours beside the published values: for each design column ``c``, ``c`` (ours),
    ``c_paper`` and ``c_diff`` (ours − paper, percentage points)."""
    published = published_table_a1() if published is None else published
    cols = [c for c in ours.columns if c not in ("method", "reps")]
    pub = published.select("method", *[pl.col(c).alias(f"{c}_paper") for c in cols if c in published.columns])
    out = ours.join(pub, on="method", how="left")
    exprs = [
        (pl.col(c) - pl.col(f"{c}_paper")).alias(f"{c}_diff") for c in cols if f"{c}_paper" in out.columns
    ]
    return out.with_columns(exprs)
