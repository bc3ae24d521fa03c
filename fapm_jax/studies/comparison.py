"""The Gu–Kelly–Xiu comparison suite on FAPM's windows (section 3.2, Table 1, Figure 4).

Every model is trained on the same rolling windows as FAPM (Algorithm 2), tuned on the same
validation years and forecasts the same test rows; the forecasts land in one frame beside the
realised returns, from which Table 1 (R²_oos all / top / bottom by market value) and the
Diebold–Mariano table (:mod:`~fapm_jax.evaluation.diebold_mariano`) follow. Each model's
family batches its windows (:meth:`~fapm_jax.baselines.AbstractModel.fit_windows`): JAX models
are vmapped over windows, trees loop over them. On a CPU the networks run one window per call
(:func:`window_chunk_for`): vmapped windows run in lockstep, every one padded to the largest
window's mini-batches and every member kept running until the slowest stops early, which made
NN1 on the embedded default about 3× slower than a loop; and a model with large per-window
temporaries (the GLM) is vmapped over as many windows at a time as fit in
:data:`WINDOW_BUDGET`.

A long suite resumes: with ``checkpoint_dir`` every finished model's test forecasts are saved
atomically, keyed by a fingerprint of the data, windows, model and seed, and reused on rerun.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

from ..baselines.base import AbstractModel
from ..core.checkpoint import fingerprint
from ..core.errors import StudyError
from ..core.io import read_keyed, safe_name, write_keyed
from ..data.covariates import covariate_blocks
from ..data.panel import Panel
from ..data.windows import WindowSpec, rolling_windows, window_masks
from ..evaluation.diebold_mariano import dm_table
from ..evaluation.importance import IMPORTANCE_ROWS, r2_drops
from ..evaluation.metrics import default_size_group, r2_table

#: The rows of the paper's Table 1 that come from GKX (2020), in the paper's order.
TABLE1_MODELS = (
    "OLS+H",
    "OLS-3+H",
    "PLS",
    "PCR",
    "ENet+H",
    "GLM+H",
    "RF",
    "GBRT+H",
    "NN1",
    "NN2",
    "NN3",
    "NN4",
    "NN5",
)
PROFILES = ("quick", "full")
COVARIATES = ("factors", "gkx")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Out-of-sample forecasts of every model on the windows' test rows.

    ``frame``: ``permno, month, r, mktcap`` and one forecast column per model (panel row order
    of the test rows); ``seconds``: wall time per model (fit + predict, compile included);
    ``choice``: per model, the chosen grid index of every window; ``size_group``: the ``n`` of
    the top-``n`` / bottom-``n`` rows of Table 1; ``importance``: per model, ``[W, n]`` drops
    in training R² when each factor is zeroed (:func:`~fapm_jax.evaluation.importance.r2_drops`), when
    :func:`run_comparison` was asked for them.
    """

    frame: pl.DataFrame
    models: tuple[str, ...]
    seconds: dict[str, float]
    choice: dict[str, np.ndarray]
    size_group: int
    test_rows: np.ndarray
    importance: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def with_forecast(self, name: str, r_hat: np.ndarray) -> Comparison:
        """Add another model's forecasts of the same test rows (e.g. FAPM's)."""
        r_hat = np.asarray(r_hat, np.float32)
        if r_hat.shape != (self.frame.height,):
            raise StudyError(f"forecast {name!r}: expected {self.frame.height} test rows, got {r_hat.shape}")
        return dataclasses.replace(
            self,
            frame=self.frame.with_columns(pl.Series(name, r_hat)),
            models=tuple(m for m in self.models if m != name) + (name,),
        )

    def table1(self) -> pl.DataFrame:
        """Table 1: ``model``, ``all``, ``top``, ``bottom`` R²_oos (fractions)."""
        rows = []
        for m in self.models:
            t = r2_table(
                self.frame.select("permno", "month", "r", "mktcap", pl.col(m).alias("r_hat")), self.size_group
            )
            v = t["r2_oos"].to_list()
            rows.append({"model": m, "all": v[0], "top": v[1], "bottom": v[2]})
        return pl.DataFrame(
            rows, schema={"model": pl.String, "all": pl.Float64, "top": pl.Float64, "bottom": pl.Float64}
        )

    def dm(self, lag: int | None = None) -> pl.DataFrame:
        """Pairwise Diebold–Mariano statistics (positive: the column model is better)."""
        return dm_table(self.frame, list(self.models), lag)


