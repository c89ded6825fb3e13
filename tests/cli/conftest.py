"""One tiny run and its predictors, trained once for every CLI test that needs them."""

import pytest
from cli_fixtures import TINY_MODEL, make_blobs

from causaldiffae.cli import main
from causaldiffae.training import train


@pytest.fixture(scope="session")
def setup(tmp_path_factory):
    from causaldiffae.config import ExperimentConfig

    base = tmp_path_factory.mktemp("cfcli")
    data = base / "blobs"
    make_blobs(data)
    config = ExperimentConfig.from_dict(
        {
            "name": "tiny", "model": TINY_MODEL, "diffusion": {"num_train_timesteps": 100, "sample_steps": 10},
            "train": {"steps": 2, "batch_size": 8, "lr": 1e-3, "log_every": 1, "sample_every": 1000, "checkpoint_every": 2,
                      "kl_anneal_steps": 2, "grid_steps": 2},
        },
        "tiny",
    )
    run = train(config, data, base / "run", progress=False)
    pred = base / "pred"
    assert main(["predictors", "--data", str(data), "--out", str(pred), "--epochs", "1", "--width", "4", "--no-progress"]) == 0
    return base, data, run, pred
