import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from causaldiffae.checkpoint import CheckpointError, checkpoint_dirs, load_run, read_config, save_config
from causaldiffae.config import ConfigError
from causaldiffae.data import DataError
from causaldiffae.errors import UserError
from causaldiffae.models import CausalDiffAE
from causaldiffae.training import (
    TrainingError,
    _choose_precision,
    _release_autocast,
    ema_decay,
    kl_scale,
    labeled_mask,
    learning_rate,
    prepare_data,
    resolve_resume,
    step_generator,
    step_indices,
    train,
)
from training_fixtures import exploding_loss, synthetic_dataset, tiny_config

# Training in bf16 on a CPU without native bf16 warns (tested below); tests that use bf16 for other reasons filter it.
_EMULATED_BF16_IS_NOT_THE_SUBJECT = pytest.mark.filterwarnings("ignore:--mixed-precision bf16 on a CPU:UserWarning")


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_kl_schedule_is_linear_then_flat():
    assert kl_scale(0, 100) == 0.0
    assert kl_scale(50, 100) == 0.5
    assert kl_scale(100, 100) == 1.0 and kl_scale(5000, 100) == 1.0
    assert kl_scale(0, 0) == 1.0
    assert learning_rate(0, 1e-3, 10) == pytest.approx(1e-4) and learning_rate(20, 1e-3, 10) == 1e-3


def test_data_order_is_a_function_of_seed_and_epoch():
    a = [step_indices(20, 8, seed=1, step=s) for s in range(4)]
    assert torch.equal(a[0], step_indices(20, 8, seed=1, step=0))
    assert len(set(torch.cat(a[:2]).tolist())) == 16  # one epoch (2 steps) never repeats a sample
    assert not torch.equal(a[0], a[2])  # a new permutation in epoch 1
    assert not torch.equal(a[0], step_indices(20, 8, seed=2, step=0))


def test_labeled_subset_is_fixed_and_sized():
    mask = labeled_mask(100, 0.3, seed=0)
    assert mask.sum() == 30 and torch.equal(mask, labeled_mask(100, 0.3, seed=0))
    assert labeled_mask(10, 1e-6, seed=0).sum() == 1


def test_loss_decreases_and_run_folder_is_complete(tmp_path):
    config = tiny_config("train.steps=40", "train.log_every=5", "train.checkpoint_every=20", "train.sample_every=40", "train.kl_anneal_steps=20")
    run = train(config, synthetic_dataset(n=32), tmp_path / "run", progress=False)
    metrics = _metrics(run)
    assert [m["step"] for m in metrics] == list(range(5, 41, 5))
    assert metrics[-1]["mse"] < 0.6 * metrics[0]["mse"], [m["mse"] for m in metrics]
    assert metrics[0]["kl_scale"] == pytest.approx(4 / 20) and metrics[-1]["kl_scale"] == 1.0
    assert [p.name for p in checkpoint_dirs(run)] == ["step-0000020", "step-0000040"]
    assert (run / "samples" / "step-0000040.png").is_file()
    assert (run / "config.yaml").is_file()
    model, config2 = load_run(run)
    assert isinstance(model, CausalDiffAE) and not model.training and config2 == config
    ema = load_file(str(run / "checkpoints" / "step-0000040" / "ema.safetensors"))
    assert torch.equal(model.state_dict()["decoder.project.weight"], ema["decoder.project.weight"])
    torch.testing.assert_close(model.label_mean.double(), torch.from_numpy(synthetic_dataset(n=32).label_mean))
    earlier, _ = load_run(run, step=20)
    ema20 = load_file(str(run / "checkpoints" / "step-0000020" / "ema.safetensors"))
    assert earlier.trained_steps == 20 and model.trained_steps == 40
    assert torch.equal(earlier.state_dict()["decoder.project.weight"], ema20["decoder.project.weight"])
    assert not torch.equal(ema20["decoder.project.weight"], ema["decoder.project.weight"])
    with pytest.raises(CheckpointError, match=r"no checkpoint at step 30 \(kept: 20, 40\)"):
        load_run(run, step=30)


def test_channels_last_trains_the_same_run(tmp_path):
    """train.channels_last only changes the memory layout: the logged losses agree to rounding."""
    runs = [train(tiny_config("train.steps=4", "train.log_every=1", f"train.channels_last={flag}"), synthetic_dataset(n=16),
                  tmp_path / flag, progress=False) for flag in ("false", "true")]
    plain, last = ([m["loss"] for m in _metrics(run)] for run in runs)
    assert len(plain) == 4 and plain == pytest.approx(last, rel=1e-4)


def test_a_v_prediction_run_learns_and_loads_as_one(tmp_path):
    config = tiny_config("train.steps=40", "train.log_every=5", "train.checkpoint_every=40", "train.sample_every=40",
                         "train.kl_anneal_steps=20", "diffusion.prediction_type=v_prediction")
    run = train(config, synthetic_dataset(n=32), tmp_path / "run", progress=False)
    metrics = _metrics(run)
    assert metrics[-1]["mse"] < 0.6 * metrics[0]["mse"], [m["mse"] for m in metrics]
    model, _ = load_run(run)
    assert model.prediction_type == "v_prediction" and model.scheduler.config.prediction_type == "v_prediction"


