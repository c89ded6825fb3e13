"""What a run folder may hold when training starts, how a resume reads it, and the lock held while it trains."""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from causaldiffae.atomic import atomic_file, check_writable_parent
from causaldiffae.checkpoint import checkpoint_dirs, read_config, read_model_meta
from causaldiffae.config import ExperimentConfig
from causaldiffae.errors import TrainingError
from causaldiffae.training.data import TrainData

if TYPE_CHECKING:
    from causaldiffae.models import CausalDiffAE

RUN_LOCK = ".train.lock"  # held while a process trains the run (see RunLock)

# Keys that may change when a run is resumed: how long it runs, how often it reports, and the
# inference defaults (the loss never uses them; the sample grids follow sample_spacing).
RESUMABLE_KEYS = (
    "train.steps", "train.log_every", "train.sample_every", "train.checkpoint_every", "train.keep_checkpoints", "diffusion.sample_steps",
    "diffusion.sample_spacing", "train.init", "train.compile",
)

# Settings that change what the weights compute without changing any weight's shape.
SHAPELESS_ARCHITECTURE = ("model.norm_groups", "model.attention_head_dim", "diffusion.num_train_timesteps",
                          "diffusion.beta_start", "diffusion.beta_end", "diffusion.beta_schedule")


def check_out_dir(out: Path, resume: bool) -> list[Path]:
    """Refuse an --out that is not a new run (or, with ``resume``, a run); return its kept checkpoints."""
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} exists and is not a folder")
    check_writable_parent(out, in_place=True)  # the run folder is written into where it is, once the checks pass
    kept = checkpoint_dirs(out)
    has_run = (out / "config.yaml").is_file() or bool(kept)
    if has_run and not resume:
        if not kept:
            raise FileExistsError(f"{out} holds a run that stopped before its first checkpoint; pass --resume to start it "
                                  "again (a changed config or overrides are accepted then) or choose another --out")
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if not has_run and out.is_dir() and any(p.name != RUN_LOCK for p in out.iterdir()):
        raise FileExistsError(f"{out} holds files but no run (config.yaml, checkpoints); choose another --out or empty it")
    if resume and not has_run:
        raise TrainingError(f"{out}: nothing to resume (no config.yaml or checkpoints)")
    return kept


def resolve_resume(config: ExperimentConfig | None, run_dir: Path, overrides: list[str]) -> ExperimentConfig:
    """The config of a resumed run: the stored one (plus overrides). Once the run has a checkpoint, a different
    given config is refused (but for RESUMABLE_KEYS); before its first, nothing depends on the stored one."""
    stored = read_config(run_dir)
    wanted = stored.with_overrides(overrides, "command line") if config is None else config
    if checkpoint_dirs(run_dir):  # before the first checkpoint nothing trained depends on the stored config
        check_resumable(stored, wanted, run_dir)
    return wanted


def setting_changes(stored: ExperimentConfig, wanted: ExperimentConfig) -> list[tuple[str, Any, Any]]:
    """``(key, stored value, wanted value)`` for every setting that differs."""
    new, old = wanted.flat(), stored.flat()
    return [(k, old[k], new[k]) for k in wanted.differences(stored)]


def check_resumable(stored: ExperimentConfig, wanted: ExperimentConfig, run_dir: Path) -> None:
    changed = [c for c in setting_changes(stored, wanted) if c[0] not in RESUMABLE_KEYS]
    if changed:
        detail = ", ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changed[:4])
        raise TrainingError(f"{run_dir}/config.yaml disagrees with the given config ({detail}); resume with the stored config or start a new --out")


def say_how_it_resumes(out: Path, resume: bool, had_checkpoint: bool, changes: list[str], start: int, steps: int) -> None:
    """Tell a resumed run's user where it restarts and which settings changed, or that it is done."""
    if resume and not had_checkpoint:
        print(f"{out} had no checkpoint: starting it again from step 0" + (f" with {', '.join(changes)}" if changes else ""))
    elif changes and start < steps:
        print(f"resuming {out} at step {start} with {', '.join(changes)}")
    if resume and start == steps:
        print(f"{out} is already at train.steps={steps}: nothing to train (raise train.steps to continue)"
              + (f"; its config is left as it was, without {', '.join(changes)}" if changes else ""))


def check_same_data(meta: dict, data: TrainData, where: str) -> None:
    """Weights carried over (``train.init``, ``--resume``) must be for this data's graph and image shape."""
    if meta.get("graph") != data.graph.to_dict():
        raise TrainingError(f"{where}: its graph {meta.get('graph')} differs from the data's {data.graph.to_dict()}")
    if list(meta.get("image_shape", [])) != list(data.image_shape):
        raise TrainingError(f"{where}: image shape {meta.get('image_shape')} differs from the data's {list(data.image_shape)}")


