"""The training loop: accelerate for devices, DDP and mixed precision; exact resume from checkpoints.

Everything random is a function of the step, so a resumed run repeats the uninterrupted one
exactly: the data order is a permutation seeded by ``(seed, epoch)``, each process takes its
slice of every global batch (the sharding is ours, not a sampler's, so it survives restarts),
and the noise, timesteps and condition dropout of a micro-batch come from a generator seeded by
``(seed, step, rank, micro-batch)``. The global torch RNG (used by dropout) is saved as well.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import math
import os
import random
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np
import torch

from causaldiffae.atomic import atomic_file, remove_leftovers
from causaldiffae.checkpoint import (
    CheckpointError,
    checkpoint_dirs,
    export_model,
    load_checkpoint,
    read_config,
    read_model_meta,
    save_checkpoint,
    save_config,
)
from causaldiffae.config import MIXED_PRECISION, ConfigError, ExperimentConfig, TrainConfig, check_image_shape
from causaldiffae.data import check_outside
from causaldiffae.data.base import CausalImageDataset, DataError, edge_brightness, resize_images
from causaldiffae.errors import UserError
from causaldiffae.evaluation.figures import training_curves
from causaldiffae.graph import CausalGraph
from causaldiffae.signals import restore_handlers, swap_handlers

if TYPE_CHECKING:
    from accelerate import Accelerator

    from causaldiffae.models import CausalDiffAE

RUN_LOCK = ".train.lock"  # held while a process trains the run (see _RunLock)

# Keys that may change when a run is resumed: how long it runs, how often it reports, and the
# inference defaults (the loss never uses them; the sample grids follow sample_spacing).
RESUMABLE_KEYS = (
    "train.steps", "train.log_every", "train.sample_every", "train.checkpoint_every", "train.keep_checkpoints", "diffusion.sample_steps",
    "diffusion.sample_spacing", "train.init", "train.compile",
)


class TrainingError(UserError):
    """Training stopped: non-finite loss, or a run folder that cannot be started or resumed."""


# Schedules ---------------------------------------------------------------------------------------


def kl_scale(step: int, anneal_steps: int) -> float:
    """``lambda_k``: rises linearly from 0 at step 0 to 1 at ``anneal_steps``, then stays at 1."""
    return 1.0 if anneal_steps <= 0 else min(1.0, step / anneal_steps)


def learning_rate(step: int, lr: float, warmup_steps: int) -> float:
    """Linear warm-up, then constant (stateless, so resuming needs no scheduler state)."""
    return lr if warmup_steps <= 0 else lr * min(1.0, (step + 1) / warmup_steps)


def ema_decay(step: int, decay: float) -> float:
    """EMA decay with the usual warm-up, so early EMA weights are not dominated by the initialisation."""
    return min(decay, (1 + step) / (10 + step))


# Data --------------------------------------------------------------------------------------------


@dataclass
class TrainData:
    """Tensors of the training split restricted to the model's graph, ready for batch indexing."""

    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # standardised float (N, n), columns in graph order
    classes: torch.Tensor  # long (N,), -1 when unknown
    labeled: torch.Tensor  # bool (N,)
    graph: CausalGraph
    label_mean: np.ndarray
    label_std: np.ndarray
    num_classes: int
    name: str

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return c, h, w

    def batch(self, index: torch.Tensor, device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
        image = self.images[index].to(device).float().div_(127.5).sub_(1.0)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return {
            "image": image,
            "labels": self.labels[index].to(device),
            "class": self.classes[index].to(device),
            "labeled": self.labeled[index].to(device),
        }


def labeled_mask(n: int, fraction: float, seed: int) -> torch.Tensor:
    """A fixed, seeded subset of ``round(fraction * n)`` (at least one) samples that keep labels."""
    count = max(1, round(fraction * n))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7_777_777))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[:count]] = True
    return mask


