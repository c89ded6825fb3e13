"""The true counterfactual by MorphoMNIST's own generator: it redraws the real digit, meets its targets, and is scored like a model."""

import numpy as np
import pytest
import torch

from causaldiffae.data import morphometrics as mm
from causaldiffae.data.morphomnist import ThicknessIntensitySCM, embedded_source, generate_split
from causaldiffae.evaluation.oracle import morphomnist_oracle_scores, morphomnist_true_counterfactuals


@pytest.fixture(scope="module")
def digits():
    images, _ = embedded_source()["test"]
    morphed, labels = generate_split(images[:6], "test", seed=0, progress=False)
    values = labels[[3, 4, 5, 0, 1, 2]]  # another digit's labels: a real change for every digit
    return morphed.reshape(6, 28, 28), images[:6], labels, values


def test_true_counterfactuals_reach_the_scm_counterfactual(digits):
    images, sources, labels, values = digits
    scm = ThicknessIntensitySCM()
    cf = morphomnist_true_counterfactuals(sources, labels, values, scm)
    do_t, truth_t = cf["thickness"]
    do_i, truth_i = cf["intensity"]
    assert do_t.dtype == np.uint8 and do_t.shape == images.shape and do_i.shape == images.shape
    # SPEC section 3 written out: abduct e from the factual pair, then push the new thickness through the mechanism
    p = (labels[:, 1] - 64) / 191
    e = np.log(p / (1 - p)) - 2 * (labels[:, 0] - 2.5)
    expected_i = 64 + 191 / (1 + np.exp(-(2 * (values[:, 0] - 2.5) + e)))
    np.testing.assert_allclose(truth_t, np.stack([values[:, 0], expected_i], axis=1), rtol=1e-9)
    np.testing.assert_allclose(truth_i[:, 0], labels[:, 0])  # thickness is not a descendant of intensity
    np.testing.assert_allclose(truth_i[:, 1], values[:, 1])
    measured_t = np.array([mm.measure_thickness(d) for d in do_t])
    measured_i = np.array([mm.measure_intensity(d) for d in do_i])
    assert np.abs(measured_t - truth_t[:, 0]).max() < 0.1
    assert np.abs(measured_i - values[:, 1]).max() <= 1.0
    # the descendant followed thickness: the redrawn digit has the SCM's counterfactual intensity
    assert np.abs(np.array([mm.measure_intensity(d) for d in do_t]) - truth_t[:, 1]).max() <= 1.0


def test_oracle_scores_have_the_acceptance_shape(digits):
    images, sources, labels, values = digits
    true = morphomnist_true_counterfactuals(sources, labels, values, ThicknessIntensitySCM())
    o = morphomnist_oracle_scores(images, true, labels)
    assert o["n"] == 6
    assert o["do_thickness"]["thickness_mae"] < 0.1 and o["do_intensity"]["intensity_mae"] <= 1.0
    # the unedited digits were generated to re-measure at their labels
    assert o["unedited"]["thickness_mae"] < 0.05
    # do(intensity) keeps the thickness label, and the redrawn digit re-measures at it
    assert o["do_intensity"]["thickness_mae"] < 0.05


def test_factual_values_redraw_the_factual_digits(digits):
    images, sources, labels, _ = digits
    cf = morphomnist_true_counterfactuals(sources, labels, labels, ThicknessIntensitySCM())
    np.testing.assert_array_equal(cf["thickness"][0], images)
    np.testing.assert_array_equal(cf["intensity"][0], images)


def test_a_folder_without_a_recorded_source_gives_no_oracle_and_says_why(tmp_path):
    from causaldiffae.evaluation.oracle import sources_or_none

    said = []
    assert sources_or_none(tmp_path, "test", said.append) is None
    assert said == [f"no true counterfactual in this report: {tmp_path / 'morphomnist.json'}: no source recorded, so the digits' real originals are unknown"]


def test_image_distance_is_zero_for_the_true_images_and_the_nulls_for_the_unedited(digits):
    images, sources, labels, values = digits
    scm = ThicknessIntensitySCM()
    true = morphomnist_true_counterfactuals(sources, labels, values, scm)
    exact = morphomnist_oracle_scores(images, true, labels, {v: model_output(drawn) for v, (drawn, _) in true.items()})["image_l1"]
    assert all(d["model"] == 0 and d["null"] > 0.01 for d in exact.values())
    lazy = morphomnist_oracle_scores(images, true, labels, {v: model_output(images) for v in true})["image_l1"]
    assert all(d["model"] == d["null"] for d in lazy.values())
    assert "image_l1" not in morphomnist_oracle_scores(images, true, labels)


def model_output(digits: np.ndarray) -> torch.Tensor:
    """uint8 digits as a model returns images: float (N, 1, 28, 28) in [-1, 1]."""
    return torch.as_tensor(digits, dtype=torch.float64)[:, None] / 127.5 - 1
