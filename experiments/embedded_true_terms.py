"""What a correctly specified linear model reaches on the embedded default: OLS on exactly the
13 terms of the true ``g`` (7 linear, 5 interactions, 1 square), and on all 38 linear terms
with and without the 6 true nonlinear ones, each fitted on every window's training rows — and
once more on its training and validation rows — and scored on its test year: the level an
estimator that knew the structure would reach, against which FAPM's search over all terms is
judged (docs/training.md).

It also measures the ceiling of the credible-interval target: the 95% intervals of the five
planted interactions from OLS on the true terms (training + validation years) — with i.i.d.
standard errors, the analogue of the Gibbs sampler's i.i.d. likelihood, and with standard
errors clustered by month (statsmodels), which allow for the monthly three-factor shock — and
how many of the five cover the truth: per window, and for the 30-window mean with the mean of
the windows' bounds as its band (the windows share most of their years). Then the same with
every other macro-only term beside the true ones (the macro predictors' linear terms, squares
and pairwise products: 42 more columns), as in a model that searches all terms, FAPM included:
there the one macro × macro interaction, ``ntis × bm_macro``, competes with 41 time series
and is only weakly identified.

    python experiments/embedded_true_terms.py
"""

from __future__ import annotations

import itertools

import numpy as np

from fapm_jax.data.embedded import TRUE_INTERACTIONS, TRUE_LINEAR, TRUE_SQUARES, SimConfig, simulate_panel
from fapm_jax.data.windows import WindowSpec, rolling_windows, window_masks


def r2_oos(D: np.ndarray, r: np.ndarray, fit: np.ndarray, test: np.ndarray) -> float:
    """R²_oos (%, zero benchmark) of OLS on the columns of ``D`` (an intercept added) fitted on
    each window's ``fit`` rows and forecasting its ``test`` rows (masks ``[W, N]``)."""
    D = np.c_[np.ones(len(r)), D]
    sse = tot = 0.0
    for w in range(fit.shape[0]):
        beta = np.linalg.lstsq(D[fit[w]], r[fit[w]], rcond=None)[0]
        e = r[test[w]] - D[test[w]] @ beta
        sse, tot = sse + e @ e, tot + r[test[w]] @ r[test[w]]
    return 100 * (1 - sse / tot)


def main() -> None:
    panel, truth = simulate_panel(SimConfig())
    names = list(panel.feature_names)
    X, r = panel.X.astype(np.float64), panel.r.astype(np.float64)
    col = lambda n: X[:, names.index(n)]  # noqa: E731
    lin = np.column_stack([col(n) for n in TRUE_LINEAR])
    nonlin = np.column_stack(
        [col(a) * col(b) for a, b in TRUE_INTERACTIONS] + [col(n) ** 2 for n in TRUE_SQUARES]
    )
    masks = window_masks(panel.year, rolling_windows(WindowSpec()))
    train, valid, test = (np.asarray(m, bool) for m in masks)
    designs = {
        f"the {lin.shape[1] + nonlin.shape[1]} true terms": np.c_[lin, nonlin],
        f"all {X.shape[1]} linear terms": X,
        f"all {X.shape[1]} linear + the {nonlin.shape[1]} true nonlinear": np.c_[X, nonlin],
    }
    for label, fit in (("training years", train), ("training + validation years", train | valid)):
        for name, D in designs.items():
            print(f"OLS on {name}, fit on the {label}: R²_oos {r2_oos(D, r, fit, test):.2f}%")
    print(f"oracle (the true g): {100 * truth.oracle_r2(r, test.any(axis=0)):.2f}%")
    coverage_ceiling(np.c_[lin, nonlin], r, train | valid, panel.month, "the true terms")
    macro = list(panel.macro_names)
    true_terms = {frozenset(p) for p in TRUE_INTERACTIONS}
    others = (
        [col(m) for m in macro if m not in TRUE_LINEAR]
        + [col(m) ** 2 for m in macro if m not in TRUE_SQUARES]
        + [col(a) * col(b) for a, b in itertools.combinations(macro, 2) if {a, b} not in true_terms]
    )
    label = f"the true terms + {len(others)} other macro-only terms"
    coverage_ceiling(np.c_[lin, nonlin, np.column_stack(others)], r, train | valid, panel.month, label)


def coverage_ceiling(D: np.ndarray, r: np.ndarray, fit: np.ndarray, month: np.ndarray, label: str) -> None:
    """Print, per planted interaction, the windows' mean OLS estimate and how often its 95%
    interval covers the truth, with i.i.d. and month-clustered standard errors. ``D``: the true
    linear terms, then the planted interactions, then any other columns."""
    import statsmodels.api as sm

    pairs = list(TRUE_INTERACTIONS)
    cols = slice(1 + len(TRUE_LINEAR), 1 + len(TRUE_LINEAR) + len(pairs))  # after the intercept
    Dc = sm.add_constant(D)
    est, bands = [], {"i.i.d.": [], "clustered by month": []}
    for w in range(fit.shape[0]):
        m = fit[w]
        ols = sm.OLS(r[m], Dc[m])
        fi = ols.fit()
        est.append(fi.params[cols])
        bands["i.i.d."].append(fi.conf_int(0.05)[cols])
        fc = ols.fit(cov_type="cluster", cov_kwds={"groups": month[m]})
        bands["clustered by month"].append(fc.conf_int(0.05)[cols])
    est, true = np.array(est), np.array(list(TRUE_INTERACTIONS.values()))
    print(f"\nOLS on {label}, training + validation years, {fit.shape[0]} windows: 95% intervals")
    for kind, b in bands.items():
        b = np.array(b)  # [W, pairs, 2]
        share = ((b[..., 0] <= true) & (true <= b[..., 1])).mean(axis=0)
        lo, hi = b[..., 0].mean(axis=0), b[..., 1].mean(axis=0)
        mean_covers = (lo <= true) & (true <= hi)
        print(f"  {kind}: the mean of the windows' bands covers {int(mean_covers.sum())} of {len(pairs)}")
        for k, (a, c) in enumerate(pairs):
            print(
                f"    {a} × {c}: true {true[k]:+.4f}, mean estimate {est[:, k].mean():+.4f}, "
                f"band [{lo[k]:+.4f}, {hi[k]:+.4f}], covered in {100 * share[k]:.0f}% of windows"
            )


if __name__ == "__main__":
    main()
