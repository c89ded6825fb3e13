import json
import re
from pathlib import Path

import numpy as np
import pytest
from cli_fixtures import write_morpho_split

from causaldiffae.checkpoint import load_run
from causaldiffae.cli import main

TINY = [
    "data.resolution=8",
    "model.latent_block=2",
    "model.encoder_channels=[8]",
    "model.mechanism_hidden=8",
    "model.base_channels=8",
    "model.channel_mult=[1,2]",
    "model.norm_groups=8",
    "model.attention_head_dim=8",
    "diffusion.num_train_timesteps=50",
    "diffusion.sample_steps=5",
    "train.batch_size=8",
    "train.steps=2",
    "train.log_every=1",
    "train.checkpoint_every=2",
    "train.sample_every=2",
    "train.grid_steps=2",
]


@pytest.fixture
def morpho_dir(tmp_path: Path) -> Path:
    """A 16-digit MorphoMNIST-format folder (IDX + morpho CSV)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "morpho"
    folder.mkdir()
    write_morpho_split(folder, "train", rng.integers(0, 10, 16), rng)
    return folder


def test_train_resume_and_outputs(morpho_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--preset", "morphomnist-cpu", *TINY[:8], "--data", str(morpho_dir), "--out", str(out), *TINY[8:], "--no-progress",
            "--mixed-precision", "bf16"]
    assert main(args) == 0  # overrides may sit between options
    assert {"config.yaml", "model.safetensors", "metrics.jsonl", "checkpoints", "samples"} <= {p.name for p in out.iterdir()}
    plan = re.search(r"^training causaldiffae \((\d+\.\d\d)M parameters\) on 16 morphomnist images of 1x8x8, graph thickness -> intensity: "
                     r"batch 8, bf16, about \d+ MB a step, steps 1\.\.2$", capsys.readouterr().out, re.M)  # the run's scale before its first step
    assert plan is not None and float(plan[1]) == pytest.approx(sum(p.numel() for p in load_run(out)[0].parameters()) / 1e6, abs=0.005)
    assert main(["train", "--resume", "--data", str(morpho_dir), "--out", str(out), "--no-progress", "train.steps=3"]) == 0
    assert re.search(r", bf16, about \d+ MB a step, steps 3\.\.3\n", capsys.readouterr().out)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    state = json.loads((out / "checkpoints" / "step-0000003" / "state.json").read_text())
    assert state["mixed_precision"] == "bf16"  # the resume, given no --mixed-precision, kept the run's


@pytest.mark.parametrize(
    "extra,match",
    [
        (["model.widht=3"], "unknown key 'model.widht'"),
        (["model.labeled_fraction=0"], "labeled_fraction"),
        (["data.graph=thickness -> slant"], "'slant' is missing from the data"),
        (["data.resolution=9"], "9x9 is not divisible by 2"),
        (["--time-limit", "0"], "--time-limit 0: must be a positive number of minutes"),
        (["--time-limit", "nan"], "--time-limit nan: must be a positive number of minutes"),  # would never fire
    ],
)
def test_bad_input_is_one_line_exit_2(morpho_dir, tmp_path, capsys, extra, match):
    code = main(["train", "--preset", "morphomnist-cpu", "--data", str(morpho_dir), "--out", str(tmp_path / "r"), "--no-progress"] + TINY + extra)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("causaldiffae train: error:") and match.split("'")[0] in err
    import re

    assert re.search(match, err), err


def test_unknown_preset_and_existing_run(morpho_dir, tmp_path, capsys):
    assert main(["train", "--preset", "nope", "--data", str(morpho_dir), "--out", str(tmp_path / "r")]) == 2
    assert "unknown preset 'nope' (valid:" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["train", "--preset", "morphomnist-cpu", "--data", str(morpho_dir), "--out", str(out), "--no-progress"] + TINY) == 0
    assert main(["train", "--preset", "morphomnist-cpu", "--data", str(morpho_dir), "--out", str(out), "--no-progress"] + TINY) == 2
    assert "pass --resume" in capsys.readouterr().err
    code = main(["train", "--resume", "--preset", "morphomnist-cpu", "--data", str(morpho_dir), "--out", str(out)] + TINY + ["train.lr=0.01"])
    assert code == 2 and "disagrees" in capsys.readouterr().err


def test_unknown_options_and_stray_words_are_refused(morpho_dir, tmp_path, capsys):
    base = ["--preset", "morphomnist-cpu", "--data", str(morpho_dir), "--out", str(tmp_path / "r")]
    for argv in (["train", *base, "--bogus"], ["demo", "train.steps=3"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert f"causaldiffae {argv[0]}: error: unrecognized arguments: {argv[-1]}" in capsys.readouterr().err
    assert main(["train", *base, "train.steps=3", "--no-progress", "stray"]) == 2
    assert "override 'stray' is not key=value" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_preset_for_other_data_gets_a_note(morpho_dir, capsys):
    from causaldiffae.cli.train import note_preset_for_other_data

    note_preset_for_other_data("pendulum-cpu", str(morpho_dir))
    assert capsys.readouterr().err == f"note: preset pendulum-cpu is sized for pendulum data; {morpho_dir} is a morphomnist dataset\n"
    note_preset_for_other_data("morphomnist-cpu", str(morpho_dir))
    folder = morpho_dir.parent / "mine"
    folder.mkdir()
    (folder / "labels.csv").write_text("file,a\n")
    (folder / "graph.yaml").write_text("variables: [a]\n")
    note_preset_for_other_data("morphomnist-cpu", str(folder))  # README's own recipe for a user folder
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("fails", [False, True])
def test_train_ends_the_launchs_process_group_whether_or_not_training_succeeds(morpho_dir, tmp_path, monkeypatch, fails):
    """The library's train() leaves a torchrun launch's process group up (a script may train again);
    the command ends it itself, so gloo's threads are not left to wind down at interpreter shutdown."""
    import torch.distributed as dist

    import causaldiffae.training
    from causaldiffae.training import TrainingError

    seen = []

    def fake_train(config, data, out, **kwargs):
        seen.append(dist.is_initialized())
        if fails:
            raise TrainingError("non-finite loss (nan) at step 1")
        return out

    monkeypatch.setattr(causaldiffae.training, "train", fake_train)
    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1)
    try:
        code = main(["train", "--preset", "morphomnist-cpu", "--data", str(morpho_dir), "--out", str(tmp_path / "run"), "--no-progress"])
        assert seen == [True] and code == (2 if fails else 0)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
