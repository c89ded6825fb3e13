"""The shipped model's bar: pass/fail against the null baseline, from demo scores or evaluate metrics."""

import pytest

from causaldiffae.evaluation.acceptance import criteria, scores_from_metrics, table

SCORES = {
    "do_thickness": {"thickness_mae": 0.2, "thickness_null_mae": 0.8, "intensity_mae": 20.0, "intensity_null_mae": 30.0, "digit_accuracy": 0.95},
    "do_intensity": {"intensity_mae": 10.0, "intensity_null_mae": 40.0, "thickness_mae": 0.5, "thickness_mae_reconstruction": 0.3, "digit_accuracy": 0.97},
    "composition_l1": 0.01,
    "composition_abduction": "inversion",
    "composition_n": 32,
}


def test_criteria_compare_against_the_null_baseline_and_reconstruction():
    assert [ok for *_, ok in criteria(SCORES)] == [True, True, True, False, True, True]
    lines = table(SCORES)
    assert len(lines) == 8 and lines[5].endswith("| FAIL |")


def _scores_with(**parts) -> dict:
    """SCORES with some entries of its do_thickness / do_intensity summaries replaced, or some top-level values."""
    return {**SCORES, **{k: {**SCORES[k], **v} if isinstance(v, dict) else v for k, v in parts.items()}}


@pytest.mark.parametrize("parts, row, passed", [
    # do(thickness) thickness MAE <= 0.5 x null (0.8)
    ({"do_thickness": {"thickness_mae": 0.4}}, 0, True),
    ({"do_thickness": {"thickness_mae": 0.41}}, 0, False),
    # do(thickness) descendant intensity MAE strictly below its null (30): equal to it is no better than not intervening
    ({"do_thickness": {"intensity_mae": 29.9}}, 1, True),
    ({"do_thickness": {"intensity_mae": 30.0}}, 1, False),
    # do(intensity) intensity MAE <= 0.5 x null (40)
    ({"do_intensity": {"intensity_mae": 20.0}}, 2, True),
    ({"do_intensity": {"intensity_mae": 20.5}}, 2, False),
    ({"do_intensity": {"intensity_mae": 30.0}}, 2, False),
    # do(intensity) preserved thickness <= 1.2 x reconstruction (0.3)
    ({"do_intensity": {"thickness_mae": 0.36}}, 3, True),
    ({"do_intensity": {"thickness_mae": 0.37}}, 3, False),
    # digit accuracy >= 0.90, the worse of the two interventions counts
    ({"do_thickness": {"digit_accuracy": 0.90}}, 4, True),
    ({"do_thickness": {"digit_accuracy": 0.89}}, 4, False),
    ({"do_intensity": {"digit_accuracy": 0.89}}, 4, False),
    # null intervention pixel change <= 0.03
    ({"composition_l1": 0.03}, 5, True),
    ({"composition_l1": 0.031}, 5, False),
])
def test_criteria_at_and_just_past_each_bound(parts, row, passed):
    rows = criteria(_scores_with(**parts))
    assert rows[row][3] is passed, rows[row]


def _item(m, n, role):
    return {"role": role, "mae": m, "null_mae": n, "measured_mae": m, "measured_null_mae": n}


def _metrics(abduction: str, reconstruction: dict, composition: dict) -> dict:
    """An evaluate metrics.json with the parts the bar reads."""
    return {
        "morphometrics": True,
        "settings": {"n_used": 500, "steps": 20, "abduction": abduction},
        "effectiveness": {
            "thickness": {"variables": {"thickness": _item(0.2, 0.8, "intervened"), "intensity": _item(20.0, 30.0, "descendant")},
                          "class_accuracy": 0.95},
            "intensity": {"variables": {"thickness": _item(0.5, 0.1, "non-descendant"), "intensity": _item(10.0, 40.0, "intervened")},
                          "class_accuracy": 0.97},
        },
        "realism": {"reconstruction": reconstruction},
        "composition": composition,
    }


