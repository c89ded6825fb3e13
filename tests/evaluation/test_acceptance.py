"""The shipped model's bar: pass/fail against the null baseline, from demo scores or evaluate metrics."""

import json

import numpy as np
import pytest

from causaldiffae.evaluation.acceptance import bootstrap_ratios, criteria, pass_rates, scores_from_metrics, summarise, table, verdict_lines

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


def _per_image(rng, n: int = 200, k: int = 32, preserved: float = 0.7) -> dict:
    """Per-image values behind SCORES-like figures: exponential errors with the given means, ``preserved``
    the do(intensity) thickness errors' mean over the reconstruction's 0.3."""
    def around(mean, size=n):
        return list(rng.exponential(mean, size))
    return {
        "do_thickness": {"thickness_mae": around(0.2), "thickness_null_mae": around(0.8), "intensity_mae": around(20.0),
                         "intensity_null_mae": around(30.0), "digit_accuracy": list((rng.random(n) < 0.95).astype(float))},
        "do_intensity": {"intensity_mae": around(10.0), "intensity_null_mae": around(40.0), "thickness_mae": around(preserved),
                         "thickness_mae_reconstruction": around(0.3), "digit_accuracy": list((rng.random(n) < 0.97).astype(float))},
        "composition_l1": around(0.01, k),
    }


def test_pass_rates_are_certain_far_from_a_bound_and_split_at_it():
    rng = np.random.default_rng(0)
    s = {**SCORES, "per_image": _per_image(rng)}
    rates = pass_rates(s)
    assert rates == pass_rates(s)  # seeded: a report renders the same twice
    assert rates[0] == rates[2] == 1.0 and rates[3] == 0.0  # 0.25x / 0.25x null pass, 2.3x the reconstruction fails
    # the preserved thickness drawn at exactly 1.2x the reconstruction's mean: a verdict within the noise
    at_bar = _per_image(np.random.default_rng(1), n=400)
    at_bar["do_intensity"]["thickness_mae"] = list(1.2 * np.asarray(at_bar["do_intensity"]["thickness_mae_reconstruction"])[np.random.default_rng(2).permutation(400)])
    assert 0.2 < pass_rates({**SCORES, "per_image": at_bar})[3] < 0.8
    assert pass_rates(SCORES) == [None] * 6  # no per-image values, no rates


def test_pass_rates_pair_a_value_with_its_target_on_the_same_images():
    """Errors 1.1x the reconstruction's on every image pass on every resample, however noisy the images are;
    the same values shuffled against the reconstructions do not."""
    per_image = _per_image(np.random.default_rng(3), n=60)
    recon = np.random.default_rng(4).exponential(0.3, 60) * np.r_[np.ones(30), 20 * np.ones(30)]  # a few images dominate
    per_image["do_intensity"]["thickness_mae_reconstruction"] = list(recon)
    per_image["do_intensity"]["thickness_mae"] = list(1.1 * recon)
    assert pass_rates({**SCORES, "per_image": per_image})[3] == 1.0
    per_image["do_intensity"]["thickness_mae"] = list(1.1 * recon[np.random.default_rng(5).permutation(60)])
    assert pass_rates({**SCORES, "per_image": per_image})[3] < 0.95


def test_bootstrap_ratios_resample_as_the_pass_rates_do():
    """The benchmark's ratio spread and the report's rate are read off the same resamples."""
    per_image = _per_image(np.random.default_rng(7), n=50, preserved=0.36)
    section = per_image["do_intensity"]
    ratios = bootstrap_ratios(section["thickness_mae"], section["thickness_mae_reconstruction"])
    assert ratios.shape == (2000,) and np.all(ratios > 0)
    assert np.median(ratios) == pytest.approx(np.mean(section["thickness_mae"]) / np.mean(section["thickness_mae_reconstruction"]), rel=0.1)
    assert pass_rates({**SCORES, "per_image": per_image})[3] == pytest.approx(np.mean(ratios <= 1.2))


