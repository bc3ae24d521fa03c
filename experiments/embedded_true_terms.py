"""What a correctly specified linear model reaches on the embedded default: OLS on exactly the
13 terms of the true ``g`` (7 linear, 5 interactions, 1 square), and on all 38 linear terms
with and without the 6 true nonlinear ones, each fitted on every window's training rows — and
once more on its training and validation rows — and scored on its test year: the level an
estimator that knew the structure would reach, against which FAPM's search over all terms is
judged (docs/training.md).

    python experiments/embedded_true_terms.py
"""

from __future__ import annotations

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


if __name__ == "__main__":
    main()
