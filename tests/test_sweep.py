"""The sweep tool (fapm_jax/sweep.py): one program over rank × epochs × m equals separate runs
of each setting, the per-window choice is the validation argmax, and the reports agree."""

import dataclasses

import numpy as np
import pytest

from fapm_jax import SimConfig, TrainConfig, WindowSpec, fapm_m_sweep, run_rolling, simulate_panel
from fapm_jax.studies.sweep import sweep

SPEC = WindowSpec(first_year=1957, valid_years=6, first_test_year=1970, n_windows=3)
CFG = TrainConfig(epochs=6, learning_rate=1e-2)


@pytest.fixture(scope="module")
def panel():
    p, _ = simulate_panel(SimConfig(n_stocks=40, n_chars=6, first_month=195701, last_month=197212))
    return p


@pytest.fixture(scope="module")
def swept(panel):
    return sweep(panel, CFG, SPEC, ranks=[2, 4], epochs=[3, 6], ms=[2, None])


def test_grid_order_and_choice(swept):
    assert len(swept.points) == 8
    assert swept.points[0] == dict(rank=2, learning_rate=1e-2, init_scale=0.01, seed=0, epochs=3, m=2)
    assert swept.points[1]["m"] is None and swept.points[2]["epochs"] == 6 and swept.points[4]["rank"] == 4
    np.testing.assert_array_equal(swept.run.setting, np.argmax(swept.valid_r2, axis=0))
    t, c = swept.table(), swept.choices()
    assert t.height == 8 and t["chosen_in"].sum() == 3
    assert c["setting"].to_list() == swept.run.setting.tolist()
    assert c["m"].to_list() == [
        -1 if swept.points[s]["m"] is None else swept.points[s]["m"] for s in swept.run.setting
    ]


@pytest.mark.parametrize("s", [1, 6])
def test_each_setting_equals_a_separate_run(panel, swept, s):
    """Setting 1 (rank 2, 3 epochs, all factors) against run_rolling of that config; setting 6
    (rank 4, 6 epochs, m = 2) against fapm_m_sweep of that m: the same R²_oos."""
    p = swept.points[s]
    cfg = dataclasses.replace(CFG, rank=p["rank"], epochs=p["epochs"])
    if p["m"] is None:
        alone = run_rolling(panel, cfg, SPEC).r2_value()
    else:
        alone = float(fapm_m_sweep(panel, cfg, SPEC, ms=(p["m"],)).r2_oos[0])
    assert swept.r2_oos[s] == pytest.approx(alone, abs=2e-5)


def test_bad_ranking(panel):
    with pytest.raises(ValueError, match="ranking must be one of"):
        sweep(panel, CFG, SPEC, ms=[1], ranking="future")