# ----------------------------------------------------------------------------- the models

_NAME = re.compile(r"^(OLS|OLS-3|PLS|PCR|ENet|Lasso|Ridge|GLM|RF|GBRT|NN[1-5])(\+H)?$")
_HUBER_OK = {"OLS", "OLS-3", "ENet", "Lasso", "Ridge", "GLM", "GBRT"}


def make_model(
    name: str,
    feature_names: Sequence[str],
    *,
    profile: str = "full",
    ols3: Sequence[str] | None = None,
    huber_xi: float | None = None,
) -> AbstractModel:
    """The comparison model called ``name`` (GKX's names: ``OLS+H``, ``OLS-3+H``, ``PLS``,
    ``PCR``, ``ENet+H``, ``Lasso``, ``Ridge``, ``GLM+H``, ``RF``, ``GBRT+H``, ``NN1``–``NN5``).

    ``profile="full"`` is GKX's grid (Internet Appendix Table A.5); ``"quick"`` trims the costly
    grids (network ensemble and grid, forest size, boosting rounds) so the suite runs on a laptop:
    see :data:`QUICK`. ``ols3``: the names of OLS-3's size / value / momentum columns (default
    ``mvel1, bm, mom12m``). ``huber_xi``: a fixed Huber threshold for ``+H`` models (default:
    GKX's 99.9% quantile of absolute OLS residuals).
    """
    from ..baselines import GBRT, GLM, NN, NN_HIDDEN, OLS, OLS3_NAMES, PCR, PLS, RF, ENet

    if profile not in PROFILES:
        raise StudyError(f"profile must be one of {PROFILES}, got {profile!r}")
    m = _NAME.match(name)
    if m is None:
        raise StudyError(
            f"unknown model {name!r}; known: OLS, OLS-3, PLS, PCR, ENet, Lasso, Ridge, GLM, RF, GBRT, "
            "NN1-NN5 (+H where a loss applies)"
        )
    base, h = m.group(1), m.group(2) is not None
    if h and base not in _HUBER_OK:
        raise StudyError(f"model {name!r}: {base} has no Huber (+H) version")
    quick = QUICK if profile == "quick" else {}
    hk = dict(huber=h, huber_xi=huber_xi)
    if base in ("OLS", "OLS-3"):
        cols = None
        if base == "OLS-3":
            want = tuple(ols3) if ols3 is not None else OLS3_NAMES
            missing = [c for c in want if c not in feature_names]
            if missing:
                raise StudyError(
                    f"model {name!r}: columns {missing} not among the factors; "
                    "pass ols3= (e.g. --ols3 size,value,momentum columns)"
                )
            cols = tuple(feature_names.index(c) for c in want)
        return OLS(name=name, columns=cols, **hk)
    if base == "PCR":
        return PCR(name=name, **quick.get("PCR", {}))
    if base == "PLS":
        return PLS(name=name, **quick.get("PLS", {}))
    if base in ("ENet", "Lasso", "Ridge"):
        rho = {"ENet": 0.5, "Lasso": 0.0, "Ridge": 1.0}[base]
        grid = {"lambdas": RIDGE_LAMBDAS} if base == "Ridge" else {}
        return ENet(name=name, rho=rho, **hk, **grid, **quick.get("ENet", {}))
    if base == "GLM":
        return GLM(name=name, **hk, **quick.get("GLM", {}))
    if base == "RF":
        return RF(name=name, **quick.get("RF", {}))
    if base == "GBRT":
        return GBRT(name=name, **hk, **quick.get("GBRT", {}))
    return NN(name=name, hidden=NN_HIDDEN[name], **quick.get("NN", {}))


