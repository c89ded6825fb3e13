import json
import re
from dataclasses import asdict

import numpy as np
import pytest
import torch

from causaldiffae.data.base import CausalImageDataset, images_tensor, resize_images
from causaldiffae.evaluation.predictors import (
    PredictorError,
    PredictorMeta,
    Predictors,
    _check_fields,
    default_epochs,
    load_predictors,
    random_shift,
    save_predictors,
    train_predictors,
)
from causaldiffae.errors import UserError
from causaldiffae.graph import CausalGraph


@pytest.fixture(scope="module")
def trained(squares):
    train, test = squares
    return train_predictors(train, test, epochs=6, batch_size=32, width=8, feature_dim=16, seed=0)


def test_predictors_learn_the_variables_and_classes(trained, squares):
    train, test = squares
    m = trained.meta.metrics
    assert m["split"] == "test" and m["n"] == len(test)
    # far better than always guessing the train mean
    for i, v in enumerate(train.variables):
        baseline = np.mean(np.abs(test.labels[:, i] - train.label_mean[i]))
        assert m["mae"][v] < 0.5 * baseline, (v, m["mae"][v], baseline)
    assert m["accuracy"] > 0.9
    feats = trained.features(images_tensor(test)[:10])
    assert feats.shape == (10, 3 * 16)


