"""Run folders: safetensors weights and a YAML config, and clear errors for anything else."""

import pytest
from training_fixtures import synthetic_dataset, tiny_config

from causaldiffae.checkpoint import CheckpointError, load_run, save_config
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
