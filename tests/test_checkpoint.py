"""Run folders: safetensors weights and a YAML config, and clear errors for anything else."""

from pathlib import Path

import pytest
from training_fixtures import synthetic_dataset, tiny_config

from causaldiffae.checkpoint import CheckpointError, checkpoint_dirs, load_run, read_model_meta, save_config
from causaldiffae.training import train


def test_load_run_without_a_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "predictors.json").write_text("{}")  # some other command's folder
    with pytest.raises(CheckpointError, match="no config.yaml; is this a run folder"):
        load_run(tmp_path / "run")
    save_config(tmp_path / "run", tiny_config())
    with pytest.raises(CheckpointError, match="no model.safetensors yet"):
        load_run(tmp_path / "run")
    with pytest.raises(CheckpointError, match="not found"):
        load_run(tmp_path / "missing")
    with pytest.raises(CheckpointError, match=r"predictors.json is a file, not a run folder; pass the folder that holds it \("):
        load_run(tmp_path / "run" / "predictors.json")


def test_load_run_names_a_corrupt_or_mismatched_weights_file(tmp_path):
    run = train(tiny_config("train.steps=1"), synthetic_dataset(n=16), tmp_path / "run", progress=False)
    weights = run / "model.safetensors"
    good = weights.read_bytes()
    save_config(run, tiny_config("train.steps=1", "model.base_channels=16"))
    with pytest.raises(CheckpointError, match="model.safetensors: the weights do not fit the model that .*config.yaml describes"):
        load_run(run)
    weights.write_bytes(good[:40])
    with pytest.raises(CheckpointError, match="model.safetensors: not a readable safetensors file"):
        load_run(run)
    (run / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(CheckpointError, match="config.yaml: invalid YAML at line 2, column 1: "):
        load_run(run)


def test_a_linked_checkpoints_folder_is_refused_before_anything_is_pruned(tmp_path):
    """Old checkpoints are deleted as new ones come: through a link that would delete another folder's contents."""
    victim = tmp_path / "elsewhere"
    (victim / "step-0000000").mkdir(parents=True)
    (victim / "step-0000000" / "state.json").write_text("{}")
    (victim / "step-0000000" / "notes.txt").write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    save_config(run, tiny_config("train.steps=4", "train.keep_checkpoints=1"))
    (run / "checkpoints").symlink_to(victim)
    with pytest.raises(CheckpointError, match="checkpoints is a link"):
        train(tiny_config("train.steps=4", "train.keep_checkpoints=1"), synthetic_dataset(n=8), run, resume=True, progress=False)
    assert (victim / "step-0000000" / "notes.txt").read_text() == "keep me"


def test_oddly_named_step_folders_are_not_checkpoints(tmp_path):
    run = train(tiny_config("train.steps=1"), synthetic_dataset(n=16), tmp_path / "run", progress=False)
    odd = run / "checkpoints" / "step-latest"
    odd.mkdir()
    (odd / "state.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"no checkpoint at step 5 \(kept: 1\)"):
        load_run(run, step=5)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One tiny trained run; tests that damage it work on a copy."""
    return train(tiny_config("train.steps=1"), synthetic_dataset(n=16), tmp_path_factory.mktemp("ckpt") / "run", progress=False)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"image_shape": [1, 28000, 28000]}, r"image_shape \[1, 28000, 28000\] is not \[channels 1..4, height, width 1..1024\]"),
        ({"image_shape": 5}, "image_shape 5 is not"),
        ({"num_classes": 3_000_000_000}, "num_classes 3000000000 is not a whole number in 0..100000"),
        ({"image_shape": [1, 28000, 16]}, r"image_shape \[1, 28000, 16\] is not"),  # the height alone
        ({"image_shape": [5, 16, 16]}, r"image_shape \[5, 16, 16\] is not"),
        ({"num_classes": True}, "num_classes True is not a whole number"),
        ({"step": "abc"}, "step 'abc' is not a whole number"),
        ({"graph": None}, r"missing causaldiffae metadata \(graph, image shape\)"),
        ({"image_shape": None}, r"missing causaldiffae metadata \(graph, image shape\)"),
    ],
)
def test_model_metadata_that_would_size_a_huge_model_is_refused_before_building_it(trained_run, tmp_path, changes, message):
    """A ``None`` change removes the key."""
    import shutil

    run = _with_meta(Path(shutil.copytree(trained_run, tmp_path / "run")), changes)
    with pytest.raises(CheckpointError, match=message):
        load_run(run)


def _with_meta(run: Path, changes: dict) -> Path:
    """``run``'s weights with ``changes`` made to their metadata (``None`` removes the key)."""
    import json

    from safetensors.torch import load_file, save_file

    weights = run / "model.safetensors"
    meta = {k: v for k, v in {**read_model_meta(weights), **changes}.items() if v is not None}
    save_file(load_file(str(weights)), str(weights), metadata={"causaldiffae": json.dumps(meta)})
    return run


def test_the_weights_keep_how_the_training_images_are_framed(trained_run, tmp_path):
    """The middle 99% of the frames' brightness, the 99.5th percentile of the centroids' offsets, the
    middle 99% and median of the extents and of the edge widths, which ``counterfactual --images``
    holds files to and ``--frame`` draws them at; runs from before they were kept still load."""
    import shutil

    import numpy as np

    from causaldiffae.data.framing import centroid_offset, edge_brightness, edge_width, extent

    images = synthetic_dataset(n=16).images
    edges, offsets, extents = edge_brightness(images), centroid_offset(images), extent(images)
    meta = read_model_meta(trained_run / "model.safetensors")
    low, high = meta["edge_brightness"]
    assert 0 < edges.min() <= low < high <= edges.max()
    assert (low, high) == tuple(np.round(np.quantile(edges, [0.005, 0.995]), 4))
    assert 0 < meta["centroid_offset"] == round(float(np.quantile(offsets, 0.995)), 4)
    assert 0 < extents.min() <= meta["extent"][0] <= meta["extent"][1] <= meta["extent"][2] <= extents.max()
    assert meta["extent"] == list(np.round(np.quantile(extents, [0.005, 0.5, 0.995]), 4))
    assert meta["edge_width"] == list(np.round(np.quantile(edge_width(images), [0.005, 0.5, 0.995]), 4))
    assert load_run(trained_run)[0].framing == {key: meta[key] for key in ("edge_brightness", "centroid_offset", "extent", "edge_width")}
    old = load_run(_with_meta(Path(shutil.copytree(trained_run, tmp_path / "old")), {"edge_brightness": None, "centroid_offset": None, "extent": None, "edge_width": None}))
    assert old[0].framing == {}


@pytest.mark.parametrize("changes, message", [
    *[({"edge_brightness": edge}, r"edge_brightness .* is not \[low, high\] within \[0, 1\]$")
      for edge in ([0.5], [0.2, 1.5], [0.6, 0.4], ["0", "1"], 0.3, [True, 1])],
    *[({"edge_width": span}, r"edge_width .* is not \[low, median, high\] within \[0, 100\]$")
      for span in ([1.3], [1.0, 1.3, 1e9], [1.5, 1.3, 2.0], "1.3", [1.0, float("nan"), 2.0])],
    *[({"extent": span}, r"extent .* is not \[low, median, high\] within \[0, 1\]$")
      for span in ([0.5, 0.7], [0.2, 0.5, 1.5], [0.4, 0.9, 0.6], "0.5", [0.5, "0.6", 0.7])],
    *[({"centroid_offset": offset}, r"centroid_offset .* is not a number in \[0, 1\]$") for offset in (-0.1, 2, "0.1", [0.1], True)],
])
def test_a_framing_that_is_not_fractions_is_refused(trained_run, tmp_path, changes, message):
    import shutil

    run = _with_meta(Path(shutil.copytree(trained_run, tmp_path / "run")), changes)
    with pytest.raises(CheckpointError, match=message):
        load_run(run)


def test_checkpoints_sort_by_step_number_and_take_only_their_own_names(tmp_path):
    for name in ("step-9999999", "step-10000000", "step-00000006", "step-0000005"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
        (tmp_path / "checkpoints" / name / "state.json").write_text("{}")
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-0000005", "step-9999999", "step-10000000"]


def test_a_linked_step_folder_is_not_one_of_the_runs_checkpoints(tmp_path):
    """Pruning and ``--step`` see only the run's own folders: a link to a checkpoint elsewhere is neither pruned nor loaded."""
    import shutil

    run = train(tiny_config("train.steps=1"), synthetic_dataset(n=16), tmp_path / "run", progress=False)
    shutil.copytree(run / "checkpoints" / "step-0000001", tmp_path / "elsewhere")
    (run / "checkpoints" / "step-0000009").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert [p.name for p in checkpoint_dirs(run)] == ["step-0000001"]
    with pytest.raises(CheckpointError, match=r"no checkpoint at step 9: step-0000009 is a link, not one of the run's own folders \(kept: 1\)"):
        load_run(run, step=9)
    assert load_run(run, step=1)[0].trained_steps == 1
    (run / "checkpoints" / "step-0000001" / "state.json").unlink()
    with pytest.raises(CheckpointError, match=r"no checkpoint at step 1: step-0000001 has no state.json \(incomplete\) \(kept: none\)"):
        load_run(run, step=1)


def test_a_kept_checkpoint_with_broken_ema_weights_is_named(tmp_path):
    run = train(tiny_config("train.steps=1"), synthetic_dataset(n=16), tmp_path / "run", progress=False)
    ema = run / "checkpoints" / "step-0000001" / "ema.safetensors"
    ema.write_bytes(ema.read_bytes()[:-100])  # the header intact, the tensors cut short
    with pytest.raises(CheckpointError, match=r"step-0000001/ema.safetensors: not a readable safetensors file"):
        load_run(run, step=1)
    ema.unlink()
    with pytest.raises(CheckpointError, match=r"step-0000001/ema.safetensors: missing; the checkpoint at step 1 is incomplete"):
        load_run(run, step=1)
    assert load_run(run)[0].trained_steps == 1  # the exported weights are untouched
