"""What a correctly specified linear model reaches on the embedded default: OLS on exactly the
13 terms of the true ``g`` (7 linear, 5 interactions, 1 square), fitted on each window's
training rows, scored on its test year — the level an estimator that knew the structure would
reach, against which FAPM's search over all terms is judged (docs/training.md).

    python experiments/embedded_true_terms.py
"""

from __future__ import annotations

import numpy as np

from fapm_jax.data.embedded import TRUE_INTERACTIONS, TRUE_LINEAR, TRUE_SQUARES, SimConfig, simulate_panel
from fapm_jax.data.windows import WindowSpec, rolling_windows, window_masks


def main() -> None:
    panel, truth = simulate_panel(SimConfig())
    names = list(panel.feature_names)
    X, r = panel.X.astype(np.float64), panel.r.astype(np.float64)
    col = lambda n: X[:, names.index(n)]  # noqa: E731
    Z = np.column_stack(
        [col(n) for n in TRUE_LINEAR]
        + [col(a) * col(b) for a, b in TRUE_INTERACTIONS]
        + [col(n) ** 2 for n in TRUE_SQUARES]
    )
    train, _, test = window_masks(panel.year, rolling_windows(WindowSpec()))
    sse = tot = 0.0
    for w in range(train.shape[0]):
        beta = np.linalg.lstsq(np.c_[np.ones(train[w].sum()), Z[train[w]]], r[train[w]], rcond=None)[0]
        e = r[test[w]] - np.c_[np.ones(test[w].sum()), Z[test[w]]] @ beta
        sse, tot = sse + e @ e, tot + r[test[w]] @ r[test[w]]
    oracle = truth.oracle_r2(r, test.any(axis=0))
    print(
        f"OLS on the {Z.shape[1]} true terms: R²_oos {100 * (1 - sse / tot):.2f}%; oracle {100 * oracle:.2f}%"
    )


if __name__ == "__main__":
    main()