#: Ridge's λ grid. GKX's range (1e-4, 1e-1) is the elastic net's (Table A.5); with the ridge
#: penalty ``½λΣθ²`` alone it hardly shrinks standardised covariates (in the GKX simulation,
#: model (a), Pc = 50, 100 repetitions: ridge R² 7.12% / 2.60% in / out of sample, next to OLS's
#: 7.17% / 1.45% and GKX's ridge 6.46% / 3.89%), so the ridge grid extends to 10 (then 6.27% /
#: 3.20%, and 1.68% / 0.30% on model (b) against GKX's 1.66% / 0.34%).
RIDGE_LAMBDAS: tuple[float, ...] = tuple(float(x) for x in np.logspace(-4, 1, 11))

#: The ``quick`` profile's departures from GKX's grids (Table A.5), per model family.
QUICK: dict[str, dict] = {
    "NN": dict(ensemble=1, learning_rates=(1e-2,), epochs=30),
    "RF": dict(n_estimators=30, max_depth=(3, 6), max_features=(5, 20), max_samples=0.1),
    "GBRT": dict(n_trees=300, learning_rate=(0.1,), max_depth=(2,)),
    "GLM": dict(lambdas=(1e-4, 1e-3, 1e-2, 1e-1), huber_iter=50),
}


def quick_note() -> str:
    """The ``quick`` profile's departures from GKX's grids, as one line for reports."""
    parts = []
    for fam, kw in QUICK.items():
        parts.append(
            f"{fam}: "
            + ", ".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in kw.items())
        )
    return "; ".join(parts)


# ----------------------------------------------------------------------------- the driver


def run_comparison(
    panel: Panel,
    models: Sequence[AbstractModel],
    spec: WindowSpec = WindowSpec(),
    *,
    seed: int = 0,
    covariates: str = "factors",
    size_group: int | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: Callable[[str, float, bool], None] | None = None,
    window_chunk: int | None | str = "auto",
    importance: bool = False,
    importance_rows: int | None = IMPORTANCE_ROWS,
) -> Comparison:
    """Fit every model on every window of ``spec`` and forecast every test row.

    ``covariates="factors"`` feeds the panel's factors (FAPM's inputs); ``"gkx"`` feeds GKX's
    ``characteristics ⊗ (1, macro)`` (+ SIC2 dummies), built inside each compiled fit
    (:class:`~fapm_jax.baselines.expand.OnGKXCovariates`). Model ``j`` draws from
    ``fold_in(key(seed), j-th name's hash)``, so adding a model does not change the others.
    ``progress(name, seconds, reused)`` is called after each model. ``window_chunk``: windows
    per vmapped call (``None``: all; ``"auto"``: :func:`window_chunk_for`); forecasts depend on it only
    through float rounding. ``importance``: also each model's R²-based factor importance
    (GKX; :func:`~fapm_jax.evaluation.importance.r2_drops` on at most ``importance_rows`` training rows
    per window), computed while the fit is at hand and saved with its forecasts.
    """
    if covariates not in COVARIATES:
        raise StudyError(f"covariates must be one of {COVARIATES}, got {covariates!r}")
    names = [m.name for m in models]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise StudyError(f"duplicate model names: {dup}")
    windows = rolling_windows(spec)
    train_m, valid_m, test_m = window_masks(panel.year, windows)
    rows = test_m.any(axis=0)
    X = jnp.asarray(panel.X)
    y = jnp.asarray(panel.r)
    if covariates == "gkx":
        from ..baselines.expand import OnGKXCovariates

        c, m, s = covariate_blocks(list(panel.feature_names), list(panel.macro_names))
        if m.size == 0:
            raise StudyError("covariates='gkx' needs macro predictors in the panel; it has none")
        models = [
            OnGKXCovariates(mod, tuple(map(int, c)), tuple(map(int, m)), tuple(map(int, s))) for mod in models
        ]
    frame = pl.DataFrame(
        {
            "permno": panel.permno[rows],
            "month": panel.month[rows],
            "r": panel.r[rows],
            "mktcap": panel.mktcap[rows],
        }
    )
    data_fp = fingerprint(panel.X, panel.r, train_m, valid_m, test_m, covariates, seed)
    seconds, choice, cols, drops = {}, {}, [], {}
    keys = ("r_hat", "choice") + (("importance",) if importance else ())
    max_train = int(train_m.sum(axis=1).max())
    max_valid = int(valid_m.sum(axis=1).max())
    for model in models:
        t0 = time.perf_counter()
        model = _size_batches(model, max_train, max_valid)
        path = None
        if checkpoint_dir is not None:
            fp = fingerprint(data_fp, repr(model), importance and importance_rows)
            path = Path(checkpoint_dir) / f"{safe_name(model.name)}.npz"
        cached = read_keyed(path, fp, keys) if path is not None else None
        if cached is None:
            key = jax.random.fold_in(jax.random.key(seed), _name_seed(model.name))
            chunk = window_chunk_for(model, *X.shape) if window_chunk == "auto" else window_chunk
            fit = model.fit_windows(X, y, train_m, valid_m, key, window_chunk=chunk)
            r_hat = model.predict_windows(fit.params, X, test_m)[rows].astype(np.float32)
            if not np.all(np.isfinite(r_hat)):
                bad = np.flatnonzero(~np.isfinite(r_hat))[0]
                raise StudyError(
                    f"model {model.name}: non-finite forecast for permno {frame['permno'][int(bad)]} "
                    f"month {frame['month'][int(bad)]}"
                )
            ch = np.asarray(fit.choice)
            saved = {"r_hat": r_hat, "choice": ch}
            if importance:
                saved["importance"] = r2_drops(
                    model.predict, fit.params, X, y, train_m, max_rows=importance_rows
                )
            if path is not None:
                write_keyed(path, fp, saved)
            if importance:
                drops[model.name] = saved["importance"]
        else:
            r_hat, ch = cached[:2]
            if importance:
                drops[model.name] = cached[2]
        seconds[model.name] = time.perf_counter() - t0
        choice[model.name] = ch
        cols.append(pl.Series(model.name, r_hat))
        if progress is not None:
            progress(model.name, seconds[model.name], cached is not None)
    frame = frame.with_columns(cols)
    if size_group is None:
        size_group = default_size_group(frame)
    return Comparison(frame, tuple(names), seconds, choice, size_group, np.flatnonzero(rows), drops)


