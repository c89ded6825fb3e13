"""The training loop end to end: losses, grids, stops, limits, DDP, EMA, clipping, accumulation and logging."""

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from causaldiffae.checkpoint import CheckpointError, checkpoint_dirs, load_run
from causaldiffae.config import ConfigError
from causaldiffae.diffusion import make_scheduler
from causaldiffae.errors import UserError
from causaldiffae.models import CausalDiffAE
from causaldiffae.training import (
    TrainingError,
    ema_decay,
    prepare_data,
    resolve_resume,
    step_generator,
    step_indices,
    train,
)
from training_fixtures import exploding_loss, read_metrics, synthetic_dataset, tiny_config, torchrun


def test_loss_decreases_and_run_folder_is_complete(tmp_path):
    config = tiny_config("train.steps=40", "train.log_every=5", "train.checkpoint_every=20", "train.sample_every=40", "train.kl_anneal_steps=20")
    run = train(config, synthetic_dataset(n=32), tmp_path / "run", progress=False)
    metrics = read_metrics(run)
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
    plain, last = ([m["loss"] for m in read_metrics(run)] for run in runs)
    assert len(plain) == 4 and plain == pytest.approx(last, rel=1e-4)


def test_a_v_prediction_cosine_schedule_run_learns_and_loads_as_one(tmp_path):
    config = tiny_config("train.steps=40", "train.log_every=5", "train.checkpoint_every=40", "train.sample_every=40",
                         "train.kl_anneal_steps=20", "diffusion.prediction_type=v_prediction", "diffusion.beta_schedule=cosine")
    run = train(config, synthetic_dataset(n=32), tmp_path / "run", progress=False)
    metrics = read_metrics(run)
    assert metrics[-1]["mse"] < 0.6 * metrics[0]["mse"], [m["mse"] for m in metrics]
    model, _ = load_run(run)
    assert model.prediction_type == "v_prediction" and model.scheduler.config.prediction_type == "v_prediction"
    assert model.scheduler.config.beta_schedule == "squaredcos_cap_v2"
    torch.testing.assert_close(model.alphas_cumprod, make_scheduler(config.diffusion).alphas_cumprod)


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
    assert [m["step"] for m in read_metrics(part)] == [1, 2, 3]
    # Step 3 was logged past the last checkpoint (step 2): resume must drop its line and redo it identically.
    config = resolve_resume(None, part, ["train.steps=6"])
    config = config.with_overrides(["train.checkpoint_every=2"])
    train(config, data, part, resume=True, progress=False)
    timed = ("sec_per_step", "images_per_sec")  # the clock's figures differ; every other figure is the same
    assert read_metrics(part) == [{**m, **{k: resumed[k] for k in timed}} for m, resumed in zip(read_metrics(full), read_metrics(part), strict=True)]
    a = load_file(str(full / "checkpoints" / "step-0000006" / "model.safetensors"))
    b = load_file(str(part / "checkpoints" / "step-0000006" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_first_ctrl_c_stops_after_the_step_with_a_checkpoint_and_a_resume_carries_on(tmp_path, monkeypatch, capsys):
    import signal

    from causaldiffae.training import loop

    data = synthetic_dataset(n=24)
    base = ("train.steps=4", "train.checkpoint_every=100")  # no checkpoint before the end but the interrupt's
    full = train(tiny_config(*base), data, tmp_path / "full", progress=False)
    rate = loop.learning_rate

    def ctrl_c_in_step_two(step, *args):
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return rate(step, *args)

    monkeypatch.setattr(loop, "learning_rate", ctrl_c_in_step_two)
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(*base), data, tmp_path / "part", progress=False)
    assert "interrupted: stopped at step 2 of 4 with a checkpoint; continue with --resume" in capsys.readouterr().out
    assert [p.name for p in checkpoint_dirs(tmp_path / "part")] == ["step-0000002"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    monkeypatch.setattr(loop, "learning_rate", rate)
    train(resolve_resume(None, tmp_path / "part", []), data, tmp_path / "part", resume=True, progress=False)
    a, b = load_file(str(full / "model.safetensors")), load_file(str(tmp_path / "part" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_stops_after_the_step_then_reaches_its_own_handler_and_an_ignored_signal_stays_ignored(tmp_path, monkeypatch, capsys):
    import signal

    from causaldiffae.training import loop

    class Terminated(Exception):
        pass

    def terminate(signum, frame):
        raise Terminated

    rate = loop.learning_rate

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
        monkeypatch.setattr(loop, "learning_rate", signal_in_step_two(signal.SIGTERM))
        with pytest.raises(Terminated):  # the scheduler's signal is passed on once the checkpoint is written
            train(tiny_config(*base), data, tmp_path / "term", progress=False)
        assert [p.name for p in checkpoint_dirs(tmp_path / "term")] == ["step-0000002"]
        assert signal.getsignal(signal.SIGTERM) is terminate
    finally:
        signal.signal(signal.SIGTERM, previous)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a job started in the background
    try:
        monkeypatch.setattr(loop, "learning_rate", signal_in_step_two(signal.SIGINT))
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
    with pytest.raises(ConfigError, match="model.class_conditional=true but the data synthetic has no classes; pass model.class_conditional=false$"):
        train(tiny_config("model.class_conditional=true"), data, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_time_limit_stops_with_a_checkpoint_and_resume_finishes_the_run(tmp_path, capsys):
    data = synthetic_dataset(n=16)
    config = tiny_config("train.steps=6", "train.checkpoint_every=4", "train.log_every=2")
    run = train(config, data, tmp_path / "run", progress=False, time_limit=0.0)  # past due after the first step
    assert "stopped at step 1 of 6" in capsys.readouterr().out
    assert [p.name for p in checkpoint_dirs(run)] == ["step-0000001"]
    assert [m["step"] for m in read_metrics(run)] == [1]  # the partial logging window is written
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
    assert [{k: v for k, v in m.items() if k not in timing} for m in read_metrics(run)] == [
        {k: v for k, v in m.items() if k not in timing} for m in read_metrics(full)
    ]
    assert [m["step"] for m in read_metrics(run)] == [2, 4, 6]


def test_non_finite_loss_stops_with_the_step_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(CausalDiffAE, "loss", exploding_loss(3))
    monkeypatch.setattr("causaldiffae.training.loop.step_memory", lambda *args, **kwargs: 0)  # its loss calls would count as steps
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at step 3.*step-0000002"):
        train(tiny_config("train.steps=5"), synthetic_dataset(n=16), tmp_path / "run", progress=False)
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == ["step-0000002"]
    model, _ = load_run(tmp_path / "run")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_two_processes_train_in_lockstep(tmp_path):
    """Two gloo processes (torchrun) shard each batch and end with identical weights; only rank 0 writes."""
    torchrun(tmp_path, """
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
torch.optim.AdamW = SpyAdamW
CausalDiffAE.forward = spy_forward
training.loop.step_memory = lambda *args, **kwargs: 0  # the memory probe's batches and losses on rank 0 are not the steps'
training.train(tiny_config("train.steps=3", "train.checkpoint_every=3"), synthetic_dataset(n=32), out + "/run", progress=False)
open(out + "/rank" + os.environ["RANK"] + ".json", "w").write(json.dumps(seen))
""")
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for step in range(3):  # disjoint halves of the same global batch
        both = seen[0]["index"][step] + seen[1]["index"][step]
        assert len(seen[0]["index"][step]) == 4 and sorted(both) == sorted(step_indices(32, 8, 0, step).tolist())
    assert seen[0]["digest"] == seen[1]["digest"] and len(set(seen[0]["digest"])) == 3  # identical and moving
    logged = read_metrics(tmp_path / "run")
    assert [m["step"] for m in logged] == [1, 2, 3]  # a single writer
    # the log describes the whole batch: the mean of the two halves' losses, not rank 0's half
    assert seen[0]["loss"] != seen[1]["loss"]
    for m, a, b in zip(logged, seen[0]["loss"], seen[1]["loss"]):
        assert m["loss"] == pytest.approx((a + b) / 2, rel=1e-5)


def test_a_late_process_stops_every_process_at_the_same_step(tmp_path):
    """Under DDP the time limit is agreed: rank 1 is past due at once, rank 0 has an hour, both stop after step 1."""
    torchrun(tmp_path, """
steps = []

class SpyAdamW(torch.optim.AdamW):
    def step(self, closure=None):
        steps.append(1)
        return super().step(closure)

torch.optim.AdamW = SpyAdamW
limit = 0.0 if os.environ["RANK"] == "1" else 3600.0
training.train(tiny_config("train.steps=5", "train.checkpoint_every=5"), synthetic_dataset(n=32), out + "/run", progress=False, time_limit=limit)
open(out + "/rank" + os.environ["RANK"] + ".json", "w").write(json.dumps(steps))
""")
    assert [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)] == [[1], [1]]  # one step each
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == ["step-0000001"]


def test_a_non_finite_loss_on_one_process_stops_every_process_at_that_step(tmp_path):
    """Under DDP a bad loss on rank 1 alone stops both processes at its step, before anything is written."""
    torchrun(tmp_path, """
from causaldiffae.models import CausalDiffAE
from training_fixtures import exploding_loss

CausalDiffAE.loss = exploding = exploding_loss(2, here=os.environ["RANK"] == "1")
training.loop.step_memory = lambda *args, **kwargs: 0  # the memory probe's loss calls on rank 0 would count as steps
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
    logged = read_metrics(train(config, data, tmp_path / "run", progress=False))[0]
    assert logged["loss"] == pytest.approx(loss, rel=1e-4) and logged["grad_norm"] == pytest.approx(norm, rel=1e-4)


def test_a_log_line_is_the_mean_of_its_window(tmp_path):
    data = synthetic_dataset(n=16)
    per_step = read_metrics(train(tiny_config("train.steps=4"), data, tmp_path / "a", progress=False))
    windowed = read_metrics(train(tiny_config("train.steps=4", "train.log_every=2"), data, tmp_path / "b", progress=False))
    assert [m["step"] for m in windowed] == [2, 4]
    for line, pair in zip(windowed, (per_step[:2], per_step[2:])):
        for key in ("loss", "mse", "kl_u", "kl_label", "grad_norm"):
            assert line[key] == pytest.approx((pair[0][key] + pair[1][key]) / 2, rel=1e-5), key


def test_in_a_log_file_training_prints_plain_lines_with_the_logged_losses_instead_of_a_bar(tmp_path, capsys):
    run = train(tiny_config("train.steps=4", "train.log_every=2"), synthetic_dataset(n=16), tmp_path / "run", progress=True)
    out, err = capsys.readouterr()  # captured: neither stream is a terminal
    logged = read_metrics(run)
    lines = [line for line in out.splitlines() if line.startswith("train: ")]
    assert [line.split(",")[0] for line in lines] == ["train: step 0/4", "train: step 2/4 (50%)", "train: step 4/4 (100%)"]  # start, first, last
    assert f"loss {logged[-1]['loss']:.4f}, mse {logged[-1]['mse']:.4f}" in lines[-1] and "s/step" in lines[-1]
    assert "left" in lines[1] and "\r" not in out + err