def prepare_data(dataset: CausalImageDataset, config: ExperimentConfig) -> TrainData:
    """Select and standardise the graph's label columns; check the graph and image size against the data."""
    configured = configured_graph(config)
    graph = dataset.graph if configured is None else configured
    if configured is not None:
        missing = [v for v in graph.variables if v not in dataset.variables]
        if missing:
            raise ConfigError(
                f"data.graph: variable {missing[0]!r} is missing from the data {dataset.name} "
                f"(it has: {', '.join(dataset.variables)})"
            )
    columns = [dataset.variables.index(v) for v in graph.variables]
    check_image_shape(config.model, dataset.image_shape, "model.channel_mult")
    if config.model.class_conditional and (dataset.classes is None or dataset.num_classes <= 0):
        raise ConfigError(f"model.class_conditional=true but the data {dataset.name} has no classes")
    images = torch.from_numpy(np.ascontiguousarray(dataset.images.transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(dataset.standardise(dataset.labels)[:, columns]).float()
    classes = torch.full((len(dataset),), -1, dtype=torch.long) if dataset.classes is None else torch.from_numpy(dataset.classes)
    return TrainData(
        images=images,
        labels=labels,
        classes=classes,
        labeled=labeled_mask(len(dataset), config.model.labeled_fraction, config.train.seed),
        graph=graph,
        label_mean=dataset.label_mean[columns],
        label_std=dataset.label_std[columns],
        num_classes=dataset.num_classes if config.model.class_conditional else 0,
        name=dataset.name,
    )


def configured_graph(config: ExperimentConfig) -> CausalGraph | None:
    """The graph ``data.graph`` names (None: the dataset's own), with errors that name the field."""
    if not config.data.graph:
        return None
    try:
        return CausalGraph.load(config.data.graph)
    except UserError as err:
        raise ConfigError(f"data.graph: {err}") from None


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of an epoch: a permutation that depends only on ``(seed, epoch)``."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def step_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """The ``batch_size`` sample indices of optimiser step ``step`` (incomplete last batches dropped)."""
    per_epoch = n // batch_size
    epoch, position = divmod(step, per_epoch)
    return epoch_order(n, seed, epoch)[position * batch_size : (position + 1) * batch_size]


def step_generator(seed: int, step: int, rank: int, micro: int, device: torch.device) -> torch.Generator:
    """The generator for one micro-batch's noise, timesteps and condition dropout."""
    state = np.random.SeedSequence([seed, step, rank, micro]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


# RNG state as JSON -------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)  # the global generator is always MT19937, so legacy=True gives its tuple
    state = {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


# Grids -------------------------------------------------------------------------------------------


@torch.no_grad()
def save_grid(model: CausalDiffAE, data: TrainData, path: Path, steps: int, seed: int, count: int = 8, spacing: str = "uniform") -> None:
    """Rows: training images spread over the set, their DDIM reconstructions (inversion then decoding), fresh samples with the same z.

    ``spacing`` places the steps as the run's counterfactuals will (``diffusion.sample_spacing``).
    """
    from PIL import Image

    from causaldiffae.counterfactual import INVERSION_REFINE
    from causaldiffae.diffusion import ddim_invert, ddim_sample, ddim_timesteps

    device = model.label_mean.device
    index = torch.linspace(0, len(data) - 1, min(count, len(data))).round().long()  # spread: a split stored in order varies
    batch = data.batch(index, device, channels_last=False)
    if model.encoder is None:
        z = batch["labels"]
    else:
        z = model.propagate(model.encode(batch["image"])[0])
    cond = model.condition(z, batch["class"])
    eps_fn = lambda x, t: model.eps(x, t, cond)  # noqa: E731
    ts = ddim_timesteps(model.scheduler.config.num_train_timesteps, steps, spacing=spacing)
    x_T = ddim_invert(eps_fn, batch["image"], ts, model.alphas_cumprod, refine=INVERSION_REFINE)
    recon = ddim_sample(eps_fn, x_T, ts, model.alphas_cumprod, clip_x0=False)  # as counterfactual.decode after inversion
    noise = torch.randn(batch["image"].shape, generator=torch.Generator().manual_seed(seed)).to(device)
    sample = ddim_sample(eps_fn, noise, ts, model.alphas_cumprod)
    rows = torch.stack([batch["image"], recon, sample])  # (3, B, C, H, W)
    pixels = ((rows.clamp(-1, 1) + 1) * 127.5).round().byte().cpu()
    r, b, c, h, w = pixels.shape
    grid = pixels.permute(0, 3, 1, 4, 2).reshape(r * h, b * w, c).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        Image.fromarray(grid[..., 0] if c == 1 else grid).save(tmp, format="PNG")


# The loop ----------------------------------------------------------------------------------------


def edge_range(images: torch.Tensor) -> list[float]:
    """The middle 99% of the training images' ``edge_brightness`` (uint8 ``(N, C, H, W)``), kept with the
    weights so that ``counterfactual --images`` can tell a file unlike them (an inverted digit) from one alike."""
    low, high = np.quantile(edge_brightness(images.permute(0, 2, 3, 1).numpy()), [0.005, 0.995])
    return [round(float(low), 4), round(float(high), 4)]


def _check_same_data(meta: dict, data: TrainData, where: str) -> None:
    """Weights carried over (``train.init``, ``--resume``) must be for this data's graph and image shape."""
    if meta.get("graph") != data.graph.to_dict():
        raise TrainingError(f"{where}: its graph {meta.get('graph')} differs from the data's {data.graph.to_dict()}")
    if list(meta.get("image_shape", [])) != list(data.image_shape):
        raise TrainingError(f"{where}: image shape {meta.get('image_shape')} differs from the data's {list(data.image_shape)}")


def _check_same_labels(saved: dict[str, torch.Tensor], model: CausalDiffAE, where: Path) -> None:
    """A resumed run must see the data it was trained on: the same label statistics (a dataset
    built with another seed has the same images' shapes and graph but other labels)."""
    for key in ("label_mean", "label_std"):
        if key in saved and not torch.allclose(saved[key].float().cpu(), getattr(model, key).float().cpu(), rtol=1e-5, atol=1e-6):
            raise TrainingError(
                f"{where}: trained on labels with {key} {saved[key].tolist()}, the given data has {getattr(model, key).tolist()}; "
                "resume on the same data or start a new --out"
            )


# Settings that change what the weights compute without changing any weight's shape.
SHAPELESS_ARCHITECTURE = ("model.norm_groups", "model.attention_head_dim", "diffusion.num_train_timesteps",
                          "diffusion.beta_start", "diffusion.beta_end")


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
    _check_same_data(read_model_meta(weights), data, f"train.init={run_dir}")
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
        raise TrainingError(f"train.init={run_dir}: weights do not fit this model's architecture (first mismatch: {(wrong or sorted(set(state) - set(own)))[0]})")
    model.load_state_dict(state)


def resolve_resume(config: ExperimentConfig | None, run_dir: Path, overrides: list[str]) -> ExperimentConfig:
    """The config of a resumed run: the stored one (plus overrides). Once the run has a checkpoint, a different
    given config is refused (but for RESUMABLE_KEYS); before its first, nothing depends on the stored one."""
    stored = read_config(run_dir)
    wanted = stored.with_overrides(overrides, "command line") if config is None else config
    if checkpoint_dirs(run_dir):  # before the first checkpoint nothing trained depends on the stored config
        _check_resumable(stored, wanted, run_dir)
    return wanted


def _setting_changes(stored: ExperimentConfig, wanted: ExperimentConfig) -> list[tuple[str, Any, Any]]:
    """``(key, stored value, wanted value)`` for every setting that differs."""
    new, old = wanted.flat(), stored.flat()
    return [(k, old[k], new[k]) for k in wanted.differences(stored)]


def _check_resumable(stored: ExperimentConfig, wanted: ExperimentConfig, run_dir: Path) -> None:
    changed = [c for c in _setting_changes(stored, wanted) if c[0] not in RESUMABLE_KEYS]
    if changed:
        detail = ", ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changed[:4])
        raise TrainingError(f"{run_dir}/config.yaml disagrees with the given config ({detail}); resume with the stored config or start a new --out")


def _check_out_dir(out: Path, resume: bool) -> list[Path]:
    """Refuse an --out that is not a new run (or, with ``resume``, a run); return its kept checkpoints."""
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} exists and is not a folder")
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


def _choose_precision(wanted: str | None, ckpt: dict | None, last: Path | None, changes: list[str]) -> str:
    """The autocast precision: the one asked for, else a resumed run's own (it is part of the run), else none.

    A change from the run's own is appended to ``changes``; a precision this machine cannot run is refused.
    """
    inherited = False
    if ckpt is not None:
        stored = ckpt["state"].get("mixed_precision")
        if wanted is None:
            wanted, inherited = stored, stored is not None
        elif stored is not None and wanted != stored:
            changes.append(f"mixed precision {stored} -> {wanted}")
    wanted = wanted or "no"
    if wanted not in MIXED_PRECISION:
        raise TrainingError(f"unknown mixed_precision {wanted!r} (use {', '.join(MIXED_PRECISION)})")
    if wanted == "fp16" and not _has_accelerator():
        if inherited:
            raise TrainingError(f"{last}: the run trains with fp16 autocast, which needs a GPU; "
                                "pass --mixed-precision bf16 (or no) to resume it on the CPU")
        raise TrainingError("--mixed-precision fp16 needs a GPU; on CPU use bf16")
    if wanted == "bf16" and not _has_accelerator() and _cpu_bf16() is False:
        warnings.warn(
            "--mixed-precision bf16 on a CPU without avx512_bf16/amx_bf16 is emulated: morphomnist-cpu measured "
            "10.9 s/step against 0.93 s/step in fp32 on such a CPU; use --mixed-precision no",
            stacklevel=3,
        )
    return wanted


@dataclass
class _LogWindow:
    """The logged terms summed over the steps since the last log line. A checkpoint saves it and a
    resumed run restores it, so the resumed run writes the lines an uninterrupted one would."""

    sums: dict[str, float]
    steps: int
    start: float  # time.perf_counter() when the window opened

    EMPTY: ClassVar[dict[str, Any]] = {"sums": {}, "steps": 0, "seconds": 0.0}  # the saved state before any step; only read

    @classmethod
    def restore(cls, saved: dict[str, Any]) -> _LogWindow:
        return cls(dict(saved["sums"]), saved["steps"], time.perf_counter() - saved["seconds"])

    def state(self) -> dict[str, Any]:
        return {"sums": self.sums, "steps": self.steps, "seconds": time.perf_counter() - self.start}

    def add(self, totals: dict[str, torch.Tensor], grad_norm: torch.Tensor) -> None:
        for key, value in totals.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.sums["grad_norm"] = self.sums.get("grad_norm", 0.0) + float(grad_norm)
        self.steps += 1

    def record(self, *, step: int, kl_scale: float, lr: float, batch_size: int) -> dict[str, float]:
        """One metrics.jsonl line: the window's means, the schedule's values and the speed."""
        elapsed = time.perf_counter() - self.start
        record = {k: v / self.steps for k, v in self.sums.items()}
        record.update(step=step, kl_scale=kl_scale, lr=lr, sec_per_step=elapsed / self.steps,
                      images_per_sec=self.steps * batch_size / elapsed)
        return record

    def reset(self) -> None:
        self.sums, self.start, self.steps = {}, time.perf_counter(), 0


def train(
    config: ExperimentConfig,
    data: str | Path | CausalImageDataset,
    out: str | Path,
    *,
    resume: bool = False,
    mixed_precision: str | None = None,
    progress: bool = True,
    time_limit: float | None = None,
) -> Path:
    """Train a model described by ``config`` on ``data`` into the run folder ``out``; returns ``out``.

    ``mixed_precision`` (no, bf16, fp16) defaults to no for a new run and to the run's own on resume.

    ``time_limit`` (seconds of training, counted from the first step) ends the run early with a
    checkpoint, an exported model and a sample grid, for a fixed budget on hardware of unknown
    speed; ``--resume`` later continues it towards ``train.steps``.

    In a single process a first Ctrl-C (SIGINT) or SIGTERM stops the same way after the current
    step, then raises ``KeyboardInterrupt`` (Ctrl-C) or passes SIGTERM on to its handler; a second
    one acts at once.
    """
    lock = _RunLock()
    try:
        return _train(config, data, out, resume=resume, mixed_precision=mixed_precision, progress=progress, time_limit=time_limit,
                      lock=lock)
    finally:
        lock.release()


def _launcher_rank() -> int:
    """This process's rank as its launcher set it (torchrun and accelerate, MPI, Slurm), before
    accelerate is started; 0 when launched alone."""
    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


class _RunLock:
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
        if self.tried or _launcher_rank() != 0:
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


def _train(
    config: ExperimentConfig,
    data: str | Path | CausalImageDataset,
    out: str | Path,
    *,
    resume: bool,
    mixed_precision: str | None,
    progress: bool,
    time_limit: float | None,
    lock: _RunLock,
) -> Path:
    """train()'s body: every check that can fail before anything is written, then the model and
    its restored state, then the loop (steps, log lines, checkpoints, sample grids, stops)."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config: expected an ExperimentConfig (causaldiffae.config.load_config), got {type(config).__name__}")
    # Rebuilt from its fields, so that one edited in Python is checked as a YAML file is, before anything is written.
    config = ExperimentConfig.from_dict(config.to_dict(), "config")
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit >= 0):  # 0: stop after the first step
        raise TrainingError(f"time_limit must be a finite number of seconds >= 0, got {time_limit!r}")
    out = Path(out)
    kept = _check_out_dir(out, resume)
    if resume:  # a run is there (checked): hold it, then read it, since another process may be writing it
        lock.take(out)
        kept = checkpoint_dirs(out)
    if not isinstance(data, CausalImageDataset):
        check_outside(out, data)
    changes: list[str] = []
    if resume and (out / "config.yaml").is_file():
        stored = read_config(out)
        if kept:
            _check_resumable(stored, config, out)
        changes = [f"{k} {old} -> {new}" for k, old, new in _setting_changes(stored, config)]
    t = config.train
    configured_graph(config)  # a bad data.graph fails here, before any image is decoded
    resuming = resume and bool(kept)
    ckpt = load_checkpoint(kept[-1]) if resuming else None  # read once, before any long work
    mixed_precision = _choose_precision(mixed_precision, ckpt, kept[-1] if kept else None, changes)
    # cpu=True on machines without an accelerator, so torchrun / accelerate launch gives gloo DDP there.
    # Gradient accumulation is done here (no_sync + loss / grad_accum), not by accelerate.
    _release_autocast(mixed_precision)
    accelerator = Accelerator(mixed_precision=mixed_precision, cpu=not _has_accelerator())
    _BUILT_PRECISION["last"] = mixed_precision
    world, rank, device = accelerator.num_processes, accelerator.process_index, accelerator.device
    main = accelerator.is_main_process
    if t.batch_size % (world * t.grad_accum):
        raise ConfigError(
            f"train.batch_size={t.batch_size} must be divisible by processes x grad_accum = {world} x {t.grad_accum}"
        )
    micro = t.batch_size // (world * t.grad_accum)

    train_data = _training_data(data, config, progress=progress and main)
    if resume and (out / "model.safetensors").is_file():
        _check_same_data(read_model_meta(out / "model.safetensors"), train_data, f"--resume {out}")
    if resume and main:  # a kill -9 or a power cut skips the writers' own cleanup
        removed = sum(remove_leftovers(folder) for folder in (out, out / "checkpoints", out / "samples"))
        if removed:
            print(f"removed {removed} temporary file(s) that an interrupted write left in {out}")
    model, ema, optimizer = _build(config, train_data, device, init=t.init if not resuming else None, main=main)
    data_order = {"seed": t.seed, "batch_size": t.batch_size, "num_samples": len(train_data)}
    start, saved_window = 0, _LogWindow.EMPTY
    if ckpt is not None:
        start, saved_window = _restore(ckpt, kept[-1], model, ema, optimizer, accelerator, data_order)
        if start > t.steps:
            raise TrainingError(f"--resume {out}: the run is at step {start}, past train.steps={t.steps}; pass a larger train.steps")
    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)
    if main:
        _say_how_it_resumes(out, resume, bool(kept), changes, start, t.steps)
    forward = model if t.compile is None else torch.compile(model, mode=t.compile)
    if t.compile is not None and start < t.steps:
        _check_compiled(model, forward, raw_model, config, train_data, start, rank, micro, main, t.compile)
    meta = {
        "graph": train_data.graph.to_dict(),
        "image_shape": list(train_data.image_shape),
        "num_classes": train_data.num_classes,
        "dataset": train_data.name,
        "edge_brightness": edge_range(train_data.images),
    }
    if main:  # nothing is written before every check has passed
        out.mkdir(parents=True, exist_ok=True)
        lock.take(out)
        if start < t.steps or not kept:  # a finished run resumed with nothing to train keeps the config it was trained with
            save_config(out, config)
        if start < t.steps:  # a finished run keeps its last, part-window line: nothing will log those steps again
            _truncate_metrics(out / "metrics.jsonl", start, keep_last=saved_window["steps"] == 0)
    accelerator.wait_for_everyone()

    def checkpoint(step: int) -> None:
        if main:
            state = {"rng": rng_state(), "data_order": data_order, "log_window": window.state(), "mixed_precision": mixed_precision}
            if accelerator.scaler is not None:  # fp16's loss scale and growth count: without them a resume skips other steps
                state["grad_scaler"] = accelerator.scaler.state_dict()
            save_checkpoint(out, step, raw_model.state_dict(), ema.state_dict(), optimizer.state_dict(), state, t.keep_checkpoints)
            export_model(out, ema.state_dict(), {**meta, "step": step})
            training_curves(out / "metrics.jsonl", out / "curves.png")
        accelerator.wait_for_everyone()

    optimise = _OptimisationStep(model, forward, optimizer, ema, accelerator, train_data, t, micro, out)
    window = _LogWindow.restore(saved_window)
    deadline = None if time_limit is None else time.monotonic() + time_limit
    done = start
    model.train()
    stop = _StopRequest(enabled=world == 1)  # under DDP the processes would have to agree on the step
    bar = tqdm(total=t.steps, initial=start, disable=not (progress and main), desc="train", dynamic_ncols=True)
    with stop, bar:  # closed on every way out, so a stopped run's bar is not redrawn after its last message
        for step in range(start, t.steps):
            lr, lam = learning_rate(step, t.lr, t.warmup_steps), kl_scale(step, t.kl_anneal_steps)
            totals, grad_norm = optimise(step, lr, lam)
            done = step + 1
            window.add(totals, grad_norm)
            bar.update(1)
            last = done == t.steps or stop.requested or _out_of_time(deadline, accelerator)
            on_grid = done % t.log_every == 0
            if on_grid or last:
                record = window.record(step=done, kl_scale=lam, lr=lr, batch_size=t.batch_size)
                bar.set_postfix(loss=f"{record['loss']:.4f}", mse=f"{record['mse']:.4f}")
                if main:
                    with open(out / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(record) + "\n")
            if on_grid:
                window.reset()
            if done % t.checkpoint_every == 0 or last:
                checkpoint(done)
            if main and (done % t.sample_every == 0 or last):
                save_grid(ema, train_data, out / "samples" / f"step-{done:07d}.png", t.grid_steps, t.seed, spacing=config.diffusion.sample_spacing)
            if last:
                break
            if stop.requested:  # it came while this step checkpointed or sampled: stop here, not a step later
                if done % t.checkpoint_every:
                    checkpoint(done)
                break
    if done < t.steps and main:
        if stop.requested:
            print(f"interrupted: stopped at step {done} of {t.steps} with a checkpoint; continue with --resume")
        else:
            print(f"time limit reached: stopped at step {done} of {t.steps}; continue with --resume")
    if main and done > start:
        print(f"step {done}: EMA weights in {out / 'model.safetensors'}, sample grids in {out / 'samples'}, losses in {out / 'metrics.jsonl'}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if done < t.steps:
        stop.pass_on()
    return out


def _training_data(data: str | Path | CausalImageDataset, config: ExperimentConfig, *, progress: bool) -> TrainData:
    """The training split as TrainData: read from a folder, or a given dataset at data.resolution."""
    if not isinstance(data, CausalImageDataset):
        from causaldiffae.data import load_dataset

        data = load_dataset(data, "train", resolution=config.data.resolution, progress=progress)
    elif config.data.resolution is not None and data.images.shape[1:3] != (config.data.resolution,) * 2:
        data = copy.copy(data)  # the run records data.resolution, so later loads see the size it trained on
        data.images = resize_images(data.images, config.data.resolution)
    train_data = prepare_data(data, config)
    batch_size = config.train.batch_size
    if len(train_data) < batch_size:
        raise DataError(f"{data.name}: {len(train_data)} training images, fewer than train.batch_size={batch_size}; "
                        f"pass a smaller one, e.g. train.batch_size={_smaller_batch(len(train_data))}")
    return train_data


def _build(
    config: ExperimentConfig, data: TrainData, device: torch.device, *, init: str | None, main: bool
) -> tuple[CausalDiffAE, CausalDiffAE, torch.optim.Optimizer]:
    """The model (seeded by train.seed, or from ``init``'s weights), its EMA copy and the optimiser, on ``device``."""
    from causaldiffae.models import CausalDiffAE
    from causaldiffae.models.causaldiffae import check_model_size

    t = config.train
    torch.manual_seed(t.seed)
    check_model_size(config.model, data.graph, data.image_shape, data.num_classes, config.diffusion)
    model = CausalDiffAE(config.model, data.graph, data.image_shape, data.num_classes, config.diffusion)
    if init:  # a resumed run's checkpoint holds its weights; the init folder may be gone
        init_weights(model, init, data, config)
        if main:
            print(f"starting from the weights of {init} (train.init)")
    model.set_label_stats(data.label_mean, data.label_std)
    model.to(device)
    if t.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks the keyword
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    # One fused kernel for all parameters: on CPU the per-parameter loop costs more than a small UNet's convs.
    fused = device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, fused=fused)
    return model, ema, optimizer


def _restore(
    ckpt: dict, where: Path, model: CausalDiffAE, ema: CausalDiffAE, optimizer: torch.optim.Optimizer, accelerator: Accelerator,
    data_order: dict,
) -> tuple[int, dict[str, Any]]:
    """Load checkpoint ``where`` into the new run (weights, EMA, optimiser, RNG, fp16 loss scale);
    returns its step and its part-filled log window."""
    order = ckpt["state"].get("data_order")
    if order is not None and order != data_order:
        raise TrainingError(f"{where}: trained with data order {order}, now {data_order}; resume on the same data or start a new --out")
    _check_same_labels(ckpt["model"], model, where)
    try:
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["state"]["rng"])
        if accelerator.scaler is not None and ckpt["state"].get("grad_scaler"):
            accelerator.scaler.load_state_dict(ckpt["state"]["grad_scaler"])
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as err:
        detail = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(f"{where}: the checkpoint does not fit this run ({type(err).__name__}: {detail}); "
                              "delete it to resume from the one before") from None
    return ckpt["state"]["step"], ckpt["state"].get("log_window", _LogWindow.EMPTY)


def _say_how_it_resumes(out: Path, resume: bool, had_checkpoint: bool, changes: list[str], start: int, steps: int) -> None:
    """Tell a resumed run's user where it restarts and which settings changed, or that it is done."""
    if resume and not had_checkpoint:
        print(f"{out} had no checkpoint: starting it again from step 0" + (f" with {', '.join(changes)}" if changes else ""))
    elif changes and start < steps:
        print(f"resuming {out} at step {start} with {', '.join(changes)}")
    if resume and start == steps:
        print(f"{out} is already at train.steps={steps}: nothing to train (raise train.steps to continue)"
              + (f"; its config is left as it was, without {', '.join(changes)}" if changes else ""))


def _check_compiled(
    model: torch.nn.Module, forward: Callable, raw_model: CausalDiffAE, config: ExperimentConfig, data: TrainData, start: int, rank: int,
    micro: int, main: bool, mode: str,
) -> None:
    """Compare the compiled loss's gradients with eager ones on this process's first batch.

    Compiled or not, the random draws (made with explicit generators) stay eager and identical.
    """
    t = config.train
    if main:
        print(f"compiling the training loss (train.compile={t.compile}; a minute or more) and checking its gradients")
    if config.model.dropout > 0:
        warnings.warn("train.compile: gradient check skipped: compiled dropout draws other masks than eager", stacklevel=4)
        return
    device = next(raw_model.parameters()).device
    part = step_indices(len(data), t.batch_size, t.seed, start)[rank * micro : (rank + 1) * micro]
    check_compiled_gradients(
        model, forward, raw_model, data.batch(part, device, t.channels_last),
        lambda: step_generator(t.seed, start, rank, 0, device), mode,
    )


class _OptimisationStep:
    """One optimiser step on the global batch of a step number, whatever the process count: each
    process takes its slice of every micro-batch; gradients add up over the accumulation (DDP
    syncs only on the last) and are averaged over processes; then clipping, AdamW and the EMA."""

    def __init__(self, model: torch.nn.Module, forward: Callable[..., dict[str, torch.Tensor]], optimizer: torch.optim.Optimizer,
                 ema: CausalDiffAE, accelerator: Accelerator, data: TrainData, t: TrainConfig, micro: int, out: Path) -> None:
        self.model, self.forward, self.optimizer = model, forward, optimizer
        self.accelerator, self.data, self.t, self.micro, self.out = accelerator, data, t, micro, out
        self.ema_params: list[torch.Tensor] = list(ema.parameters())
        self.model_params: list[torch.Tensor] = list(accelerator.unwrap_model(model).parameters())

    def __call__(self, step: int, lr: float, kl_weight: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The loss terms averaged over the global batch, and the gradient norm before clipping."""
        t, accelerator = self.t, self.accelerator
        world, rank, device = accelerator.num_processes, accelerator.process_index, accelerator.device
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        lam = torch.tensor(kl_weight, device=device)  # a tensor, so a compiled loss is not rebuilt for each new value
        index = step_indices(len(self.data), t.batch_size, t.seed, step)
        totals: dict[str, torch.Tensor] = {}
        for m in range(t.grad_accum):
            part = index[(m * world + rank) * self.micro : (m * world + rank + 1) * self.micro]
            batch = self.data.batch(part, device, t.channels_last)
            sync = contextlib.nullcontext() if m == t.grad_accum - 1 else accelerator.no_sync(self.model)
            with sync:
                terms = self.forward(batch, lam, step_generator(t.seed, step, rank, m, device))
                accelerator.backward(terms["loss"] / t.grad_accum)
            for key, value in terms.items():
                totals[key] = totals.get(key, 0.0) + value.detach().float() / t.grad_accum
        if world > 1:  # each process holds its share of the batch; the log and the NaN check need the whole batch
            keys = list(totals)
            totals = dict(zip(keys, accelerator.reduce(torch.stack([totals[k] for k in keys]), "mean")))
        loss = totals["loss"]
        if not torch.isfinite(loss):
            saved = checkpoint_dirs(self.out)  # this run may have written some since it started
            where = f"last good checkpoint: {saved[-1]}" if saved else "no checkpoint was written yet"
            raise TrainingError(f"non-finite loss ({float(loss)}) at step {step + 1}; stopped, {where}")
        grad_norm = accelerator.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_lerp_(self.ema_params, self.model_params, 1.0 - ema_decay(step, t.ema_decay))
        return totals, grad_norm


def check_compiled_gradients(
    model: torch.nn.Module,
    compiled: Callable[..., dict[str, torch.Tensor]],
    raw_model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    make_generator: Callable[[], torch.Generator],
    mode: str,
    tolerance: float = 0.1,
) -> None:
    """One micro-batch through the eager and the compiled loss, before any step: torch.compile can
    return wrong gradients (torch 2.13's CPU inductor zeroes those of every diffusers UNet layer
    below its first upsampler), and training on them fails silently. The KL terms count fully
    (``kl_scale`` 1, a tensor like the loop's), whatever the annealing says at this step. Gradients
    are left unset, as they are before a step, and the RNG states as they were found."""
    saved = rng_state()
    kl = torch.ones((), device=next(raw_model.parameters()).device)
    grads = []
    for fn in (model, compiled):
        set_rng_state(saved)
        fn(batch, kl, make_generator())["loss"].backward()
        grads.append({n: p.grad.detach().float().clone() for n, p in raw_model.named_parameters() if p.grad is not None})
        raw_model.zero_grad(set_to_none=True)
    set_rng_state(saved)
    eager, compiled_grads = grads
    total = torch.stack([g.square().sum() for g in eager.values()]).sum().sqrt()
    errors = {}
    for name, g in eager.items():
        if g.norm() > 1e-4 * total or not torch.isfinite(total):  # a gradient zero up to rounding has no relative error
            error = float((g - compiled_grads.get(name, torch.zeros_like(g))).norm() / g.norm())
            errors[name] = error if math.isfinite(error) else math.inf  # a NaN gradient is a failure, not a pass
    worst = max(errors, key=errors.__getitem__, default=None)
    if worst is not None and errors[worst] > tolerance:
        raise TrainingError(
            f"train.compile={mode}: the compiled loss's gradients differ from the eager ones (relative error "
            f"{errors[worst]:.2f} in {worst}), a torch.compile fault with torch {torch.__version__} on "
            f"{total.device.type}; train without train.compile"
        )


def _smaller_batch(n: int) -> int:
    """The largest power of two up to ``n`` images: a batch the data can fill."""
    return 1 << (n.bit_length() - 1)


class _StopRequest:
    """While active, a first SIGINT (Ctrl-C) or SIGTERM (a scheduler's notice) only asks the loop to
    stop after its current step, with a checkpoint, as a time limit would; the handlers then step
    aside, so a second signal acts at once."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.signum: int | None = None  # the signal that asked, passed on once the run has stopped
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "_StopRequest":
        if self.enabled:
            self._previous = swap_handlers(self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self._restore()
        again = "Ctrl-C" if signum == signal.SIGINT else "the signal"
        # os.write, not print: the handler may have interrupted a progress bar's own write to stderr
        os.write(2, f"\nstopping after this step, with a checkpoint ({again} again to abort at once)\n".encode())

    def pass_on(self) -> None:
        """After the stop: Ctrl-C becomes KeyboardInterrupt; SIGTERM goes to the handler it found (exit 143 by default)."""
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is not None:
            signal.raise_signal(self.signum)

    def _restore(self) -> None:
        restore_handlers(self._previous)
        self._previous = {}

    def __exit__(self, *exc: object) -> None:
        self._restore()


def _out_of_time(deadline: float | None, accelerator: Accelerator) -> bool:
    """Whether the time limit has passed; under DDP one late process stops all, so they stay in step.

    A single process reads its clock alone: no device tensor and no sync on the step's hot path.
    """
    if deadline is None:
        return False
    late = time.monotonic() > deadline
    if accelerator.num_processes == 1:
        return late
    return bool(accelerator.reduce(torch.tensor(float(late), device=accelerator.device), "max"))


_BUILT_PRECISION: dict[str, str] = {}  # the autocast precision train() last built accelerate's state with


def _release_autocast(mixed_precision: str) -> None:
    """Let one single-process Python session train runs of different precisions (a notebook, a sweep).

    accelerate fixes the autocast precision once per process and refuses another. Only a state
    train() itself built is released: an Accelerator the caller made shares that state, and
    changing it under them would change their autocast; and in a multi-process run the ranks
    must not rebuild their shared state one by one."""
    from accelerate.state import AcceleratorState, PartialState, is_initialized

    held = AcceleratorState._shared_state.get("_mixed_precision")
    ours = held is not None and held == _BUILT_PRECISION.get("last")
    if is_initialized() and ours and held != mixed_precision and PartialState().num_processes == 1:
        AcceleratorState._reset_state()


def _has_accelerator() -> bool:
    probe = getattr(torch, "accelerator", None)
    return probe.is_available() if probe is not None else torch.cuda.is_available()


def _cpu_bf16() -> bool | None:
    """Whether the CPU computes bf16 natively (Linux ``/proc/cpuinfo`` flags); None where unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _truncate_metrics(path: Path, step: int, keep_last: bool) -> None:
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
