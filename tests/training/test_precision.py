"""Autocast precision: chosen, kept on resume, emulated bf16 warned about."""

import json

import pytest
import torch

from causaldiffae.checkpoint import checkpoint_dirs
from causaldiffae.training import TrainingError, train
from causaldiffae.training.precision import choose_precision, release_autocast
from training_fixtures import EMULATED_BF16_IS_NOT_THE_SUBJECT, read_metrics, synthetic_dataset, tiny_config


def test_resume_restores_the_fp16_loss_scale(tmp_path, monkeypatch):
    """fp16 training scales its loss, and the scale moves as it trains; a resume must carry it on
    (from the default start value it would skip or take other steps). A CPU grad scaler stands in
    for the CUDA one accelerate makes under fp16."""
    import accelerate

    class ScaledAccelerator(accelerate.Accelerator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)

    monkeypatch.setattr(accelerate, "Accelerator", ScaledAccelerator)
    data = synthetic_dataset(n=16)
    full = train(tiny_config("train.steps=4", "train.checkpoint_every=2"), data, tmp_path / "full", progress=False)
    part = train(tiny_config("train.steps=2", "train.checkpoint_every=2"), data, tmp_path / "part", progress=False)
    train(tiny_config("train.steps=4", "train.checkpoint_every=2"), data, part, resume=True, progress=False)
    states = [json.loads((run / "checkpoints" / "step-0000004" / "state.json").read_text())["grad_scaler"] for run in (full, part)]
    assert states[0] == states[1] and states[0]["scale"] == 2.0**14  # grown once per step, across the cut
    assert [m["loss"] for m in read_metrics(part)] == [m["loss"] for m in read_metrics(full)]


@EMULATED_BF16_IS_NOT_THE_SUBJECT
def test_resume_keeps_the_runs_autocast_unless_told_and_names_a_change(tmp_path, capsys):
    data = synthetic_dataset(n=16)
    full = train(tiny_config("train.steps=4"), data, tmp_path / "full", mixed_precision="bf16", progress=False)
    part = train(tiny_config("train.steps=2"), data, tmp_path / "part", mixed_precision="bf16", progress=False)
    train(tiny_config("train.steps=4"), data, part, resume=True, progress=False)  # no --mixed-precision given
    assert [m["loss"] for m in read_metrics(part)] == [m["loss"] for m in read_metrics(full)]
    capsys.readouterr()
    train(tiny_config("train.steps=6"), data, part, resume=True, mixed_precision="no", progress=False)
    assert "with train.steps 4 -> 6, mixed precision bf16 -> no" in capsys.readouterr().out


def test_an_fp16_run_resumed_on_the_cpu_names_the_runs_precision_not_a_flag(tmp_path):
    run = train(tiny_config("train.steps=2"), synthetic_dataset(n=16), tmp_path / "run", progress=False)
    state = checkpoint_dirs(run)[-1] / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "mixed_precision": "fp16"}))  # as a GPU run records it
    with pytest.raises(TrainingError, match=r"step-0000002: the run trains with fp16 autocast, which needs a GPU; pass --mixed-precision"):
        train(tiny_config("train.steps=3"), synthetic_dataset(n=16), run, resume=True, progress=False)


@EMULATED_BF16_IS_NOT_THE_SUBJECT
def test_one_process_trains_runs_of_different_precisions_but_leaves_other_states_alone(tmp_path, monkeypatch):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    data = synthetic_dataset(n=16)
    for i, precision in enumerate(("bf16", "no", "bf16")):
        run = train(tiny_config("train.steps=1"), data, tmp_path / f"run{i}", mixed_precision=precision, progress=False)
        assert json.loads((checkpoint_dirs(run)[-1] / "state.json").read_text())["mixed_precision"] == precision
        assert AcceleratorState().mixed_precision == precision
    held = AcceleratorState()
    release_autocast("bf16")  # the precision it has: nothing to release
    assert held.__dict__ and held.mixed_precision == "bf16"
    monkeypatch.setitem(PartialState._shared_state, "num_processes", 2)  # as under torchrun
    release_autocast("no")
    assert held.mixed_precision == "bf16"
    with pytest.raises(ValueError, match="already been initialized"):
        Accelerator(mixed_precision="no", cpu=True)
    monkeypatch.setitem(PartialState._shared_state, "num_processes", 1)
    monkeypatch.setitem(AcceleratorState._shared_state, "_mixed_precision", "fp16")  # a state the caller built, not train()
    release_autocast("no")
    assert held.__dict__ and held.mixed_precision == "fp16"


@pytest.mark.parametrize("native, warned", [(False, True), (True, False), (None, False)])
def test_bf16_on_a_cpu_that_emulates_it_is_allowed_with_a_warning_that_says_so(monkeypatch, recwarn, native, warned):
    monkeypatch.setattr("causaldiffae.training.precision.has_accelerator", lambda: False)
    monkeypatch.setattr("causaldiffae.training.precision.cpu_bf16", lambda: native)
    assert choose_precision("bf16", None, None, []) == "bf16"
    assert [str(w.message).split(":")[0] for w in recwarn] == (["--mixed-precision bf16 on a CPU without avx512_bf16/amx_bf16 is emulated"]
                                                              if warned else [])