def _size_batches(model, max_train: int, max_valid: int):
    """Mini-batch models: as many batches per epoch as the largest window's training set needs
    and as many validation slots as its largest validation set (not the whole panel's rows),
    so no epoch computes empty batches or passes over rows outside the window."""
    inner = getattr(model, "inner", None)
    if inner is not None:
        return dataclasses.replace(model, inner=_size_batches(inner, max_train, max_valid))
    if getattr(model, "n_batches", "absent") is None and hasattr(model, "batch_size"):
        model = dataclasses.replace(model, n_batches=max(1, -(-max_train // model.batch_size)))
    if getattr(model, "n_valid", "absent") is None:
        model = dataclasses.replace(model, n_valid=max(1, max_valid))
    return model


#: Working-memory budget of one vmapped call over windows (bytes), for models that state
#: theirs (``window_bytes``, e.g. the GLM's spline temporaries).
WINDOW_BUDGET = 2**30


def window_chunk_for(
    model: AbstractModel,
    n_rows: int = 0,
    n_cols: int = 0,
    backend: str | None = None,
    budget: int = WINDOW_BUDGET,
) -> int | None:
    """Windows per vmapped call under ``window_chunk="auto"`` (``None``: all at once).

    One for early-stopping models (those with ``patience``, i.e. the networks) on a CPU
    backend; for models that state their per-window working memory (``window_bytes``) as
    many windows as fit in ``budget``; else all.
    """
    inner = getattr(model, "inner", model)
    if (backend or jax.default_backend()) == "cpu" and hasattr(inner, "patience"):
        return 1
    need = model.window_bytes(n_rows, n_cols)
    return max(1, budget // need) if need > 0 else None


def _name_seed(name: str) -> int:
    return int(fingerprint(name)[:7], 16)
