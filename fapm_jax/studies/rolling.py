"""The rolling study of Algorithm 2: train every window, predict every test year, evaluate.

:func:`run_rolling` composes :mod:`~fapm_jax.data.windows` (the 30 windows as row masks),
:func:`~fapm_jax.core.fit.fit_windows` (all windows — and all sweep settings — in one compiled
program) and :mod:`~fapm_jax.evaluation.metrics` (R²_oos pooled, per year, by size group).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import polars as pl
from jaxtyping import Array, Bool, Float, Int

from ..baselines.base import predict_by_window
from ..core.config import Hyper, TrainConfig
from ..core.engine import TrainState
from ..core.errors import ConfigError
from ..core.fit import TrainResult, fit_windows
from ..core.masked import window_rows
from ..core.model import FAPMParams, average_models, predict
from ..data.levels import month_deviations, row_levels, window_means
from ..data.panel import Panel
from ..data.windows import Window, WindowSpec, rolling_windows, window_masks
from ..evaluation.metrics import default_size_group, r2_summary

#: How :func:`run_rolling` turns a window's settings into one forecast.
COMBINE = ("select", "pooled", "average")


@dataclasses.dataclass(frozen=True, eq=False)
class RollingRun:
    """Everything a rolling run produces.

    Attributes:
        windows: the ``W`` windows, in test-year order.
        result: the raw :class:`~fapm_jax.core.fit.TrainResult` (leading axes ``[S, W]``).
        params: the chosen model of each window (leading axis ``[W]``).
        setting: ``[W]`` index of the chosen sweep setting per window (all 0 without a sweep).
        predictions: one row per test stock-month: ``permno, month, r, r_hat, mktcap``.
        test_rows: ``[N_test]`` the panel row of each prediction.
        r2: :func:`~fapm_jax.evaluation.metrics.r2_summary` of ``predictions``.
        linear_r2: the same table for each window's linear start (OLS on the window's
            training rows), FAPM's own baseline: what the interactions add is the difference.
        size_group: the ``n`` of the top-``n`` / bottom-``n`` rows of ``r2``.
        level: ``[W]`` what each window adds to its model's forecasts: 0 for
            ``TrainConfig(level="model")``, the window's mean training return for
            ``"train-mean"`` (whose ``result`` is then fit to the months' deviations).
        valid_r2: ``[W]`` the validation R² of ``r`` by each window's chosen model, its level
            added (for ``"model"`` the trainer's own ``best_valid_r2``); of an ensemble's
            average forecast for ``combine="average"`` and ``members``.
        diverged: ``[S, W]`` which runs hit a non-finite loss or update.
        seconds: wall time of training (compile included) and of the whole run.
        member_settings: ``[M, W]`` the setting each member of an ensemble chose per window
            (``members``; ``combine="average"``: every setting); ``None`` for one model.
    """

    windows: list[Window]
    result: TrainResult
    params: FAPMParams
    setting: np.ndarray
    predictions: pl.DataFrame
    test_rows: np.ndarray
    r2: pl.DataFrame
    linear_r2: pl.DataFrame
    size_group: int
    level: np.ndarray
    valid_r2: np.ndarray
    diverged: np.ndarray
    seconds: dict[str, float]
    member_settings: np.ndarray | None = None

    def diverged_windows(self) -> list[int]:
        """Test years of windows in which any setting diverged."""
        return [w.test for w, d in zip(self.windows, self.diverged.any(axis=0)) if d]

    def r2_value(self, sample: str = "all") -> float:
        return float(self.r2.filter(pl.col("sample") == sample)["r2_oos"][0])


def predict_test_rows(
    params: FAPMParams, X: Float[Array, "N n"], test_masks: Bool[Array, "W N"]
) -> Float[Array, " N"]:
    """Each row's forecast by the FAPM of the window whose test year holds it (``params`` with a
    leading ``[W]`` axis); rows in no test year get 0. The comparison models' driver
    (:func:`~fapm_jax.baselines.base.predict_by_window`: one compiled ``lax.scan`` over
    windows, memory ``O(N)``)."""

    return predict_by_window(predict, params, X, test_masks)


@eqx.filter_jit
def settings_sse(
    params: FAPMParams,
    X: Float[Array, "N n"],
    r: Float[Array, " N"],
    idx: Int[Array, "W R"],
    wt: Float[Array, "W R"],
    level: Float[Array, " W"] | None = None,
) -> tuple[Float[Array, "S W"], Float[Array, " W"]]:
    """``Σ wt (r − level − r̂)²`` of every setting's model of every window (``params`` with
    leading ``[S, W]`` axes) over that window's gathered rows (``idx``/``wt`` from
    :func:`~fapm_jax.core.masked.window_rows`), and ``Σ wt r²`` per window: the R² of every sweep
    setting in one compiled loop, memory one window's rows. ``level``: what each window adds
    to its forecasts (:attr:`RollingRun.level`; ``None``: nothing)."""
    if level is None:
        level = jnp.zeros(idx.shape[0], r.dtype)

    def one_setting(p_s):
        def one_window(inputs):
            p, i, w, c = inputs
            e = r[i] - c - predict(p, X[i])
            return jnp.sum(w * e * e)

        return jax.lax.map(one_window, (p_s, idx, wt, level))

    ri = r[idx]
    return jax.lax.map(one_setting, params), jnp.sum(wt * ri * ri, axis=1)


def _choose_members(result: TrainResult, members, rule: str) -> tuple[FAPMParams, np.ndarray]:
    """Each member's chosen setting per window by ``rule`` (:meth:`TrainResult.select` among
    the settings whose ``members`` id is the member's): ``(params [M, W], settings [M, W])``,
    the members in the order of their ids (one id per setting: :func:`run_rolling` checks it
    before training)."""
    ids = np.asarray(members)
    picks = [result.select(rule, among=ids == g) for g in np.unique(ids)]
    params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[p for p, _ in picks])
    return params, np.stack([i for _, i in picks])


def member_params(run: RollingRun) -> FAPMParams:
    """The chosen model of every member of an ensemble run in every window, ``[W, M]`` (the
    members in the order of :attr:`RollingRun.member_settings`; ``[W, 1]``, the chosen model,
    for one model), e.g. a start per Gibbs chain (``fj.sample_windows(..., start=...)``)."""
    W = len(run.windows)
    if run.member_settings is None:
        return jax.tree_util.tree_map(lambda a: a[:, None], run.params)
    s = np.asarray(run.member_settings).T  # [W, M]
    return jax.tree_util.tree_map(lambda a: a[s, np.arange(W)[:, None]], run.result.params)


def run_rolling(
    panel: Panel,
    config: TrainConfig = TrainConfig(),
    spec: WindowSpec = WindowSpec(),
    *,
    hyper: Hyper | None = None,
    size_group: int | None = None,
    progress: Callable[[int, int, TrainState], None] | None = None,
    epochs_per_call: int | None = None,
    checkpoint=None,
    method: str = "rows",
    combine: str = "select",
    members=None,
) -> RollingRun:
    """Algorithm 2 on ``panel``: train all windows, choose per window the best epoch (and, with a
    sweep ``hyper``, the best setting) on validation R², predict each test year, evaluate.

    ``size_group`` is the ``n`` of the top/bottom-``n`` R² rows (default:
    :func:`~fapm_jax.evaluation.metrics.default_size_group`). ``checkpoint``: see
    :func:`~fapm_jax.core.fit.fit_windows` (an interrupted run resumes from it); ``method``: its
    trainer (``"rows"``, ``"moments"`` or ``"auto"``).

    ``combine``: ``"select"`` (the paper's rule: each window's forecast is its best setting's on
    validation R²), ``"pooled"`` (each window's forecast is the setting with the best mean
    validation R² over that window and the earlier ones: :meth:`TrainResult.select`; no
    look-ahead) or ``"average"`` — the ensemble: each window's forecast is the mean of every
    setting's forecast, as GKX average their networks; with ``hyper = sweep_grid(config,
    seeds=range(S))`` that is ``S`` fits from independent draws of ``V``. ``params`` and ``setting``
    still name the best setting of each window.

    ``members`` (an id per setting, e.g. each setting's seed): an ensemble of tuned models —
    each member chooses its own setting per window among its settings by ``combine``'s rule
    (``"select"`` or ``"pooled"``), and the forecast is the mean of the members' chosen models
    (``combine="average"`` is the case of one setting per member). The ensemble's
    :attr:`RollingRun.valid_r2` is its average forecast's, not its best member's.

    ``config.level = "train-mean"``: every window is fit to the months' cross-sectional
    deviations ``r − r̄_t`` (:mod:`~fapm_jax.data.levels`), and its forecasts — of the test year,
    of the linear start, and in :attr:`RollingRun.valid_r2` of the validation years — add its
    mean training return; the settings and epochs are still chosen on the deviations'
    validation R².
    """
    if combine not in COMBINE:
        raise ConfigError(f"run_rolling: combine must be one of {COMBINE}, got {combine!r}")
    if members is not None:
        if combine == "average":
            raise ConfigError("run_rolling: members choose a setting each; combine='average' averages all")
        S = 1 if hyper is None else int(jnp.shape(hyper.seed)[0])
        if np.shape(members) != (S,):  # before any training
            shape = np.shape(members)
            raise ConfigError(f"run_rolling: members must give one id per setting ({S}), got shape {shape}")
    t0 = time.perf_counter()
    windows = rolling_windows(spec)
    train_m, valid_m, test_m = window_masks(panel.year, windows)
    X = jnp.asarray(panel.X)
    demean = config.level == "train-mean"
    level = window_means(panel.r, train_m) if demean else np.zeros(len(windows))
    result = fit_windows(
        X,
        month_deviations(panel.r, panel.month) if demean else panel.r,
        train_m,
        valid_m,
        config,
        hyper=hyper,
        progress=progress,
        epochs_per_call=epochs_per_call,
        checkpoint=checkpoint,
        method=method,
    )
    rule = "pooled" if combine == "pooled" else "window"
    chosen, setting = result.select(rule)
    ensemble, member_settings = None, None
    if members is not None:
        ensemble, member_settings = _choose_members(result, members, rule)
    elif combine == "average":
        ensemble = result.params
        member_settings = np.repeat(np.arange(result.best_valid_r2.shape[0])[:, None], len(windows), 1)
    jax.block_until_ready(chosen)
    t_train = time.perf_counter() - t0
    # an ensemble forecasts (and is scored on validation) as the one FAPM that averages it
    model = chosen if ensemble is None else average_models(ensemble)
    r_hat = np.asarray(predict_test_rows(model, X, jnp.asarray(test_m)))
    row_level = row_levels(level, test_m)
    r_hat = r_hat + row_level
    rows = test_m.any(axis=0)
    predictions = pl.DataFrame(
        {
            "permno": panel.permno[rows],
            "month": panel.month[rows],
            "r": panel.r[rows],
            "r_hat": r_hat[rows].astype(np.float32),
            "mktcap": panel.mktcap[rows],
        }
    )
    if size_group is None:
        size_group = default_size_group(predictions)
    r2 = r2_summary(predictions, size_group)
    # the chosen setting's OLS start of each window (fit_windows solved it from block moments)
    lin = jax.tree_util.tree_map(lambda a: a[setting, np.arange(len(windows))], result.linear_params)
    lin_hat = (np.asarray(predict_test_rows(lin, X, jnp.asarray(test_m))) + row_level)[rows]
    W = len(windows)
    if demean or ensemble is not None:  # the forecast's validation R² of r, its level added
        idx, wt = window_rows(np.asarray(valid_m))
        one = jax.tree_util.tree_map(lambda a: a[None], model)
        r32 = jnp.asarray(panel.r)
        dt = r32.dtype
        sse, tot = settings_sse(one, X, r32, jnp.asarray(idx), jnp.asarray(wt, dt), jnp.asarray(level, dt))
        valid_r2 = 1.0 - np.asarray(sse, np.float64)[0] / np.asarray(tot, np.float64)
    else:
        valid_r2 = np.asarray(result.best_valid_r2, np.float64)[setting, np.arange(W)]
    linear_r2 = r2_summary(
        predictions.with_columns(pl.Series("r_hat", lin_hat.astype(np.float32))), size_group
    )
    return RollingRun(
        windows=windows,
        result=result,
        params=chosen,
        setting=setting,
        predictions=predictions,
        test_rows=np.flatnonzero(rows),
        r2=r2,
        linear_r2=linear_r2,
        size_group=size_group,
        level=level,
        valid_r2=valid_r2,
        diverged=np.asarray(result.diverged),
        seconds={"train": t_train, "total": time.perf_counter() - t0},
        member_settings=member_settings,
    )


def params_arrays(run: RollingRun, feature_names) -> dict[str, np.ndarray]:
    """The chosen parameters of every window, with their labels, for ``np.savez``."""
    res = run.result
    W = len(run.windows)
    pick = (run.setting, np.arange(W))
    return {
        "w0": np.asarray(run.params.w0),
        "w": np.asarray(run.params.w),
        "V": np.asarray(run.params.V),
        "feature_names": np.asarray(feature_names),
        "test_year": np.array([w.test for w in run.windows]),
        "setting": run.setting,
        "best_epoch": np.asarray(res.best_epoch)[pick],
        "best_valid_r2": np.asarray(res.best_valid_r2)[pick],
        "linear_valid_r2": np.asarray(res.linear_valid_r2)[pick],
    }


def training_table(run: RollingRun) -> pl.DataFrame:
    """Per window: years, chosen setting, best epoch, validation R² of the linear start and of
    the chosen model (of the fitted target: with ``level="train-mean"`` the deviations), the
    chosen model's validation R² of ``r`` (``valid_r2``, its level added), last in-sample R²,
    and divergence."""
    res = run.result
    W = len(run.windows)
    pick = (run.setting, np.arange(W))
    train_r2 = np.asarray(res.train_r2)[pick]  # [W, E]
    best_epoch = np.asarray(res.best_epoch)[pick]
    train_at_best = np.where(best_epoch > 0, train_r2[np.arange(W), np.maximum(best_epoch - 1, 0)], np.nan)
    return pl.DataFrame(
        {
            "test_year": [w.test for w in run.windows],
            "train": [f"{w.train[0]}-{w.train[1]}" for w in run.windows],
            "valid": [f"{w.valid[0]}-{w.valid[1]}" for w in run.windows],
            "setting": run.setting.astype(np.int64),
            "best_epoch": best_epoch.astype(np.int64),
            "linear_valid_r2": np.asarray(res.linear_valid_r2)[pick].astype(np.float64),
            "best_valid_r2": np.asarray(res.best_valid_r2)[pick].astype(np.float64),
            "valid_r2": np.asarray(run.valid_r2, np.float64),
            "train_r2_at_best": train_at_best.astype(np.float64),
            "diverged": np.asarray(res.diverged)[pick],
        }
    )