def check_same_labels(saved: dict[str, torch.Tensor], model: CausalDiffAE, where: Path) -> None:
    """A resumed run must see the data it was trained on: the same label statistics (a dataset
    built with another seed has the same images' shapes and graph but other labels)."""
    for key in ("label_mean", "label_std"):
        if key in saved and not torch.allclose(saved[key].float().cpu(), getattr(model, key).float().cpu(), rtol=1e-5, atol=1e-6):
            raise TrainingError(
                f"{where}: trained on labels with {key} {saved[key].tolist()}, the given data has {getattr(model, key).tolist()}; "
                "resume on the same data or start a new --out"
            )


def init_weights(model: CausalDiffAE, run_dir: str | Path, data: TrainData, config: ExperimentConfig) -> None:
    """Start from another run's weights (``train.init``): same graph, image shape and architecture, or a clear error.

    Only the weights carry over; optimiser, EMA and schedule start afresh, and the label statistics
    are the new training data's. Shapes are checked on the weights; the settings that leave every
    shape alone (``SHAPELESS_ARCHITECTURE``) on the run's ``config.yaml``, where it has one.
    """
    from safetensors.torch import load_file

    weights = Path(run_dir) / "model.safetensors"
    if not weights.is_file():
        raise TrainingError(f"train.init={run_dir}: no model.safetensors there")
    check_same_data(read_model_meta(weights), data, f"train.init={run_dir}")
    if (Path(run_dir) / "config.yaml").is_file():
        theirs, ours = read_config(run_dir).to_dict(), config.to_dict()
        for key in SHAPELESS_ARCHITECTURE:
            section, name = key.split(".")
            if theirs[section][name] != ours[section][name]:
                raise TrainingError(f"train.init={run_dir}: its weights were trained with {key}={theirs[section][name]!r}, "
                                    f"this run has {ours[section][name]!r}; set it the same")
    state = load_file(str(weights))
    own = model.state_dict()
    wrong = [k for k in own if k not in state or state[k].shape != own[k].shape]
    if wrong or len(state) != len(own):
        first = (wrong or sorted(set(state) - set(own)))[0]
        raise TrainingError(f"train.init={run_dir}: weights do not fit this model's architecture (first mismatch: {first})")
    model.load_state_dict(state)


def truncate_metrics(path: Path, step: int, keep_last: bool) -> None:
    """On resume, drop lines logged after the checkpoint, and the part-window line a stop logged at it
    (its steps carry over in the checkpoint's ``log_window``; ``keep_last`` when that window was empty,
    so the line at the checkpoint closed a whole window), so the metrics match an uninterrupted run
    even when ``train.log_every`` changes on resume."""
    if not path.is_file():
        return
    keep = [
        line for line in path.read_text().splitlines()
        if (n := _logged_step(line)) is not None and (n < step or (n == step and keep_last))
    ]
    with atomic_file(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep))


def _logged_step(line: str) -> int | None:
    """The step of one metrics line; ``None`` for a blank line or one cut short by a killed run."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def launcher_rank() -> int:
    """This process's rank as its launcher set it (torchrun and accelerate, MPI, Slurm), before
    accelerate is started; 0 when launched alone."""
    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


class RunLock:
    """An exclusive lock on a run folder while it trains, so that a second ``train --resume`` of it
    (a scheduler restarting a job that still runs) is refused instead of both writing its files.

    A POSIX record lock on ``.train.lock`` in the folder: forked data workers do not inherit it,
    and NFS honours it. Only the first process of a distributed run takes it; where the file
    system cannot lock, training goes on with a warning.
    """

    def __init__(self) -> None:
        self.fd: int | None = None
        self.tried = False

    def take(self, out: Path) -> None:
        """Lock ``out`` (an existing run folder); later calls do nothing."""
        try:
            import fcntl
        except ImportError:  # Windows
            return
        if self.tried or launcher_rank() != 0:
            return
        self.tried = True
        try:
            fd = os.open(out / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:  # read-only storage, or another user's run
            return _cannot_lock(out, err)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EACCES, errno.EAGAIN):
                raise TrainingError(f"{out} is being trained by another process; stop it, or wait for it, before --resume") from None
            return _cannot_lock(out, err)  # the file system cannot lock
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


def _cannot_lock(out: Path, err: OSError) -> None:
    warnings.warn(f"{out}: cannot lock the run folder ({err.strerror}); make sure no other process trains it", stacklevel=3)
