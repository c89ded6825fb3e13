"""Pieces of the evaluation pipeline that need no model."""

import warnings

import numpy as np
import pytest

from causaldiffae.evaluation.pipeline import _frechet_warnings_once, _sweep_lines
from causaldiffae.evaluation.realism import frechet_distance


def test_sweep_figures_share_one_scale_unless_a_baseline_is_zero():
    rows = {"thickness": [{"mae": 0.1, "null_mae": 0.5}, {"mae": 0.2, "null_mae": 0.5}], "intensity": [{"mae": 5.0, "null_mae": 50.0}]}
    series, ylabel, base = _sweep_lines(rows)
    assert series == {"thickness": [pytest.approx(0.2), pytest.approx(0.4)], "intensity": [pytest.approx(0.1)]}
    assert ylabel == "MAE / null MAE" and base == {"null (the unedited image)": 1.0}
    rows["intensity"][0]["null_mae"] = 0.0  # a perfectly read unedited image: a fraction of 0 would drop the line
    series, ylabel, base = _sweep_lines(rows)
    assert series == {"thickness": [0.1, 0.2], "intensity": [5.0]}
    assert ylabel == "MAE (natural units)" and base == {"null: thickness": 0.5, "null: intensity": 0.0}


def test_the_realism_table_warns_once_for_distances_alike_and_keeps_other_warnings(monkeypatch):
    from scipy import linalg

    real, shift = linalg.sqrtm, iter([0.5j, 0.7j, 0.6j])
    monkeypatch.setattr(linalg, "sqrtm", lambda m: real(m) + next(shift))  # three unreliable distances, each with its own figure
    a = np.random.default_rng(4).normal(size=(50, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _frechet_warnings_once():
            for _ in range(3):
                frechet_distance(a, a)
            warnings.warn("something else", UserWarning)
    shown = sorted(str(w.message) for w in caught)
    assert len(shown) == 2 and shown[1] == "something else", shown
    assert "imaginary part of 0.5 " in shown[0] and shown[0].endswith("(and 2 more of the realism table's distances alike)")
    with warnings.catch_warnings(record=True) as caught:  # a section that fails still shows what it warned about
        warnings.simplefilter("always")
        with pytest.raises(ValueError), _frechet_warnings_once():
            warnings.warn("before the failure", UserWarning)
            raise ValueError
    assert [str(w.message) for w in caught] == ["before the failure"]
