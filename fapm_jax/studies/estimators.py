"""FAPM's estimators behind one switch (``TrainConfig.estimator``, ``fapm run --estimator``).

- ``"paper"``: Algorithm 2 as the paper trains it — Adam from the OLS start, ``V`` drawn small,
  the best epoch on validation R² (the package's defaults, :class:`~fapm_jax.core.config.TrainConfig`).
- ``"map"``: penalised FAPM tuned per window (the feature-sparse FAPM with self-interactions
  of :class:`~fapm_jax.baselines.fapm.TunedFAPM`): lasso on ``w`` and ``d``, group lasso on each
  ``v_i``, 1,000 full-batch Adam steps, the penalty grid trained in one program and each window
  keeping the setting with the best validation R² (the unpenalised fit and the OLS start stay
  candidates). The grid is the simulation's without its settings that drop ``d``
  (:data:`ROLLING_PENALTIES`), rescaled by ``√(12,000 / N_train)`` for the
  panel's mean training rows ``N_train`` (a weight's effect grows like ``λ·√N_train``). On
  the moment trainer every setting also gets its penalised optimum, solved to convergence
  (:data:`SOLVE_STEPS` proximal-gradient iterations at most, :mod:`~fapm_jax.core.solve`), as
  one more candidate beside its early-stopped Adam path.
- ``"ensemble"``: the paper's recipe from :data:`ENSEMBLE_SEEDS` independent draws of ``V``, each
  window's forecast the mean of their forecasts (GKX average ten networks).

``make_estimator(..., members=M)`` makes any of them an ensemble of ``M`` members, each from
its own seed of ``V`` and each choosing its own setting per window on validation; the forecast
is the members' mean (``"map"`` with ``M > 1`` is the "FAPM-MAP-ens" row; ``"paper"`` with
``M`` is ``"ensemble"`` with ``M`` seeds). The members are one more sweep axis, trained in the
same compiled program as the settings.

:func:`best_per_window` chooses among the runs of several estimators per window on validation
R² (``fapm reproduce``'s "FAPM-best" row). :func:`run_gibbs` is Bayesian FAPM over the windows
(``fapm reproduce``'s "FAPM-Bayes" row: posterior-mean forecasts, and the credible intervals
of the interactions).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..baselines.fapm import TunedFAPM, tuned_grid
from ..core.config import ESTIMATORS, LEVELS, Hyper, TrainConfig, sweep_grid
from ..core.errors import ConfigError
from ..core.gibbs import GibbsConfig, sample_windows
from ..core.gibbs_summaries import Interactions, posterior_interactions, posterior_predict
from ..core.model import FAPMParams
from ..core.moments import choose_method
from ..data.levels import month_deviations, window_means
from ..data.panel import Panel
from ..data.windows import WindowSpec, rolling_windows, window_masks
from ..evaluation.posterior import AveragedPosterior, averaged_posterior
from .rolling import RollingRun, member_params, run_rolling

#: Fits averaged by the ``"ensemble"`` estimator.
ENSEMBLE_SEEDS = 10
#: Training rows of the GKX simulation, where :class:`TunedFAPM`'s grid was sized.
SIM_TRAIN_ROWS = 12_000
#: The most proximal-gradient iterations of ``"map"``'s converged candidate (moment trainer).
SOLVE_STEPS = 500
#: The ``"map"`` grid of the rolling windows: :class:`TunedFAPM`'s without the 9 settings that
#: price out the self-interactions (34 settings). Measured on the embedded default (2026-12-07,
#: 2-core CPU, docs/training.md): with them, ``fapm run --estimator map`` scores 2.515% against
#: 2.554% (3 of 30 windows choose one), and ``--members 4`` (172 settings × 30 windows in one
#: program) was killed for memory at 24 GiB, where the 136 of this grid run.
ROLLING_PENALTIES = tuned_grid(no_self=False)
#: Table names of the estimators (every one starts with "FAPM").
NAMES = {"paper": "FAPM", "map": "FAPM-MAP", "ensemble": "FAPM-ens", "bayes": "FAPM-Bayes"}
#: The table name of a ``"map"`` ensemble (``members > 1``).
MAP_ENSEMBLE = "FAPM-MAP-ens"


@dataclasses.dataclass(frozen=True, eq=False)
class Estimator:
    """What :func:`run_estimator` trains: ``config`` (static training options), the settings
    ``hyper`` (``None``: ``config``'s one) with their labels ``points``, ``combine``, and the
    ensemble member of each setting (``members``, its seed; ``None``: one model)."""

    kind: str
    name: str
    config: TrainConfig
    hyper: Hyper | None
    points: list[dict]
    combine: str
    members: np.ndarray | None = None


def mean_train_rows(panel: Panel, spec: WindowSpec) -> float:
    """The mean number of training rows over the windows of ``spec``."""
    train_m, _, _ = window_masks(panel.year, rolling_windows(spec))
    return float(np.asarray(train_m).sum(axis=1).mean())


def make_estimator(
    config: TrainConfig,
    panel: Panel,
    spec: WindowSpec = WindowSpec(),
    *,
    epochs: int | None = None,
    select: str = "window",
    members: int | None = None,
) -> Estimator:
    """The estimator ``config.estimator`` for ``panel``'s windows (``config`` gives rank, seed,
    optimizer; ``"map"`` replaces the step schedule with :class:`TunedFAPM`'s, ``epochs``
    steps; ``None``: its 1,000). ``select``: how a ``"map"`` run chooses its setting per window
    (``"window"``: on that window's validation R²; ``"pooled"``: on the mean over that window
    and the earlier ones, :meth:`~fapm_jax.core.fit.TrainResult.select`). ``members``: the
    ensemble's size, seeds ``config.seed, config.seed + 1, …`` (``None``: 1, and
    :data:`ENSEMBLE_SEEDS` for ``"ensemble"``)."""
    if select not in ("window", "pooled"):
        raise ConfigError(f"select {select!r}: must be 'window' or 'pooled'")
    kind = config.estimator
    if kind not in ESTIMATORS:
        raise ConfigError(f"estimator {kind!r}: must be one of {', '.join(ESTIMATORS)}")
    if members is not None and not (isinstance(members, int) and members >= 1):
        raise ConfigError(f"members {members!r}: must be a positive integer")
    M = members or (ENSEMBLE_SEEDS if kind == "ensemble" else 1)
    seeds = [config.seed + s for s in range(M)]
    if kind in ("paper", "ensemble"):
        if M == 1:
            return Estimator(kind, NAMES["paper"], config, None, [{}], "select")
        hyper, points = sweep_grid(config, seeds=seeds)
        return Estimator(kind, NAMES["ensemble"], config, hyper, points, "average")
    tuned = TunedFAPM()
    t = tuned.config
    cfg = dataclasses.replace(
        config,
        epochs=epochs or t.epochs,
        learning_rate=t.learning_rate,
        self_interactions=True,
        linear_lr_scale=t.linear_lr_scale,
        init_scale=t.init_scale,
        batch_size=None,
        loss="r2",
    )
    scale = math.sqrt(SIM_TRAIN_ROWS / max(mean_train_rows(panel, spec), 1.0))
    pens = [{k: v * scale for k, v in dict(p).items()} for p in ROLLING_PENALTIES]
    hyper, points = sweep_grid(cfg, penalties=pens, seeds=seeds, solve_steps=SOLVE_STEPS)
    combine = "pooled" if select == "pooled" else "select"
    if M == 1:
        return Estimator(kind, NAMES[kind], cfg, hyper, points, combine)
    ids = np.array([p["seed"] for p in points])
    return Estimator(kind, MAP_ENSEMBLE, cfg, hyper, points, combine, members=ids)


def run_estimator(panel: Panel, est: Estimator, spec: WindowSpec = WindowSpec(), **kw) -> RollingRun:
    """:func:`~fapm_jax.studies.rolling.run_rolling` with the estimator's settings (``kw``: its
    other options, e.g. ``size_group``, ``progress``, ``checkpoint``). The ``"map"`` grid runs on
    the moment trainer where it applies (``method="auto"``), with its converged candidates; on
    the row trainer (a factor set whose moments do not fit) without them."""
    hyper = est.hyper
    if est.kind == "map":
        kw.setdefault("method", "auto")
        train_m, valid_m, _ = window_masks(panel.year, rolling_windows(spec))
        method = kw["method"]
        if method == "auto":
            method = choose_method(est.config, len(panel.feature_names), train_m, valid_m)
        if method != "moments":
            hyper = hyper._replace(solve_steps=None)
    return run_rolling(panel, est.config, spec, hyper=hyper, combine=est.combine, members=est.members, **kw)


def valid_r2(run: RollingRun) -> np.ndarray:
    """``[W]`` the validation R² of ``r`` by each window's chosen model (a ``"select"`` run),
    its level added (:attr:`~fapm_jax.studies.rolling.RollingRun.valid_r2`)."""
    return run.valid_r2


def best_per_window(runs: Sequence[RollingRun], panel: Panel) -> tuple[np.ndarray, np.ndarray]:
    """Per window, the run whose chosen model has the best validation R² (runs on the same
    windows; an ensemble's is its average forecast's): the test forecasts ``[N_test]`` (in the
    runs' ``test_rows`` order) and the index of the chosen run per window ``[W]``. Nothing looks
    ahead: the choice uses each window's validation years only."""
    if not runs:
        raise ConfigError("best_per_window: no runs")
    rows = runs[0].test_rows
    if any(not np.array_equal(r.test_rows, rows) for r in runs):
        raise ConfigError("best_per_window: the runs forecast different test rows")
    choice = np.argmax(np.stack([valid_r2(r) for r in runs]), axis=0)
    test_year = {w.test: i for i, w in enumerate(runs[0].windows)}
    win = np.array([test_year[int(y)] for y in np.asarray(panel.year)[rows]])
    r_hat = np.stack([r.predictions["r_hat"].to_numpy() for r in runs])
    return r_hat[choice[win], np.arange(rows.size)], choice


#: Where :func:`run_gibbs` starts each window's chains.
STARTS = ("prior", "map")

#: The Gibbs sampler of ``fapm reproduce``'s FAPM-Bayes row: rank 4 with self-interactions, 100
#: kept sweeps after 100 of burn-in, one hyperprior set per factor group.
BAYES_CONFIG = GibbsConfig(rank=4, n_sweeps=200, burn_in=100, self_interactions=True)


@dataclasses.dataclass(frozen=True, eq=False)
class GibbsRun:
    """Bayesian FAPM over the rolling windows (:mod:`~fapm_jax.core.gibbs`).

    ``r_hat`` / ``sd``: the posterior-mean forecast and its posterior sd of every test row (the
    order of :attr:`RollingRun.test_rows`); ``interactions``: posterior means and 95% credible
    bounds of ``B`` and ``w`` per window (``[W, n, n]``, ``[W, n]``); ``averaged``: the posterior
    of the window means that Tables 5–6 report (:mod:`~fapm_jax.evaluation.posterior`);
    ``seconds``: sampling and forecasting time."""

    windows: list
    test_rows: np.ndarray
    r_hat: np.ndarray
    sd: np.ndarray
    interactions: Interactions
    averaged: AveragedPosterior
    seconds: float


def factor_groups(panel: Panel) -> np.ndarray:
    """A hyperprior group per factor: 0 characteristics, 1 macro predictors, 2 SIC2 dummies."""
    macro = set(panel.macro_names)
    return np.array(
        [1 if f in macro else 2 if f.startswith("sic2_") else 0 for f in panel.feature_names], np.int32
    )


#: The characteristics whose month slopes ``run_gibbs(random_slopes=True)`` leaves free: the
#: loadings of the size, value and momentum factors (Fama and French 1993, Carhart 1997).
FACTOR_LOADINGS = ("mvel1", "bm", "mom12m")


def month_slopes(panel: Panel, factors: Sequence[str] | None = None) -> dict:
    """The random-slope design of :func:`run_gibbs`: each row's month and the factors whose
    slopes move from month to month (:mod:`~fapm_jax.core.random_slopes`): ``factors`` by name,
    or ``None`` for those of :data:`FACTOR_LOADINGS` the panel has."""
    names = list(panel.feature_names)
    if factors is None:
        factors = [f for f in FACTOR_LOADINGS if f in names]
    missing = [f for f in factors if f not in names]
    if missing:
        raise ConfigError(f"run_gibbs: random_slopes names {missing} that the panel does not have")
    return {
        "months": np.asarray(panel.month),
        "slopes": np.array([names.index(f) for f in factors], np.int64),
    }


def run_gibbs(
    panel: Panel,
    spec: WindowSpec = WindowSpec(),
    config: GibbsConfig = BAYES_CONFIG,
    *,
    random_slopes: bool | Sequence[str] = False,
    month_intercept: bool = True,
    level: str = "model",
    use_validation: bool = True,
    start: str | FAPMParams = "prior",
) -> GibbsRun:
    """Every window's posterior in one compiled program (windows × chains vmapped), then each
    test row's posterior-mean forecast from its own window's draws. ``random_slopes``: month
    slopes in the likelihood, on :data:`FACTOR_LOADINGS` (``True``) or the named factors, with
    a month intercept unless ``month_intercept=False`` (:func:`month_slopes`; integrated out of
    the FAPM parameters' conditionals unless ``config.collapsed`` is off; see docs/training.md
    for what they do on the embedded default); ``False``: the i.i.d. likelihood of Rendle
    (2012). ``level``: as ``TrainConfig.level`` —
    ``"train-mean"`` samples the posterior of the months' cross-sectional deviations and adds
    each window's mean return over the rows it learns from to its forecasts
    (:mod:`~fapm_jax.data.levels`).
    ``use_validation`` (default): learn from each window's validation years too — the sampler
    chooses nothing on them, so they are data it would otherwise leave unused, and the most
    recent before the test year (measured on the embedded default: R²_oos 1.67% against −4.86%
    from the training years alone, docs/training.md); ``False``: the training years only, as the
    estimators that choose on the validation years.
    ``start``: where each window's chains begin — ``"prior"`` (default): ``V ~ N(0,
    init_scale²)``, the rest 0; ``"map"``: chain ``c`` at member ``c``'s fit of a FAPM-MAP
    ensemble of ``config.n_chains`` members (``--estimator map --members C`` at the sampler's
    rank, fitted first; its time is in ``seconds``; one chain: the FAPM-MAP fit); or
    :class:`FAPMParams` of the caller's, ``[W]`` (e.g. ``RollingRun.params``) or one per chain,
    ``[W, config.n_chains]`` (e.g. an ensemble's members,
    :func:`~fapm_jax.studies.rolling.member_params`)."""
    if level not in LEVELS:
        raise ConfigError(f"run_gibbs: level {level!r}: must be one of {', '.join(LEVELS)}")
    if isinstance(start, str) and start not in STARTS:
        raise ConfigError(f"run_gibbs: start {start!r}: must be one of {', '.join(STARTS)} or FAPMParams")
    if start == "map" and config.rank < 1:
        raise ConfigError("run_gibbs: start 'map' needs rank >= 1 (FAPM-MAP has no rank 0)")
    import time

    t0 = time.perf_counter()
    windows = rolling_windows(spec)
    train_m, valid_m, test_m = window_masks(panel.year, windows)
    fit_m = np.asarray(train_m, bool) | (np.asarray(valid_m, bool) & use_validation)
    X = jnp.asarray(panel.X)
    g = factor_groups(panel)
    g = np.unique(g, return_inverse=True)[1].astype(np.int32)  # dense group ids
    slopes = {}
    if random_slopes is not False:
        names = None if random_slopes is True else list(random_slopes)
        slopes = {**month_slopes(panel, names), "month_intercept": month_intercept}
    demean = level == "train-mean"
    r = month_deviations(panel.r, panel.month) if demean else panel.r
    if isinstance(start, str) and start == "map":  # one FAPM-MAP member per chain
        train = TrainConfig(estimator="map", rank=config.rank, level=level)
        est = make_estimator(train, panel, spec, members=config.n_chains)
        start = member_params(run_estimator(panel, est, spec))  # [W, C]; d dropped if unsampled
        start = start if config.self_interactions else dataclasses.replace(start, d=None)
    if isinstance(start, str):  # "prior"
        start = None
    draws = sample_windows(X, jnp.asarray(r), fit_m, config, groups=g, start=start, **slopes)
    mean, sd = posterior_predict(draws, X)  # [W, N]
    rows = np.asarray(test_m).any(axis=0)
    win = np.asarray(test_m).argmax(axis=0)[rows]
    idx = np.flatnonzero(rows)
    mu = window_means(panel.r, fit_m) if demean else np.zeros(len(windows))
    mean, sd = np.asarray(mean) + mu[:, None].astype(np.float32), np.asarray(sd)
    inter = jax.tree_util.tree_map(np.asarray, posterior_interactions(draws))
    return GibbsRun(
        windows=windows,
        test_rows=idx,
        r_hat=mean[win, idx],
        sd=sd[win, idx],
        interactions=inter,
        averaged=averaged_posterior(draws),
        seconds=time.perf_counter() - t0,
    )
