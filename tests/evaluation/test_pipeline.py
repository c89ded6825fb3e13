"""Pieces of the evaluation pipeline that need no model."""

import pytest

from causaldiffae.evaluation.pipeline import _sweep_lines


def test_sweep_figures_share_one_scale_unless_a_baseline_is_zero():
    rows = {"thickness": [{"mae": 0.1, "null_mae": 0.5}, {"mae": 0.2, "null_mae": 0.5}], "intensity": [{"mae": 5.0, "null_mae": 50.0}]}
    series, ylabel, base = _sweep_lines(rows)
    assert series == {"thickness": [pytest.approx(0.2), pytest.approx(0.4)], "intensity": [pytest.approx(0.1)]}
    assert ylabel == "MAE / null MAE" and base == {"null (the unedited image)": 1.0}
    rows["intensity"][0]["null_mae"] = 0.0  # a perfectly read unedited image: a fraction of 0 would drop the line
    series, ylabel, base = _sweep_lines(rows)
    assert series == {"thickness": [0.1, 0.2], "intensity": [5.0]}
    assert ylabel == "MAE (natural units)" and base == {"null: thickness": 0.5, "null: intensity": 0.0}
