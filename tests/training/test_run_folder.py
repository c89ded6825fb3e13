"""Run folders: what --out may hold, how a resume reads it, train.init, and the run lock."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from causaldiffae.checkpoint import CheckpointError, checkpoint_dirs, load_run, read_config, save_config
from causaldiffae.data import DataError
from causaldiffae.training import TrainingError, resolve_resume, train
from training_fixtures import read_metrics, synthetic_dataset, tiny_config


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
    assert [m["step"] for m in read_metrics(run)] == [1, 2, 3]


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
    assert [m["step"] for m in read_metrics(run)] == kept


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


def test_a_run_that_is_training_cannot_be_resumed_by_a_second_process(tmp_path):
    """A record lock is per process, so the holder here is another one, as a restarted job would be."""
    data = synthetic_dataset(n=16)
    config = tiny_config("train.steps=4", "train.checkpoint_every=2")
    run = train(config, data, tmp_path / "run", progress=False, time_limit=0.0)
    assert (run / ".train.lock").is_file()
    hold = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(60)")
    with subprocess.Popen([sys.executable, "-c", hold, str(run / ".train.lock")], stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline() == "held\n"
            with pytest.raises(TrainingError, match=f"^{run} is being trained by another process; stop it, or wait for it, before --resume$"):
                train(config, data, run, resume=True, progress=False)
        finally:
            holder.kill()  # leaving the block waits for it and closes its pipe
    assert [p.name for p in checkpoint_dirs(run)] == ["step-0000001"]
    train(config, data, run, resume=True, progress=False)  # released: it carries on
    assert [p.name for p in checkpoint_dirs(run)][-1] == "step-0000004"


def test_a_new_run_holds_its_folder_from_its_first_write(tmp_path, monkeypatch):
    from causaldiffae.training import loop

    seen = []
    save = loop.save_config

    def save_and_probe(out, config):
        probe = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
                 "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\nexcept OSError: print('held')")
        seen.append(subprocess.run([sys.executable, "-c", probe, str(out / ".train.lock")], capture_output=True, text=True).stdout)
        return save(out, config)

    monkeypatch.setattr(loop, "save_config", save_and_probe)
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
    from causaldiffae.training.run_folder import launcher_rank

    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launcher_rank() == rank