def test_save_load_round_trip_and_mismatch_errors(trained, squares, tmp_path):
    train, test = squares
    out = save_predictors(trained, tmp_path / "pred")
    assert sorted(p.name for p in out.iterdir()) == ["predictors.json", "predictors.safetensors"]
    loaded = load_predictors(out, test)
    x = images_tensor(test)[:8]
    a, b = trained.predict(x), loaded.predict(x)
    for k in a:
        np.testing.assert_allclose(a[k], b[k])

    other_graph = CausalImageDataset(
        test.images, test.labels, CausalGraph(("size", "brightness")), test.label_mean, test.label_std,
        name="squares", split="test",
    )
    with pytest.raises(PredictorError, match="graph edges"):
        load_predictors(out, other_graph)
    renamed = CausalImageDataset(test.images, test.labels, test.graph, test.label_mean, test.label_std, name="squares-copy", split="test")
    assert load_predictors(out, renamed).meta.dataset == "squares"  # a renamed copy: the same training labels
    other_data = CausalImageDataset(test.images, test.labels, test.graph, test.label_mean * 1.001, test.label_std, name="pendulum", split="test")
    with pytest.raises(PredictorError, match="'squares', not 'pendulum' \\(and its training labels differ\\)"):
        load_predictors(out, other_data)
    resized = CausalImageDataset(resize_images(test.images, 8), test.labels, test.graph, test.label_mean, test.label_std,
                                 name="squares", split="test")
    with pytest.raises(PredictorError, match=r"are \(1, 8, 8\) .*causaldiffae predictors --resolution 8\)$"):
        load_predictors(out, resized)  # names the fix, not just the mismatch
    with pytest.raises(PredictorError, match="no predictors here"):
        load_predictors(tmp_path / "nothing")
    meta_text = (out / "predictors.json").read_text()
    for field, value, shown in (("width", '"16"', "'16'"), ("width", "200000", "200000"), ("label_std", '["x", 1]', r"\['x', 1\]"),
                                 ("label_std", "[1" + "0" * 400 + ", 1]", r"\[10+"), ("edges", "5", "5"),
                                 ("metrics", "{}", r"\{\}"), ("metrics", '{"mae": {"a": "x"}}', r"\{'mae': \{'a': 'x'\}\}")):
        meta = json.loads(meta_text)
        meta[field] = json.loads(value)
        (out / "predictors.json").write_text(json.dumps(meta))
        with pytest.raises(PredictorError, match=rf"predictors.json: field '{field}' holds {shown}, which predictors cannot be built or reported from"):
            load_predictors(out)
    meta = json.loads(meta_text)
    (out / "predictors.json").write_text(json.dumps({**meta, "width": 4096}))  # each field in range, the networks terabytes
    with pytest.raises(PredictorError, match=r"the networks would have [\d.]+G parameters, more than the 2G"):
        load_predictors(out)
    (out / "predictors.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(PredictorError, match="unreadable predictor metadata"):
        load_predictors(out)
    (out / "predictors.json").write_text(meta_text)
    (out / "predictors.safetensors").write_bytes(b"garbage")
    with pytest.raises(PredictorError, match="predictors.safetensors"):
        load_predictors(out)


@pytest.mark.parametrize("field, value, shown", [
    ("variables", [], "[]"),
    ("variables", [1, 2], "[1, 2]"),
    ("label_mean", [0.0], "[0.0]"),  # one value for two variables
    ("label_mean", ["x", 1], "['x', 1]"),
    ("label_std", [float("nan"), 1.0], "[nan, 1.0]"),
    ("label_std", [1.0, float("inf")], "[1.0, inf]"),
    ("feature_dim", "16", "'16'"),
    ("image_shape", [1, 28000, 28000], "[1, 28000, 28000]"),
    ("num_classes", -1, "-1"),
    ("num_classes", True, "True"),
])
def test_predictor_metadata_that_cannot_build_networks_is_refused_by_field(trained, tmp_path, field, value, shown):
    """Each bad field of a predictors.json is named with what it holds, before any network is built from it."""
    meta = asdict(trained.meta)
    source = tmp_path / "predictors.json"
    _check_fields(PredictorMeta(**meta), source)  # the metadata as trained passes
    with pytest.raises(PredictorError, match=re.escape(f"predictors.json: field '{field}' holds {shown}, which predictors cannot be built or reported from")):
        _check_fields(PredictorMeta(**{**meta, field: value}), source)


def test_random_shift_moves_content_and_pads_background():
    x = -torch.ones(4, 1, 6, 6)
    x[:, :, 2:4, 2:4] = 1.0
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    drawn = torch.Generator().manual_seed(0)
    dx, dy = torch.randint(0, 5, (4,), generator=drawn), torch.randint(0, 5, (4,), generator=drawn)
    expected = -torch.ones_like(x)
    for i in range(4):  # the square, rows and columns 2..3, moved by (2 - dy, 2 - dx)
        expected[i, :, 4 - dy[i] : 6 - dy[i], 4 - dx[i] : 6 - dx[i]] = 1.0
    assert torch.equal(y, expected) and not torch.equal(y, x)
    assert random_shift(x, 0, torch.Generator()).equal(x)


def test_a_batch_of_one_or_a_train_split_of_one_is_refused(squares):
    """BatchNorm needs two images a batch: either would save untrained networks as the instrument."""
    train, test = squares
    with pytest.raises(UserError, match="batch_size must be at least 2, got 1"):
        train_predictors(train, test, epochs=1, batch_size=1)
    one = CausalImageDataset(train.images[:1], train.labels[:1], train.graph, train.label_mean, train.label_std,
                             name=train.name, split="train", classes=train.classes[:1], num_classes=train.num_classes)
    with pytest.raises(UserError, match="at least 2 train images and 1 test image, got 1 and 128"):
        train_predictors(one, test, epochs=1)


def test_the_default_epochs_keep_six_passes_on_a_large_split_and_400_steps_on_a_small_one():
    assert default_epochs(4500, 64) == 6  # MorphoMNIST's train split: the shipped predictors' 426 steps
    assert default_epochs(5482, 64) == 6
    assert default_epochs(270, 64) == 80  # 5 steps a pass
    assert default_epochs(2, 64) == 400


@pytest.mark.parametrize("epochs", [1, 5])
def test_a_run_of_five_steps_or_fewer_trains(squares, epochs):
    """OneCycleLR divides by zero at exactly 5 steps; a smoke-test-sized run must still train."""
    train, test = squares
    model = train_predictors(train, test, epochs=epochs, batch_size=len(train), width=4, feature_dim=8, seed=0)
    assert np.isfinite(model.meta.metrics["mae"][train.variables[0]])
    torch.manual_seed(0)  # the initial weights train_predictors starts from
    untrained = Predictors(model.meta)
    moved = [not torch.equal(a, b) for a, b in zip(model.state_dict().values(), untrained.state_dict().values())]
    assert sum(moved) > len(moved) // 2  # the steps ran: most tensors changed
