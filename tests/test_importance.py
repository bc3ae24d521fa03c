"""FAPM-m's factor choice (fapm_jax/importance.py) against a scikit-learn OLS by hand."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from fapm_jax import SimConfig, WindowSpec, simulate_panel
from fapm_jax.importance import ols_importance, top_bottom

SPEC = WindowSpec(first_year=1957, valid_years=6, first_test_year=1970, n_windows=3)


def test_importance_is_normalised_ols_weights_of_the_first_training_years():
    p, _ = simulate_panel(SimConfig(n_stocks=40, n_chars=6, first_month=195701, last_month=197212))
    imp = ols_importance(p, SPEC)
    rows = (p.year >= 1957) & (p.year <= 1963)  # window 0 trains on 1957-1963
    w = LinearRegression().fit(p.X[rows], p.r[rows]).coef_
    order = np.argsort(-np.abs(w), kind="stable")
    assert imp["factor"].to_list() == [p.feature_names[i] for i in order]
    np.testing.assert_allclose(imp["weight"].to_numpy(), w[order], rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(imp["importance"].sum(), 1.0)
    names = imp["factor"].to_list()
    assert top_bottom(imp, 2) == names[:2] + names[-2:]
    with pytest.raises(ValueError, match="m must be between 1 and 7"):
        top_bottom(imp, 8)