def test_the_true_counterfactuals_rates_use_its_values_and_the_models_targets():
    per_image = _per_image(np.random.default_rng(6))
    at_bar = 1.2 * float(np.mean(per_image["do_intensity"]["thickness_mae_reconstruction"]))  # exactly the bar, on these images
    oracle = {"n": 200, "unedited": {"thickness_mae": 0.02, "intensity_mae": 0.2},
              "do_thickness": {"thickness_mae": 0.02, "intensity_mae": 0.25}, "do_intensity": {"intensity_mae": 0.23, "thickness_mae": at_bar},
              "per_image": {"do_thickness": {"thickness_mae": [0.02] * 200, "intensity_mae": [0.25] * 200},
                            "do_intensity": {"intensity_mae": [0.23] * 200, "thickness_mae": [at_bar] * 200}}}
    s = {**SCORES, "per_image": per_image, "oracle": oracle}
    rates = pass_rates(s, oracle)
    assert rates[:3] == [1.0, 1.0, 1.0] and rates[4:] == [None, None]  # no classifier or composition figures of its own
    assert 0.3 < rates[3] < 0.7  # a constant against 1.2x a noisy reconstruction mean it equals on the scored images
    lines = table(s)
    assert lines[0] == "| criterion | measured | target | | resamples passing | true counterfactual | | resamples passing |"
    assert all(line.count("|") == lines[0].count("|") for line in lines[1:8])
    assert lines[2].endswith("| pass | 100% | 0.020 | pass | 100% |") and lines[7].endswith("| pass | 100% | n/a |  |  |")
    assert any(line.startswith("*Resamples passing*") for line in lines)
    assert not any("Resamples" in line for line in table(SCORES))


def test_summarise_keeps_per_image_values_only_when_every_figure_has_them():
    def item(errors, null):
        return {"measured_mae": float(np.mean(errors)), "measured_null_mae": float(np.mean(null)),
                "measured_errors_per_image": errors, "measured_null_errors_per_image": null}
    eff = {"thickness": {"variables": {"thickness": item([0.1, 0.3], [1.0, 0.6]), "intensity": item([5.0, 7.0], [40.0, 20.0])},
                         "class_accuracy": 0.5, "class_correct_per_image": [1.0, 0.0]},
           "intensity": {"variables": {"thickness": item([0.05, 0.07], [0.0, 0.0]), "intensity": item([2.0, 4.0], [30.0, 50.0])},
                         "class_accuracy": 1.0, "class_correct_per_image": [1.0, 1.0]}}
    s = summarise(eff, 0.05, 0.002, "inversion", 2, 2, 20, reconstruction_thickness_errors=np.array([0.04, 0.06]),
                  composition_errors=np.array([0.001, 0.003]))
    for section in ("do_thickness", "do_intensity"):  # the per-image tree mirrors the summary: its means are the figures
        assert set(s["per_image"][section]) == set(s[section])
        assert all(np.mean(s["per_image"][section][k]) == pytest.approx(v) for k, v in s[section].items())
    assert np.mean(s["per_image"]["composition_l1"]) == pytest.approx(s["composition_l1"])
    assert "per_image" not in summarise(eff, 0.05, 0.002, "inversion", 2, 2, 20)  # no per-image reconstruction: no rates
    json.dumps(s)  # written to scores.json as it is


def test_scores_from_metrics_read_the_per_image_values_of_the_scored_abduction():
    recon = {"ddpm": {"measured_mae": {"thickness": 0.02}, "measured_errors_per_image": {"thickness": [0.01, 0.03]}}}
    metrics = _metrics("ddpm", recon, {"n": 2, "l1": [1e-9], "inversion_l1": [0.05], "l1_per_image": [0.0, 2e-9], "inversion_l1_per_image": [0.04, 0.06]})
    for entry in metrics["effectiveness"].values():
        entry["class_correct_per_image"] = [1.0, 1.0]
        for item in entry["variables"].values():
            item["measured_errors_per_image"], item["measured_null_errors_per_image"] = [item["measured_mae"]] * 2, [item["measured_null_mae"]] * 2
    s = scores_from_metrics(metrics)
    assert s["per_image"]["composition_l1"] == [0.04, 0.06]  # the DDIM-inversion round trip the row scores
    assert s["per_image"]["do_intensity"]["thickness_mae_reconstruction"] == [0.01, 0.03]
    assert pass_rates(s) == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    del metrics["realism"]["reconstruction"]["ddpm"]["measured_errors_per_image"]  # an older metrics.json: verdicts, no rates
    assert "per_image" not in scores_from_metrics(metrics)


def test_verdict_lines_say_what_the_summary_holds():
    plain = verdict_lines(SCORES)  # no per-image values, no true counterfactual: the verdicts alone
    assert len(plain) == 6 and plain[3].startswith("FAIL  do(intensity): thickness error (preserved): 0.500")
    assert not any("resamples" in line or "true counterfactual" in line for line in plain)
    full = verdict_lines({**SCORES, "per_image": _per_image(np.random.default_rng(8))})
    assert full[3].endswith("(target <= 1.2 x reconstruction = 0.360, 0% of resamples pass)") and full[6].startswith("(resamples passing")