def test_sample_grids_place_their_steps_as_the_runs_counterfactuals(tmp_path, monkeypatch):
    import causaldiffae.diffusion as diffusion

    seen = []
    original = diffusion.ddim_timesteps

    def spy(*args, **kwargs):
        seen.append(kwargs.get("spacing"))
        return original(*args, **kwargs)

    monkeypatch.setattr(diffusion, "ddim_timesteps", spy)
    config = tiny_config("train.steps=1", "train.sample_every=1", "train.grid_steps=4", "diffusion.sample_spacing=quadratic")
    run = train(config, synthetic_dataset(n=8), tmp_path / "run", progress=False)
    assert (run / "samples" / "step-0000001.png").is_file() and seen == ["quadratic"]


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    data = synthetic_dataset(n=24)
    base = ("model.cond_drop_prob=0.3", "model.labeled_fraction=0.7", "model.dropout=0.1", "train.steps=6", "train.checkpoint_every=2")
    full = train(tiny_config(*base), data, tmp_path / "full", progress=False)
    part = train(tiny_config(*base[:-2], "train.steps=3", "train.checkpoint_every=2"), data, tmp_path / "part", progress=False)
    shutil.rmtree(part / "checkpoints" / "step-0000003")  # as if killed after step 3 was logged, before its checkpoint
    assert [m["step"] for m in _metrics(part)] == [1, 2, 3]
    # Step 3 was logged past the last checkpoint (step 2): resume must drop its line and redo it identically.
    config = resolve_resume(None, part, ["train.steps=6"])
    config = config.with_overrides(["train.checkpoint_every=2"])
    train(config, data, part, resume=True, progress=False)
    assert _metrics(part) == [{**m, "sec_per_step": _metrics(part)[i]["sec_per_step"], "images_per_sec": _metrics(part)[i]["images_per_sec"]} for i, m in enumerate(_metrics(full))]
    a = load_file(str(full / "checkpoints" / "step-0000006" / "model.safetensors"))
    b = load_file(str(part / "checkpoints" / "step-0000006" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_first_ctrl_c_stops_after_the_step_with_a_checkpoint_and_a_resume_carries_on(tmp_path, monkeypatch, capsys):
    import signal

    import causaldiffae.training as training

    data = synthetic_dataset(n=24)
    base = ("train.steps=4", "train.checkpoint_every=100")  # no checkpoint before the end but the interrupt's
    full = train(tiny_config(*base), data, tmp_path / "full", progress=False)
    rate = training.learning_rate

    def ctrl_c_in_step_two(step, *args):
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return rate(step, *args)

    monkeypatch.setattr(training, "learning_rate", ctrl_c_in_step_two)
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(*base), data, tmp_path / "part", progress=False)
    assert "interrupted: stopped at step 2 of 4 with a checkpoint; continue with --resume" in capsys.readouterr().out
    assert [p.name for p in checkpoint_dirs(tmp_path / "part")] == ["step-0000002"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    monkeypatch.setattr(training, "learning_rate", rate)
    train(resolve_resume(None, tmp_path / "part", []), data, tmp_path / "part", resume=True, progress=False)
    a, b = load_file(str(full / "model.safetensors")), load_file(str(tmp_path / "part" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_stops_after_the_step_then_reaches_its_own_handler_and_an_ignored_signal_stays_ignored(tmp_path, monkeypatch, capsys):
    import signal

    import causaldiffae.training as training

    class Terminated(Exception):
        pass

    def terminate(signum, frame):
        raise Terminated

    rate = training.learning_rate

    def signal_in_step_two(sig):
        def patched(step, *args):
            if step == 1:
                os.kill(os.getpid(), sig)
            return rate(step, *args)
        return patched

    data = synthetic_dataset(n=24)
    base = ("train.steps=4", "train.checkpoint_every=100")
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        monkeypatch.setattr(training, "learning_rate", signal_in_step_two(signal.SIGTERM))
        with pytest.raises(Terminated):  # the scheduler's signal is passed on once the checkpoint is written
            train(tiny_config(*base), data, tmp_path / "term", progress=False)
        assert [p.name for p in checkpoint_dirs(tmp_path / "term")] == ["step-0000002"]
        assert signal.getsignal(signal.SIGTERM) is terminate
    finally:
        signal.signal(signal.SIGTERM, previous)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a job started in the background
    try:
        monkeypatch.setattr(training, "learning_rate", signal_in_step_two(signal.SIGINT))
        train(tiny_config(*base), data, tmp_path / "ignored", progress=False)
        assert [p.name for p in checkpoint_dirs(tmp_path / "ignored")] == ["step-0000004"]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(
    "field, value, message",
    [("train", ("batch_size", 0), "train.batch_size=0: must be >= 1"), ("model", ("variant", "foo"), "model.variant='foo': expected one of"),
     ("train", ("lr", "fast"), "train.lr")],
)
def test_a_config_edited_in_python_is_checked_before_anything_is_written(tmp_path, field, value, message):
    config = tiny_config()
    setattr(getattr(config, field), *value)
    with pytest.raises(ConfigError, match=message):
        train(config, synthetic_dataset(n=16), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(TypeError, match="config: expected an ExperimentConfig"):
        train(config.to_dict(), synthetic_dataset(n=16), tmp_path / "run", progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"time_limit": -1.0}, "time_limit must be a finite number of seconds >= 0, got -1.0"),
    ({"time_limit": float("nan")}, "time_limit must be a finite number of seconds >= 0, got nan"),
    ({"mixed_precision": "fp8"}, "unknown mixed_precision 'fp8' \\(use no, bf16, fp16\\)"),
    ({"mixed_precision": "fp16"}, "--mixed-precision fp16 needs a GPU; on CPU use bf16"),
])
def test_bad_training_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(TrainingError, match=message):
        train(tiny_config(), synthetic_dataset(n=16), tmp_path / "run", progress=False, **kwargs)
    assert not (tmp_path / "run").exists()


def test_an_out_that_is_a_file_or_data_without_classes_for_a_class_conditional_model_is_refused(tmp_path):
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(TrainingError, match="--out .*file exists and is not a folder"):
        train(tiny_config(), synthetic_dataset(n=16), tmp_path / "file", progress=False)
    assert (tmp_path / "file").read_text() == "keep me"
    data = synthetic_dataset(n=16)
    data.classes, data.num_classes = None, 0
    with pytest.raises(ConfigError, match="model.class_conditional=true but the data synthetic has no classes"):
        train(tiny_config("model.class_conditional=true"), data, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_an_in_memory_dataset_is_resized_to_the_recorded_resolution(tmp_path):
    data = synthetic_dataset(n=16, size=8)
    run = train(tiny_config("train.steps=1", "data.resolution=16"), data, tmp_path / "run", progress=False)
    model, config = load_run(run)
    assert config.data.resolution == 16 and tuple(model.image_shape) == (1, 16, 16)
    assert data.images.shape[1:3] == (8, 8)  # the caller's dataset is left as it was


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
    assert [m["loss"] for m in _metrics(part)] == [m["loss"] for m in _metrics(full)]


def test_compiled_training_matches_eager_and_never_recompiles(tmp_path, monkeypatch):
    """``train.compile`` runs the loss through torch.compile with its mode. Traced by dynamo alone
    (backend "eager", seconds instead of minutes of code generation), the losses equal the eager
    run's, and a kl_scale that changes every step must not rebuild the graph (it did as a float)."""
    import torch._dynamo

    modes = []
    real_compile = torch.compile

    def trace_only(module, mode=None):
        modes.append(mode)
        return real_compile(module, backend="eager")

    monkeypatch.setattr(torch, "compile", trace_only)
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
    torch._dynamo.reset()
    data = synthetic_dataset(n=16)
    base = ("model.cond_drop_prob=0.3", "train.steps=4", "train.kl_anneal_steps=4")
    eager = train(tiny_config(*base), data, tmp_path / "eager", progress=False)
    compiled = train(tiny_config(*base, "train.compile=reduce-overhead"), data, tmp_path / "compiled", progress=False)
    torch._dynamo.reset()
    assert modes == ["reduce-overhead"]
    timing = ("sec_per_step", "images_per_sec")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]  # noqa: E731
    assert [m["kl_scale"] for m in _metrics(compiled)] == [0.0, 0.25, 0.5, 0.75]
    assert strip(_metrics(compiled)) == strip(_metrics(eager))


def _faulty_compile(fault: str):
    """A stand-in for torch.compile whose loss is right but whose gradients are wrong in one way."""

    def compile(module, mode=None):
        def loss(batch, kl, generator):
            if fault == "kl ignored":
                return module(batch, kl * 0, generator)
            out = module(batch, kl, generator)
            if fault == "halved":
                return {**out, "loss": 0.5 * out["loss"]}
            unet = [p for n, p in module.named_parameters() if n.startswith("decoder.unet.")]
            hurt = unet if fault == "unet zeroed" else unet[:1]  # the real CPU-inductor fault; one NaN gradient
            for p in hurt:  # the eager pass ran first; training stops at this check, so the hooks never outlive it
                p.register_hook(lambda g: torch.zeros_like(g) if fault == "unet zeroed" else g * float("nan"))
            return out

        return loss

    return compile


@pytest.mark.parametrize("fault, error", [
    ("halved", r"relative error 0\.50 in "),
    ("unet zeroed", r"relative error 1\.00 in decoder\.unet\."),
    ("one nan", r"relative error inf in decoder\.unet\."),
    ("kl ignored", r"relative error \d+\.\d+ in "),  # KL is annealed to 0 at step 0; the check counts it fully
])
def test_a_compiled_loss_with_wrong_gradients_is_refused_before_anything_is_written(tmp_path, monkeypatch, fault, error):
    """torch 2.13's CPU inductor returns zero gradients below a diffusers UNet's first upsampler;
    training must stop on such a compile at its first step, not train on it."""
    monkeypatch.setattr(torch, "compile", _faulty_compile(fault))
    config = tiny_config("train.steps=2", "train.kl_anneal_steps=4", "train.compile=default")
    with pytest.raises(TrainingError, match=r"train.compile=default: the compiled loss's gradients differ from the eager ones \(" + error):
        train(config, synthetic_dataset(n=16), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_with_dropout_the_compiled_gradient_check_is_skipped_with_a_warning_at_the_callers_line(tmp_path, monkeypatch, recwarn):
    """Compiled dropout draws other masks than eager, so the check would refuse a sound compile:
    it is skipped, and the warning names the line that called train(), not the library's."""
    monkeypatch.setattr(torch, "compile", _faulty_compile("halved"))  # refused without dropout (above)
    run = train(tiny_config("train.steps=2", "train.compile=default", "model.dropout=0.1"), synthetic_dataset(n=16),
                tmp_path / "run", progress=False)
    [warning] = [w for w in recwarn if "gradient check skipped" in str(w.message)]
    assert Path(warning.filename) == Path(__file__)
    assert [m["step"] for m in _metrics(run)] == [1, 2]


def test_time_limit_stops_with_a_checkpoint_and_resume_finishes_the_run(tmp_path, capsys):
    data = synthetic_dataset(n=16)
    config = tiny_config("train.steps=6", "train.checkpoint_every=4", "train.log_every=2")
    run = train(config, data, tmp_path / "run", progress=False, time_limit=0.0)  # past due after the first step
    assert "stopped at step 1 of 6" in capsys.readouterr().out
    assert [p.name for p in checkpoint_dirs(run)] == ["step-0000001"]
    assert [m["step"] for m in _metrics(run)] == [1]  # the partial logging window is written
    assert (run / "samples" / "step-0000001.png").is_file()
    assert load_file(str(run / "model.safetensors"))  # the exported EMA weights, loadable
    leftovers = [run / ".curves.png.a78o4ln3.tmp", run / "checkpoints" / ".step-0000004.m2it99fw.tmp"]  # as after a kill -9
    leftovers[0].write_text("half a png")
    leftovers[1].mkdir()
    (leftovers[1] / "model.safetensors").write_text("half the weights")
    (run / ".notes.txt").write_text("a user's hidden file")  # not a name our writers make
    train(resolve_resume(None, run, []), data, run, resume=True, progress=False)
    assert "removed 2 temporary file(s) that an interrupted write left in" in capsys.readouterr().out
    assert not any(p.exists() for p in leftovers) and (run / ".notes.txt").is_file()
    full = train(config, data, tmp_path / "full", progress=False)
    a = load_file(str(full / "checkpoints" / "step-0000006" / "model.safetensors"))
    b = load_file(str(run / "checkpoints" / "step-0000006" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # stopping early changes nothing but the pause
    timing = ("sec_per_step", "images_per_sec")
    # The stop's part-window line (step 1) is replaced by the full window, which carried step 1 over.
    assert [{k: v for k, v in m.items() if k not in timing} for m in _metrics(run)] == [
        {k: v for k, v in m.items() if k not in timing} for m in _metrics(full)
    ]
    assert [m["step"] for m in _metrics(run)] == [2, 4, 6]


def test_resume_with_a_different_config_is_refused(tmp_path):
    data = synthetic_dataset(n=16)
    run = train(tiny_config("train.steps=2"), data, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="disagrees.*train.lr"):
        resolve_resume(tiny_config("train.lr=0.5"), run, [])
    assert resolve_resume(tiny_config("train.steps=9"), run, []).train.steps == 9  # extending is fine
    assert resolve_resume(None, run, ["diffusion.sample_steps=7"]).diffusion.sample_steps == 7  # inference only
    assert resolve_resume(None, run, ["diffusion.sample_spacing=quadratic"]).diffusion.sample_spacing == "quadratic"
    with pytest.raises(FileExistsError, match="already holds a run; pass --resume to continue it or choose another --out"):
        train(tiny_config("train.steps=2"), data, run, progress=False)
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(tiny_config(), data, tmp_path / "empty", resume=True, progress=False)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(CausalDiffAE, "loss", exploding_loss(3))
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at step 3.*step-0000002"):
        train(tiny_config("train.steps=5"), synthetic_dataset(n=16), tmp_path / "run", progress=False)
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == ["step-0000002"]
    model, _ = load_run(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize(
    "overrides,size,graph,error,match",
    [
        (("model.channel_mult=[1,2,2]",), 10, "a -> b", ConfigError, r"model.channel_mult: image size 10x10 is not divisible by 4"),
        (("data.graph=a -> zz",), 8, "a -> b", ConfigError, r"data.graph: variable 'zz' is missing from the data synthetic \(it has: a, b\)"),
        (("train.batch_size=64",), 8, "a -> b", DataError,
         r"synthetic: 16 training images, fewer than train.batch_size=64; pass a smaller one, e.g. train.batch_size=16"),
    ],
)
def test_bad_data_is_refused_before_training(tmp_path, overrides, size, graph, error, match):
    with pytest.raises(error, match=match):
        train(tiny_config(*overrides), synthetic_dataset(n=16, size=size, graph=graph), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_resume_refuses_another_config_or_dataset_and_survives_a_cut_metrics_line(tmp_path):
    data = synthetic_dataset(n=16)
    run = train(tiny_config("train.steps=2", "train.log_every=1"), data, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="disagrees.*train.lr"):
        train(tiny_config("train.steps=3", "train.lr=0.5"), data, run, resume=True, progress=False)
    with pytest.raises(TrainingError, match="data order .*'num_samples': 16.*'num_samples': 20"):
        train(tiny_config("train.steps=3"), synthetic_dataset(n=20), run, resume=True, progress=False)
    with pytest.raises(TrainingError, match="--resume .*: its graph .* differs from the data's"):
        train(tiny_config("train.steps=3"), synthetic_dataset(n=16, graph="a -> b; a -> c"), run, resume=True, progress=False)
    with pytest.raises(TrainingError, match=r"step-0000002: trained on labels with label_mean \[.*\], the given data has"):
        train(tiny_config("train.steps=3"), synthetic_dataset(n=16, seed=1), run, resume=True, progress=False)
    last = checkpoint_dirs(run)[-1]
    state = (last / "state.json").read_text()
    (last / "state.json").write_text(state[:20])
    with pytest.raises(CheckpointError, match="step-0000002: unreadable checkpoint \\(JSONDecodeError"):
        train(tiny_config("train.steps=3"), data, run, resume=True, progress=False)
    for broken, message in (
        ("[]", "unreadable checkpoint .*not an object with an rng state"),
        (json.dumps({**json.loads(state), "rng": [1]}), "unreadable checkpoint .*not an object with an rng state"),
        (json.dumps({k: v for k, v in json.loads(state).items() if k != "rng"}), "unreadable checkpoint .*not an object with an rng state"),
        (json.dumps({**json.loads(state), "step": "abc"}), "unreadable checkpoint .*step 'abc' is not a whole number"),
        (json.dumps({**json.loads(state), "step": -1}), "unreadable checkpoint .*step -1 is not a whole number"),
        (json.dumps({**json.loads(state), "step": True}), "unreadable checkpoint .*step True is not a whole number"),
        (json.dumps({**json.loads(state), "optimizer": "x"}), "unreadable checkpoint .*optimizer state is not an object"),
        (json.dumps({**json.loads(state), "optimizer": {"scalars": {}}}), "unreadable checkpoint .*optimizer state is not an object with param_groups"),
        (json.dumps({**json.loads(state), "optimizer": {"param_groups": 5}}), "unreadable checkpoint .*optimizer state is not an object with param_groups"),
        (json.dumps({**json.loads(state), "log_window": [1]}), "unreadable checkpoint .*log_window is not an object"),
        (json.dumps({**json.loads(state), "log_window": {"sums": {}, "steps": "x", "seconds": 0}}), "unreadable checkpoint .*log_window is not an object"),
        (json.dumps({**json.loads(state), "log_window": {"sums": {}, "steps": 1, "seconds": "x"}}), "unreadable checkpoint .*log_window is not an object"),
        (json.dumps({**json.loads(state), "rng": {**json.loads(state)["rng"], "torch": [999, 1]}}), "the checkpoint does not fit this run"),
    ):
        (last / "state.json").write_text(broken)
        with pytest.raises(CheckpointError, match=f"step-0000002: {message}"):
            train(tiny_config("train.steps=3"), data, run, resume=True, progress=False)
    (last / "state.json").write_text(state)
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 3, "lo')  # a run killed mid-write
    train(tiny_config("train.steps=3", "train.log_every=1"), data, run, resume=True, progress=False)
    assert [m["step"] for m in _metrics(run)] == [1, 2, 3]


def _torchrun(tmp_path: Path, body: str) -> None:
    """Run ``body`` (after importing the fixtures and ``training``) in two gloo processes; ``out`` is ``tmp_path``."""
    script = tmp_path / "worker.py"
    script.write_text(
        f"""
import hashlib, json, os, sys
import torch
sys.path.insert(0, {str(Path(__file__).parent)!r})
from training_fixtures import synthetic_dataset, tiny_config
from causaldiffae import training

torch.set_num_threads(1)
out = {str(tmp_path)!r}
"""
        + body
        # a process group left to interpreter shutdown can abort (SIGABRT) while gloo's threads wind down
        + "\nif torch.distributed.is_initialized():\n    torch.distributed.destroy_process_group()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        env=env, capture_output=True, text=True, timeout=120,  # a disagreement between processes hangs DDP
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_train_in_lockstep(tmp_path):
    """Two gloo processes (torchrun) shard each batch and end with identical weights; only rank 0 writes."""
    _torchrun(tmp_path, """
seen = {"index": [], "digest": []}
batch = training.TrainData.batch

def spy_batch(self, index, device, channels_last):
    seen["index"].append(index.tolist())
    return batch(self, index, device, channels_last)

class SpyAdamW(torch.optim.AdamW):
    def step(self, closure=None):
        out = super().step(closure)
        params = [p.detach().numpy().tobytes() for g in self.param_groups for p in g["params"]]
        seen["digest"].append(hashlib.sha256(b"".join(params)).hexdigest())
        return out

seen["loss"] = []
from causaldiffae.models import CausalDiffAE
forward = CausalDiffAE.forward

def spy_forward(self, *args, **kwargs):
    terms = forward(self, *args, **kwargs)
    seen["loss"].append(float(terms["loss"]))
    return terms

training.TrainData.batch = spy_batch
training.torch.optim.AdamW = SpyAdamW
CausalDiffAE.forward = spy_forward
training.train(tiny_config("train.steps=3", "train.checkpoint_every=3"), synthetic_dataset(n=32), out + "/run", progress=False)
open(out + "/rank" + os.environ["RANK"] + ".json", "w").write(json.dumps(seen))
""")
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for step in range(3):  # disjoint halves of the same global batch
        both = seen[0]["index"][step] + seen[1]["index"][step]
        assert len(seen[0]["index"][step]) == 4 and sorted(both) == sorted(step_indices(32, 8, 0, step).tolist())
    assert seen[0]["digest"] == seen[1]["digest"] and len(set(seen[0]["digest"])) == 3  # identical and moving
    logged = _metrics(tmp_path / "run")
    assert [m["step"] for m in logged] == [1, 2, 3]  # a single writer
    # the log describes the whole batch: the mean of the two halves' losses, not rank 0's half
    assert seen[0]["loss"] != seen[1]["loss"]
    for m, a, b in zip(logged, seen[0]["loss"], seen[1]["loss"]):
        assert m["loss"] == pytest.approx((a + b) / 2, rel=1e-5)


def test_init_starts_from_another_runs_weights_and_refuses_a_different_model(tmp_path, capsys):
    source = train(tiny_config("train.steps=3"), synthetic_dataset(n=16), tmp_path / "source", progress=False)
    trained = load_file(str(source / "model.safetensors"))
    other_data = synthetic_dataset(n=16, seed=1)
    capsys.readouterr()
    tuned = train(tiny_config("train.steps=1", "train.lr=1e-9", f"train.init={source}"), other_data, tmp_path / "tuned", progress=False)
    assert f"starting from the weights of {source} (train.init)" in capsys.readouterr().out
    model, config = load_run(tuned)
    assert config.train.init == str(source)
    state = model.state_dict()
    for key, value in trained.items():
        if not key.startswith("label_"):
            torch.testing.assert_close(state[key], value, atol=1e-6, rtol=0)
    fresh = load_file(str(train(tiny_config("train.steps=1", "train.lr=1e-9"), other_data, tmp_path / "fresh", progress=False) / "model.safetensors"))
    assert not torch.allclose(fresh["decoder.project.weight"], trained["decoder.project.weight"], atol=1e-6)
    # the label statistics are the new data's, not the source run's
    torch.testing.assert_close(model.label_mean.double(), torch.from_numpy(other_data.label_mean))
    with pytest.raises(TrainingError, match="train.init=.*architecture"):
        train(tiny_config("train.steps=1", "model.latent_block=2", f"train.init={source}"), other_data, tmp_path / "bad", progress=False)
    for change in ("model.norm_groups=4", "diffusion.num_train_timesteps=50"):  # no weight changes shape
        key, value = change.split("=")
        with pytest.raises(TrainingError, match=rf"trained with {key}=\d+, this run has {value}; set it the same"):
            train(tiny_config("train.steps=1", change, f"train.init={source}"), other_data, tmp_path / "bad1", progress=False)
    with pytest.raises(TrainingError, match=r"train.init=.*: its graph .* differs from the data's"):
        train(tiny_config("train.steps=1", f"train.init={source}"), synthetic_dataset(n=16, graph="a -> b; a -> c"), tmp_path / "bad2", progress=False)
    with pytest.raises(TrainingError, match="no model.safetensors"):
        train(tiny_config("train.steps=1", f"train.init={tmp_path}"), other_data, tmp_path / "bad3", progress=False)


def test_two_processes_train_compiled_like_eager(tmp_path):
    """Under DDP the gradient check's two backward passes all-reduce on every process alike (no hang)
    and the compiled run (traced by dynamo, as in the single-process test) logs the eager losses."""
    for name, extra in (("eager", ""), ("compiled", ', "train.compile=default"')):
        _torchrun(tmp_path, f"""
real_compile = torch.compile
torch.compile = lambda module, mode=None: real_compile(module, backend="eager")
config = tiny_config("train.steps=2", "train.batch_size=8"{extra})
training.train(config, synthetic_dataset(n=16), out + "/{name}", progress=False)
""")
    timing = ("sec_per_step", "images_per_sec")
    eager, compiled = ([{k: v for k, v in m.items() if k not in timing} for m in _metrics(tmp_path / n)] for n in ("eager", "compiled"))
    assert compiled == eager and len(eager) == 2


def test_a_late_process_stops_every_process_at_the_same_step(tmp_path):
    """Under DDP the time limit is agreed: rank 1 is past due at once, rank 0 has an hour, both stop after step 1."""
    _torchrun(tmp_path, """
steps = []

class SpyAdamW(torch.optim.AdamW):
    def step(self, closure=None):
        steps.append(1)
        return super().step(closure)

training.torch.optim.AdamW = SpyAdamW
limit = 0.0 if os.environ["RANK"] == "1" else 3600.0
training.train(tiny_config("train.steps=5", "train.checkpoint_every=5"), synthetic_dataset(n=32), out + "/run", progress=False, time_limit=limit)
open(out + "/rank" + os.environ["RANK"] + ".json", "w").write(json.dumps(steps))
""")
    assert [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)] == [[1], [1]]  # one step each
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == ["step-0000001"]


def test_a_non_finite_loss_on_one_process_stops_every_process_at_that_step(tmp_path):
    """Under DDP a bad loss on rank 1 alone stops both processes at its step, before anything is written."""
    _torchrun(tmp_path, """
from causaldiffae.models import CausalDiffAE
from training_fixtures import exploding_loss

CausalDiffAE.loss = exploding = exploding_loss(2, here=os.environ["RANK"] == "1")
try:
    training.train(tiny_config("train.steps=6", "train.checkpoint_every=3"), synthetic_dataset(n=32), out + "/run", progress=False)
    message = "finished"
except training.TrainingError as error:
    message = str(error)
open(out + "/rank" + os.environ["RANK"] + ".json", "w").write(json.dumps([message, exploding.calls]))
""")
    expected = ["non-finite loss (nan) at step 2; stopped, no checkpoint was written yet", 2]
    assert [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)] == [expected, expected]
    assert checkpoint_dirs(tmp_path / "run") == [] and not (tmp_path / "run" / "model.safetensors").exists()


def test_resume_needs_no_init_folder_and_names_what_changed(tmp_path, capsys):
    data = synthetic_dataset(n=16)
    source = train(tiny_config("train.steps=2"), data, tmp_path / "source", progress=False)
    run = train(tiny_config("train.steps=2", f"train.init={source}"), data, tmp_path / "ft", progress=False)
    shutil.rmtree(source)  # the checkpoint holds the weights; the folder it started from may be gone
    capsys.readouterr()
    train(resolve_resume(None, run, ["train.steps=3"]), data, run, resume=True, progress=False)
    out = capsys.readouterr().out
    assert f"resuming {run} at step 2 with train.steps 2 -> 3" in out
    assert f"step 3: EMA weights in {run / 'model.safetensors'}" in out  # said without progress bars too
    assert read_config(run).train.steps == 3


def test_resume_behind_the_runs_step_is_refused_and_a_finished_run_says_so(tmp_path, capsys):
    data = synthetic_dataset(n=16)
    run = train(tiny_config("train.steps=4", "train.log_every=3"), data, tmp_path / "run", progress=False)
    before, log = (run / "config.yaml").read_text(), (run / "metrics.jsonl").read_text()
    with pytest.raises(TrainingError, match=r"the run is at step 4, past train.steps=2; pass a larger train.steps"):
        train(resolve_resume(None, run, ["train.steps=2"]), data, run, resume=True, progress=False)
    assert (run / "config.yaml").read_text() == before
    capsys.readouterr()
    train(resolve_resume(None, run, []), data, run, resume=True, progress=False)
    assert "already at train.steps=4: nothing to train" in capsys.readouterr().out
    assert (run / "metrics.jsonl").read_text() == log  # the stop's part-window line (step 4) is kept
    train(resolve_resume(None, run, ["train.sample_every=5"]), data, run, resume=True, progress=False)
    printed = capsys.readouterr().out
    assert "nothing to train (raise train.steps to continue); its config is left as it was, without train.sample_every" in printed
    assert "resuming" not in printed and "EMA weights in" not in printed  # nothing was trained or written
    assert (run / "config.yaml").read_text() == before


@pytest.mark.parametrize("before, after, kept", [(3, 4, [3, 6, 8]), (5, 3, [5, 9])])
def test_changing_log_every_on_resume_keeps_every_logged_step_once(tmp_path, before, after, kept):
    """Stopped at step 6 (on the first grid of 3, or mid-window of 5), resumed to 9 or 8 on another grid:
    a line at the checkpoint stays when it closed a whole window and goes when its steps carry over."""
    data = synthetic_dataset(n=16)
    run = train(tiny_config("train.steps=6", f"train.log_every={before}", "train.checkpoint_every=6"), data, tmp_path / "run", progress=False)
    steps = kept[-1]
    train(resolve_resume(None, run, [f"train.steps={steps}", f"train.log_every={after}"]), data, run, resume=True, progress=False)
    assert [m["step"] for m in _metrics(run)] == kept


@pytest.mark.parametrize("graph, message", [
    ("a -> b -> a", "data.graph: the graph has a cycle"),
    ("missing/graph.yaml", "data.graph: graph file not found"),
])
def test_a_bad_data_graph_fails_before_any_image_is_decoded(tmp_path, monkeypatch, graph, message):
    import causaldiffae.data

    monkeypatch.setattr(causaldiffae.data, "load_dataset", lambda *a, **k: pytest.fail("images were decoded"))
    with pytest.raises(ConfigError, match=message):
        train(tiny_config(f"data.graph={graph}"), tmp_path / "data", tmp_path / "run", progress=False)


def test_an_out_folder_of_other_work_is_refused_and_kept(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("an evaluation")
    with pytest.raises(FileExistsError, match=r"report holds files but no run \(config.yaml, checkpoints\)"):
        train(tiny_config("train.steps=1"), synthetic_dataset(n=8), report, progress=False)
    assert [p.name for p in report.iterdir()] == ["report.md"]
    run = train(tiny_config("train.steps=1"), synthetic_dataset(n=8), tmp_path / "run", progress=False)
    with pytest.raises(FileExistsError, match="already holds a run; pass --resume"):
        train(tiny_config("train.steps=1"), synthetic_dataset(n=8), run, progress=False)


def test_a_run_that_died_before_its_first_checkpoint_starts_again_with_a_new_config(tmp_path, capsys):
    """Killed during start-up (say by a resolution too large for memory), a run holds only config.yaml: no
    weights depend on it, so --resume may change it rather than leave a folder only deletion fixes."""
    run = tmp_path / "run"
    run.mkdir()
    save_config(run, tiny_config("train.steps=1", "data.resolution=1000"))
    with pytest.raises(FileExistsError, match="stopped before its first checkpoint; pass --resume to start it again"):
        train(tiny_config("train.steps=1"), synthetic_dataset(n=8), run, progress=False)
    assert resolve_resume(None, run, ["data.resolution=null"]).data.resolution is None
    train(tiny_config("train.steps=1"), synthetic_dataset(n=8), run, resume=True, progress=False)
    assert f"{run} had no checkpoint: starting it again from step 0 with data.resolution 1000 -> None" in capsys.readouterr().out
    assert read_config(run).data.resolution is None and (run / "model.safetensors").is_file()
    with pytest.raises(TrainingError, match="disagrees"):  # once a checkpoint exists the config is the run's again
        resolve_resume(None, run, ["data.resolution=16"])


@_EMULATED_BF16_IS_NOT_THE_SUBJECT
def test_resume_keeps_the_runs_autocast_unless_told_and_names_a_change(tmp_path, capsys):
    data = synthetic_dataset(n=16)
    full = train(tiny_config("train.steps=4"), data, tmp_path / "full", mixed_precision="bf16", progress=False)
    part = train(tiny_config("train.steps=2"), data, tmp_path / "part", mixed_precision="bf16", progress=False)
    train(tiny_config("train.steps=4"), data, part, resume=True, progress=False)  # no --mixed-precision given
    assert [m["loss"] for m in _metrics(part)] == [m["loss"] for m in _metrics(full)]
    capsys.readouterr()
    train(tiny_config("train.steps=6"), data, part, resume=True, mixed_precision="no", progress=False)
    assert "with train.steps 4 -> 6, mixed precision bf16 -> no" in capsys.readouterr().out


def test_an_fp16_run_resumed_on_the_cpu_names_the_runs_precision_not_a_flag(tmp_path):
    run = train(tiny_config("train.steps=2"), synthetic_dataset(n=16), tmp_path / "run", progress=False)
    state = checkpoint_dirs(run)[-1] / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "mixed_precision": "fp16"}))  # as a GPU run records it
    with pytest.raises(TrainingError, match=r"step-0000002: the run trains with fp16 autocast, which needs a GPU; pass --mixed-precision"):
        train(tiny_config("train.steps=3"), synthetic_dataset(n=16), run, resume=True, progress=False)


def test_a_resume_names_its_changes_before_a_failing_compile_check_and_writes_nothing(tmp_path, monkeypatch, capsys):
    data = synthetic_dataset(n=16)
    run = train(tiny_config("train.steps=2"), data, tmp_path / "run", progress=False)
    stored, metrics = (run / "config.yaml").read_text(), (run / "metrics.jsonl").read_text()
    monkeypatch.setattr(torch, "compile", _faulty_compile("unet zeroed"))
    capsys.readouterr()
    with pytest.raises(TrainingError, match="gradients differ"):
        train(tiny_config("train.steps=3", "train.compile=default"), data, run, resume=True, progress=False)
    printed = capsys.readouterr().out
    resuming = printed.index("at step 2 with train.steps 2 -> 3, train.compile None -> default")
    assert resuming < printed.index("compiling the training loss (train.compile=default")
    assert (run / "config.yaml").read_text() == stored and (run / "metrics.jsonl").read_text() == metrics


def test_a_config_whose_bounded_widths_multiply_into_a_huge_model_is_refused_before_anything_is_written(tmp_path):
    huge = tiny_config("model.base_channels=512", "model.channel_mult=[8,8,8]", "model.layers_per_block=16", "model.norm_groups=32",
                       "model.attention_head_dim=32")
    with pytest.raises(UserError, match=r"the model would have [\d.]+G parameters \([\d.]+ GiB in fp32\), more than the 2G"):
        train(huge, synthetic_dataset(n=16), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def _ckpt(run, step, which):
    return load_file(str(run / "checkpoints" / f"step-{step:07d}" / f"{which}.safetensors"))


def _init_model(config, data):
    """The weights train() starts from: torch.manual_seed(train.seed) then the constructor."""
    d = prepare_data(data, config)
    torch.manual_seed(config.train.seed)
    model = CausalDiffAE(config.model, d.graph, d.image_shape, d.num_classes, config.diffusion)
    model.set_label_stats(d.label_mean, d.label_std)
    return model, d


def test_ema_decay_warms_up_then_caps():
    assert ema_decay(0, 0.9) == pytest.approx(0.1) and ema_decay(1000, 0.9) == 0.9


def test_ema_follows_the_trained_weights_with_the_warmed_up_decay(tmp_path):
    config = tiny_config("train.steps=2", "train.checkpoint_every=1")
    run = train(config, synthetic_dataset(n=16), tmp_path / "run", progress=False)
    ema1, model2, ema2 = _ckpt(run, 1, "ema"), _ckpt(run, 2, "model"), _ckpt(run, 2, "ema")
    w = 1.0 - ema_decay(1, 0.9)  # 9/11
    assert any(not torch.equal(ema1[k], ema2[k]) for k in ema1)
    for k in ema1:
        torch.testing.assert_close(ema2[k], ema1[k] + w * (model2[k] - ema1[k]), rtol=1e-5, atol=1e-6)


def test_grad_clip_bounds_the_first_update(tmp_path):
    data = synthetic_dataset(n=16)
    moved = {}
    for clip in ("1e-9", "1e9"):
        config = tiny_config("train.steps=1", "train.checkpoint_every=1", f"train.grad_clip={clip}")
        init, _ = _init_model(config, data)
        run = train(config, data, tmp_path / clip, progress=False)
        after = _ckpt(run, 1, "model")
        moved[clip] = max(float((after[n] - p.detach()).abs().max()) for n, p in init.named_parameters())
    assert moved["1e-9"] < 1e-4 < moved["1e9"], moved  # lr 1e-3: Adam moves ~lr unless the grads sit below its eps


def test_grad_accum_step_loss_and_grad_norm_match_a_hand_computed_step(tmp_path):
    data = synthetic_dataset(n=16)
    config = tiny_config("train.steps=1", "train.grad_accum=2", "train.grad_clip=1e9")
    model, d = _init_model(config, data)
    model.train()
    index = step_indices(len(d), 8, config.train.seed, 0)
    loss = 0.0
    for m in range(2):
        batch = d.batch(index[m * 4 : (m + 1) * 4], torch.device("cpu"), False)
        terms = model(batch, torch.tensor(0.0), step_generator(config.train.seed, 0, 0, m, torch.device("cpu")))
        (terms["loss"] / 2).backward()
        loss += float(terms["loss"].detach()) / 2
    norm = float(torch.sqrt(sum(p.grad.square().sum() for p in model.parameters() if p.grad is not None)))
    logged = _metrics(train(config, data, tmp_path / "run", progress=False))[0]
    assert logged["loss"] == pytest.approx(loss, rel=1e-4) and logged["grad_norm"] == pytest.approx(norm, rel=1e-4)


def test_a_log_line_is_the_mean_of_its_window(tmp_path):
    data = synthetic_dataset(n=16)
    per_step = _metrics(train(tiny_config("train.steps=4"), data, tmp_path / "a", progress=False))
    windowed = _metrics(train(tiny_config("train.steps=4", "train.log_every=2"), data, tmp_path / "b", progress=False))
    assert [m["step"] for m in windowed] == [2, 4]
    for line, pair in zip(windowed, (per_step[:2], per_step[2:])):
        for key in ("loss", "mse", "kl_u", "kl_label", "grad_norm"):
            assert line[key] == pytest.approx((pair[0][key] + pair[1][key]) / 2, rel=1e-5), key


def test_warmup_rises_linearly_then_holds(tmp_path):
    run = train(tiny_config("train.steps=6", "train.warmup_steps=4"), synthetic_dataset(n=16), tmp_path / "run", progress=False)
    logged = _metrics(run)
    assert [m["lr"] for m in logged] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert [m["kl_scale"] for m in logged] == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])


@_EMULATED_BF16_IS_NOT_THE_SUBJECT
def test_one_process_trains_runs_of_different_precisions_but_leaves_other_states_alone(tmp_path, monkeypatch):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    data = synthetic_dataset(n=16)
    for i, precision in enumerate(("bf16", "no", "bf16")):
        run = train(tiny_config("train.steps=1"), data, tmp_path / f"run{i}", mixed_precision=precision, progress=False)
        assert json.loads((checkpoint_dirs(run)[-1] / "state.json").read_text())["mixed_precision"] == precision
        assert AcceleratorState().mixed_precision == precision
    held = AcceleratorState()
    _release_autocast("bf16")  # the precision it has: nothing to release
    assert held.__dict__ and held.mixed_precision == "bf16"
    monkeypatch.setitem(PartialState._shared_state, "num_processes", 2)  # as under torchrun
    _release_autocast("no")
    assert held.mixed_precision == "bf16"
    with pytest.raises(ValueError, match="already been initialized"):
        Accelerator(mixed_precision="no", cpu=True)
    monkeypatch.setitem(PartialState._shared_state, "num_processes", 1)
    monkeypatch.setitem(AcceleratorState._shared_state, "_mixed_precision", "fp16")  # a state the caller built, not train()
    _release_autocast("no")
    assert held.__dict__ and held.mixed_precision == "fp16"


def test_a_run_that_is_training_cannot_be_resumed_by_a_second_process(tmp_path):
    """A record lock is per process, so the holder here is another one, as a restarted job would be."""
    data = synthetic_dataset(n=16)
    config = tiny_config("train.steps=4", "train.checkpoint_every=2")
    run = train(config, data, tmp_path / "run", progress=False, time_limit=0.0)
    assert (run / ".train.lock").is_file()
    hold = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run / ".train.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(TrainingError, match=f"^{run} is being trained by another process; stop it, or wait for it, before --resume$"):
            train(config, data, run, resume=True, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert [p.name for p in checkpoint_dirs(run)] == ["step-0000001"]
    train(config, data, run, resume=True, progress=False)  # released: it carries on
    assert [p.name for p in checkpoint_dirs(run)][-1] == "step-0000004"


def test_a_new_run_holds_its_folder_from_its_first_write(tmp_path, monkeypatch):
    import causaldiffae.training as training

    seen = []
    save = training.save_config

    def save_and_probe(out, config):
        probe = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
                 "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\nexcept OSError: print('held')")
        seen.append(subprocess.run([sys.executable, "-c", probe, str(out / ".train.lock")], capture_output=True, text=True).stdout)
        return save(out, config)

    monkeypatch.setattr(training, "save_config", save_and_probe)
    train(tiny_config("train.steps=1"), synthetic_dataset(n=16), tmp_path / "new" / "run", progress=False)
    assert seen == ["held\n"]
    left = tmp_path / "checked"  # a run stopped by a later check leaves its folder with only the lock file
    left.mkdir()
    (left / ".train.lock").write_text("")
    train(tiny_config("train.steps=1"), synthetic_dataset(n=16), left, progress=False)
    assert (left / "config.yaml").is_file()


def test_a_failed_check_leaves_an_empty_out_folder_empty(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    with pytest.raises(DataError, match="fewer than train.batch_size=64"):
        train(tiny_config("train.steps=1", "train.batch_size=64"), synthetic_dataset(n=8), out, progress=False)
    assert list(out.iterdir()) == []


def test_a_run_folder_that_cannot_be_locked_trains_with_one_warning(tmp_path, monkeypatch):
    data = synthetic_dataset(n=16)
    config = tiny_config("train.steps=2", "train.checkpoint_every=1")
    run = train(config, data, tmp_path / "run", progress=False, time_limit=0.0)
    real_open = os.open

    def read_only_lock(path, flags, *args):
        if str(path).endswith(".train.lock"):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only_lock)
    with pytest.warns(UserWarning) as caught:
        train(config, data, run, resume=True, progress=False)
    assert [str(w.message) for w in caught if "lock" in str(w.message)] == [
        f"{run}: cannot lock the run folder (Read-only file system); make sure no other process trains it"
    ]
    assert [p.name for p in checkpoint_dirs(run)][-1] == "step-0000002"


@pytest.mark.parametrize("env, rank", [({}, 0), ({"RANK": "2"}, 2), ({"OMPI_COMM_WORLD_RANK": "1"}, 1), ({"SLURM_PROCID": "3"}, 3),
                                       ({"RANK": "0", "SLURM_PROCID": "5"}, 0)])
def test_only_the_first_process_of_a_launch_takes_the_run_lock(monkeypatch, env, rank):
    from causaldiffae.training import _launcher_rank

    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _launcher_rank() == rank


@pytest.mark.parametrize("native, warned", [(False, True), (True, False), (None, False)])
def test_bf16_on_a_cpu_that_emulates_it_is_allowed_with_a_warning_that_says_so(monkeypatch, recwarn, native, warned):
    monkeypatch.setattr("causaldiffae.training._has_accelerator", lambda: False)
    monkeypatch.setattr("causaldiffae.training._cpu_bf16", lambda: native)
    assert _choose_precision("bf16", None, None, []) == "bf16"
    assert [str(w.message).split(":")[0] for w in recwarn] == (["--mixed-precision bf16 on a CPU without avx512_bf16/amx_bf16 is emulated"]
                                                              if warned else [])