def test_scores_from_evaluate_metrics():
    recon = {"inversion": {"measured_mae": {"thickness": 0.3}}, "stochastic": {"measured_mae": {"thickness": 9.0}}}
    metrics = _metrics("inversion", recon, {"n": 32, "l1": [0.01, 0.02]})
    s = scores_from_metrics(metrics)
    assert s["do_intensity"]["thickness_mae_reconstruction"] == 0.3  # the evaluated abduction's reconstruction
    assert [row[1] for row in criteria(s)] == [row[1] for row in criteria(SCORES)]
    assert scores_from_metrics({**metrics, "morphometrics": False}) is None


def test_metrics_without_digit_classes_or_measured_preservation_give_no_scores():
    """An evaluation of a dataset without classes, or without morphometrics of the preserved variable: no verdict, no KeyError."""
    recon = {"inversion": {"measured_mae": {"thickness": 0.3}}}
    metrics = _metrics("inversion", recon, {"n": 32, "l1": [0.01, 0.02]})
    assert scores_from_metrics(metrics) is not None
    del metrics["effectiveness"]["thickness"]["class_accuracy"]
    assert scores_from_metrics(metrics) is None
    metrics = _metrics("inversion", recon, {"n": 32, "l1": [0.01, 0.02]})
    del metrics["effectiveness"]["intensity"]["class_accuracy"]
    assert scores_from_metrics(metrics) is None
    metrics = _metrics("inversion", recon, {"n": 32, "l1": [0.01, 0.02]})
    del metrics["effectiveness"]["intensity"]["variables"]["thickness"]["measured_mae"]
    assert scores_from_metrics(metrics) is None


def test_a_ddpm_evaluation_scores_the_null_intervention_through_inversion():
    """The ddpm residuals return the image exactly, so that row would pass whatever the model did."""
    recon = {"ddpm": {"measured_mae": {"thickness": 0.02}}}
    metrics = _metrics("ddpm", recon, {"n": 16, "l1": [1e-9, 2e-9], "inversion_l1": [0.05, 0.08]})
    s = scores_from_metrics(metrics)
    name, value, _, ok = criteria(s)[-1]
    assert (value, ok) == (0.05, False) and "(DDIM inversion, 16 images)" in name
    del metrics["composition"]["inversion_l1"]
    assert scores_from_metrics(metrics) is None  # an older report without the round trip: no verdict rather than a free pass


def test_table_scores_the_true_counterfactual_against_the_same_targets():
    oracle = {
        "n": 100,
        "unedited": {"thickness_mae": 0.02, "intensity_mae": 0.2},
        "do_thickness": {"thickness_mae": 0.02, "intensity_mae": 0.25},
        "do_intensity": {"intensity_mae": 0.23, "thickness_mae": 0.4},
    }
    rows = criteria(SCORES, oracle)
    assert [value for _, value, _, _ in rows] == [0.02, 0.25, 0.23, 0.4, None, None]
    # targets come from the model's null baselines and reconstructions
    assert [target for _, _, target, _ in rows] == [target for _, _, target, _ in criteria(SCORES)]
    assert [ok for *_, ok in rows] == [True, True, True, False, None, None]
    lines = table({**SCORES, "oracle": oracle})
    assert lines[0].count("true counterfactual") == 1
    assert lines[5].endswith("| FAIL | 0.400 | FAIL |") and lines[6].endswith("| pass | n/a |  |")
    assert any("0.020" in line and "Unedited" in line for line in lines)
    assert not any("Distance to the true" in line for line in lines)
    image_l1 = {"thickness": {"model": 0.05, "null": 0.09}, "intensity": {"model": 0.02, "null": 0.06}}
    lines = table({**SCORES, "oracle": {**oracle, "image_l1": image_l1}})
    assert lines[-1].endswith("do(thickness) 0.0500 (unedited 0.0900); do(intensity) 0.0200 (unedited 0.0600).")
