"""The training split: labels kept, resolution, and bad data refused before training."""

import pytest
import torch

from causaldiffae.checkpoint import load_run
from causaldiffae.config import ConfigError
from causaldiffae.data import DataError
from causaldiffae.training import labeled_mask, train
from training_fixtures import synthetic_dataset, tiny_config


def test_labeled_subset_is_fixed_and_sized():
    mask = labeled_mask(100, 0.3, seed=0)
    assert mask.sum() == 30 and torch.equal(mask, labeled_mask(100, 0.3, seed=0))
    assert labeled_mask(10, 1e-6, seed=0).sum() == 1


def test_an_in_memory_dataset_is_resized_to_the_recorded_resolution(tmp_path):
    data = synthetic_dataset(n=16, size=8)
    run = train(tiny_config("train.steps=1", "data.resolution=16"), data, tmp_path / "run", progress=False)
    model, config = load_run(run)
    assert config.data.resolution == 16 and tuple(model.image_shape) == (1, 16, 16)
    assert data.images.shape[1:3] == (8, 8)  # the caller's dataset is left as it was


@pytest.mark.parametrize(
    "overrides,size,graph,error,match",
    [
        (("model.channel_mult=[1,2,2]",), 10, "a -> b", ConfigError, r"model.channel_mult: image size 10x10 is not divisible by 4"),
        (("data.graph=a -> zz",), 8, "a -> b", ConfigError, r"data.graph: variable 'zz' is missing from the data synthetic \(it has: a, b\); "
         r"pass data.graph=null to train on the data's own graph, a -> b$"),
        (("train.batch_size=64",), 8, "a -> b", DataError,
         r"synthetic: 16 training images, fewer than train.batch_size=64; pass a smaller one, e.g. train.batch_size=16"),
    ],
)
def test_bad_data_is_refused_before_training(tmp_path, overrides, size, graph, error, match):
    with pytest.raises(error, match=match):
        train(tiny_config(*overrides), synthetic_dataset(n=16, size=size, graph=graph), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("graph, message", [
    ("a -> b -> a", "data.graph: the graph has a cycle"),
    ("missing/graph.yaml", "data.graph: graph file not found"),
])
def test_a_bad_data_graph_fails_before_any_image_is_decoded(tmp_path, monkeypatch, graph, message):
    import causaldiffae.data

    monkeypatch.setattr(causaldiffae.data, "load_dataset", lambda *a, **k: pytest.fail("images were decoded"))
    with pytest.raises(ConfigError, match=message):
        train(tiny_config(f"data.graph={graph}"), tmp_path / "data", tmp_path / "run", progress=False)
