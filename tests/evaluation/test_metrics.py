"""Counterfactual metrics on cases with known answers: the identity (null) and an oracle that renders the truth."""

import numpy as np
import pytest
import torch
from squares_data import render_squares

from causaldiffae.data.base import to_uint8
from causaldiffae.errors import DivergedError
from causaldiffae.evaluation.metrics import (
    composition_errors,
    draw_indices,
    effectiveness,
    identity_counterfactual,
    marginal_values,
    morphometric_reader,
    reversibility,
    roles,
    true_counterfactual,
)
from causaldiffae.graph import CausalGraph


def shuffled_values(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Intervention values from the empirical marginal: each column permuted on its own."""
    labels = np.asarray(labels, dtype=np.float64)
    return np.stack([labels[rng.permutation(len(labels)), j] for j in range(labels.shape[1])], axis=1)


def read_squares(images: torch.Tensor) -> dict[str, np.ndarray]:
    """An exact instrument for the squares: side = sqrt(lit pixels), brightness = max, class = half."""
    u8 = to_uint8(images)[:, 0].astype(np.float64)
    lit = u8 > 0
    right = lit[:, :, 8:].sum(axis=(1, 2)) > lit[:, :, :8].sum(axis=(1, 2))
    return {"size": np.sqrt(lit.sum(axis=(1, 2))), "brightness": u8.max(axis=(1, 2)), "class": right.astype(int)}


def oracle(scm, graph):
    """A perfect counterfactual method: renders the SCM's true counterfactual labels."""

    def cf_fn(images, do, labels, classes):
        truth = true_counterfactual(scm, graph, labels, do)
        return images_tensor_from(render_squares(truth, classes)), truth

    return cf_fn


def images_tensor_from(u8):
    return torch.from_numpy(u8).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@pytest.fixture()
def rendered(squares):
    _, test = squares
    labels = test.labels[:40].copy()
    labels[:, 1] = np.round(labels[:, 1])
    images = images_tensor_from(render_squares(labels, test.classes[:40]))
    return test, images, labels, test.classes[:40]


def test_identity_counterfactual_scores_exactly_the_null_baseline(rendered):
    test, images, labels, classes = rendered
    values = shuffled_values(labels, np.random.default_rng(0))
    res, out = effectiveness(identity_counterfactual, read_squares, images, labels, values, test.graph, test.scm, classes)
    for entry in res.values():
        for item in entry["variables"].values():
            assert item["mae"] == item["null_mae"]
        assert entry["class_accuracy"] == entry["null_class_accuracy"] == 1.0
    assert torch.equal(out["size"], images)


def test_oracle_counterfactual_is_exact_and_beats_the_null_baseline(rendered):
    test, images, labels, classes = rendered
    values = shuffled_values(labels, np.random.default_rng(1))
    values[:, 0] = np.round(values[:, 0])
    values[:, 1] = np.round(values[:, 1])
    res, _ = effectiveness(oracle(test.scm, test.graph), read_squares, images, labels, values, test.graph, test.scm, classes)
    size = res["size"]["variables"]
    assert size["size"]["role"] == "intervened" and size["brightness"]["role"] == "descendant"
    assert size["size"]["mae"] == pytest.approx(0.0)
    assert size["brightness"]["mae"] < 0.51  # only the rendering's rounding to uint8
    assert size["size"]["null_mae"] > 1.0 and size["brightness"]["null_mae"] > 10.0
    bright = res["brightness"]["variables"]
    assert bright["size"]["role"] == "non-descendant" and bright["size"]["mae"] == pytest.approx(0.0)
    assert bright["brightness"]["mae"] == pytest.approx(0.0)
    assert res["size"]["class_accuracy"] == res["size"]["null_class_accuracy"] == 1.0


def test_class_accuracy_reads_the_counterfactuals_not_the_originals(rendered):
    """A method that moves every square to the other half keeps no class; the unedited images keep all."""
    test, images, labels, classes = rendered
    exact = oracle(test.scm, test.graph)

    def flipping(images_, do, labels_, classes_):
        _, truth = exact(images_, do, labels_, classes_)
        return images_tensor_from(render_squares(truth, 1 - np.asarray(classes_))), truth

    res, _ = effectiveness(flipping, read_squares, images, labels, np.round(labels), test.graph, test.scm, classes)
    assert res["size"]["class_accuracy"] == 0.0 and res["size"]["null_class_accuracy"] == 1.0


def test_per_image_values_average_to_the_figures_they_stand_behind(rendered):
    """What the acceptance bar resamples: each image's measured error and class hit, whose means are the reported figures."""
    test, images, labels, classes = rendered
    values = shuffled_values(labels, np.random.default_rng(3))

    def noisy(images_, do, labels_, classes_):  # off by a varying amount, so the per-image errors differ
        return images_ + 0.3 * torch.rand(images_.shape, generator=torch.Generator().manual_seed(4)), labels_

    def measure(images_):
        return {k: v for k, v in read_squares(images_).items() if k != "class"}

    plain, _ = effectiveness(noisy, read_squares, images, labels, values, test.graph, test.scm, classes, measure=measure)
    res, _ = effectiveness(noisy, read_squares, images, labels, values, test.graph, test.scm, classes, measure=measure, per_image=True)
    assert "measured_errors_per_image" not in plain["size"]["variables"]["size"] and "class_correct_per_image" not in plain["size"]
    for var, entry in res.items():
        assert np.mean(entry["class_correct_per_image"]) == pytest.approx(entry["class_accuracy"])
        for item in entry["variables"].values():
            errors, null = item["measured_errors_per_image"], item["measured_null_errors_per_image"]
            assert len(errors) == len(null) == len(labels) and min(errors) >= 0
            assert np.mean(errors) == pytest.approx(item["measured_mae"], rel=1e-5)
            assert np.mean(null) == pytest.approx(item["measured_null_mae"], rel=1e-5)
    assert np.std(res["size"]["variables"]["brightness"]["measured_errors_per_image"]) > 0


def test_composition_errors_are_per_image(rendered):
    test, images, labels, classes = rendered
    drifting = lambda images_, do, labels_, classes_: (images_ + 0.02 * torch.arange(len(images_)).view(-1, 1, 1, 1) / len(images_), labels_)  # noqa: E731
    errors = composition_errors(drifting, images, labels, classes, times=2)
    assert errors.shape == (2, len(images)) and errors[0, 0] == 0
    np.testing.assert_allclose(errors[:, -1], [0.01 * 39 / 40, 0.02 * 39 / 40], rtol=1e-5)  # the last image drifts most, adding up


def test_descendants_are_skipped_without_an_scm(rendered):
    test, images, labels, classes = rendered
    truth = true_counterfactual(None, test.graph, labels, {"size": np.full(len(labels), 3.0)})
    assert np.all(truth[:, 0] == 3.0) and np.all(np.isnan(truth[:, 1]))
    res, _ = effectiveness(identity_counterfactual, read_squares, images, labels, labels, test.graph, None, classes)
    assert set(res["size"]["variables"]) == {"size"}
    assert set(res["brightness"]["variables"]) == {"size", "brightness"}


def test_composition_and_reversibility_of_identity_are_zero_and_of_oracle_reverse_exactly(rendered):
    test, images, labels, classes = rendered
    assert composition_errors(identity_counterfactual, images, labels, classes, times=3).tolist() == [[0.0] * len(images)] * 3
    drifting = lambda images_, do, labels_, classes_: (images_ + 0.02, labels_)  # noqa: E731
    # each null intervention starts from the previous one's output: the drift adds up, 0.01 per step in [0, 1] units
    np.testing.assert_allclose(composition_errors(drifting, images, labels, classes, times=3).mean(axis=1), [0.01, 0.02, 0.03], rtol=1e-5)
    values = np.round(shuffled_values(labels, np.random.default_rng(2)))
    rev = reversibility(oracle(test.scm, test.graph), images, labels, values, test.graph, classes)
    assert rev["size"]["l1_there"] > 0.01
    assert rev["size"]["l1_back"] == pytest.approx(0.0, abs=1e-3)


def test_composition_and_reversibility_count_their_counterfactual_calls_on_a_progress_bar(rendered, progress_bars):
    test, images, labels, classes = rendered
    calls = []

    def counting(images_, do, labels_, classes_):
        calls.append(dict(do))
        return images_, labels_

    assert composition_errors(counting, images, labels, classes, times=4, progress=progress_bars).shape == (4, len(images))
    reversibility(counting, images, labels, labels, test.graph, classes, progress=progress_bars)
    # one tick per application (composition) and per variable's there-and-back (after one factual read)
    assert progress_bars.bars == [("composition", 4, False), ("reversibility", len(test.graph.variables), False)]
    assert len(calls) == 4 + 1 + 2 * len(test.graph.variables)


def test_reversibility_goes_back_to_the_models_own_reading_not_the_label(rendered):
    """A model whose latent reads every image with an offset from its label, but edits exactly."""
    test, images, labels, classes = rendered
    offset = np.array([1.0, 3.0])

    def biased(images_, do, labels_, classes_):
        got = read_squares(images_)
        values = np.stack([got["size"], got["brightness"]], axis=1) + offset
        for name, v in do.items():
            values[:, test.graph.index(name)] = v
        return images_tensor_from(render_squares(values - offset, classes_)), values

    values = np.round(shuffled_values(labels, np.random.default_rng(3)))
    rev = reversibility(biased, images, labels, values, test.graph, classes)
    for var in test.graph.variables:
        assert rev[var]["l1_there"] > 0.005, var
        assert rev[var]["l1_back"] == pytest.approx(0.0, abs=1e-6), var  # back to the label would cost the offset


def test_roles_of_every_variable_under_an_intervention():
    g = CausalGraph.parse("a -> b -> c; d")
    assert roles(g, "b") == {"a": "non-descendant", "b": "intervened", "c": "descendant", "d": "non-descendant"}


def test_marginal_values_give_each_image_another_images_whole_label_vector():
    labels = np.arange(40.0).reshape(20, 2)
    idx = np.array([1, 4, 7])
    v = marginal_values(labels, idx, seed=0)
    assert v.shape == (3, 2) and all(any(np.array_equal(row, x) for x in labels) for row in v)  # whole rows: the joint kept
    everything = marginal_values(labels, np.arange(20), seed=0)
    assert sorted(map(tuple, everything)) == sorted(map(tuple, labels)) and not np.array_equal(everything, labels)
    np.testing.assert_array_equal(everything[idx], v)  # a subset's values are the draw's, whatever else is scored
    assert not np.array_equal(marginal_values(labels, np.arange(20), seed=1), everything)


def test_draw_indices_are_distinct_sorted_and_all_when_too_few():
    idx = draw_indices(np.random.default_rng(0), 50, 10)
    assert len(set(idx.tolist())) == 10 and np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < 50
    assert not np.array_equal(idx, np.arange(10))  # random, not the first ten
    np.testing.assert_array_equal(draw_indices(np.random.default_rng(0), 5, 10), np.arange(5))


def test_morphometric_reader_measures_a_bar():
    g = CausalGraph.parse("thickness -> intensity")
    img = -torch.ones(1, 1, 28, 28)
    img[0, 0, 4:24, 12:16] = 200 / 127.5 - 1
    out = morphometric_reader(g)(img)
    assert out["thickness"][0] == pytest.approx(4.0, abs=0.3)
    assert out["intensity"][0] == pytest.approx(200.0, abs=0.6)
    assert morphometric_reader(CausalGraph.parse("a -> b")) is None
    with pytest.raises(ValueError, match="28, 28"):  # a resized digit's thickness is in its own pixels, not the labels'
        morphometric_reader(g)(torch.nn.functional.interpolate(img, size=32))
    img[0, 0, 0, 0] = float("nan")
    with pytest.raises(DivergedError, match="1 non-finite pixels"):  # not a blank digit measured as thickness 0
        morphometric_reader(g)(img)


def test_reversibility_intervenes_back_on_the_counterfactual_not_the_original(rendered):
    """An edit that brightens every pixel by 0.02: going there and back is two edits away from the original."""
    test, images, labels, classes = rendered
    drifting = lambda images_, do, labels_, classes_: (images_ + 0.02, np.asarray(labels_, float).copy())  # noqa: E731
    rev = reversibility(drifting, images, labels, labels, test.graph, classes)
    for var in test.graph.variables:
        assert rev[var]["l1_there"] == pytest.approx(0.01, rel=1e-5)
        assert rev[var]["l1_back"] == pytest.approx(0.02, rel=1e-5)
