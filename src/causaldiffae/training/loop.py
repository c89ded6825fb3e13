"""``train``: accelerate for devices, DDP and mixed precision; checkpoints, sample grids, stops and exact resume."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch

from causaldiffae.atomic import atomic_file, remove_leftovers
from causaldiffae.checkpoint import CheckpointError, checkpoint_dirs, export_model, load_checkpoint, read_config, read_model_meta, save_checkpoint, save_config
from causaldiffae.config import ConfigError, ExperimentConfig, TrainConfig
from causaldiffae.data import check_outside
from causaldiffae.data.base import CausalImageDataset
from causaldiffae.data.framing import summarise
from causaldiffae.errors import TrainingError
from causaldiffae.evaluation.figures import training_curves
from causaldiffae.signals import restore_handlers, swap_handlers
from causaldiffae.training.compiled import check_compiled_loss
from causaldiffae.training.data import TrainData, configured_graph, load_training_data
from causaldiffae.training.memory import format_bytes, free_memory, memory_warning, step_memory
from causaldiffae.training.precision import choose_precision, make_accelerator
from causaldiffae.training.randomness import rng_state, set_rng_state, step_generator, step_indices
from causaldiffae.training.run_folder import (
    RunLock,
    check_out_dir,
    check_resumable,
    check_same_data,
    check_same_labels,
    init_weights,
    say_how_it_resumes,
    setting_changes,
    truncate_metrics,
)
from causaldiffae.training.schedules import ema_decay, kl_scale, learning_rate

if TYPE_CHECKING:
    from accelerate import Accelerator

    from causaldiffae.models import CausalDiffAE


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

    Under torchrun the process group outlives the run, so one launch can train several runs; the
    script ends it (``torch.distributed.destroy_process_group()``), as ``causaldiffae train`` does.
    """
    lock = RunLock()
    try:
        return _train(config, data, out, resume=resume, mixed_precision=mixed_precision, progress=progress, time_limit=time_limit,
                      lock=lock)
    finally:
        lock.release()


def _train(
    config: ExperimentConfig,
    data: str | Path | CausalImageDataset,
    out: str | Path,
    *,
    resume: bool,
    mixed_precision: str | None,
    progress: bool,
    time_limit: float | None,
    lock: RunLock,
) -> Path:
    """train()'s body: the run opened (every check that can fail comes before anything is written),
    its steps, then where it stopped; a stop a signal asked for is passed on last."""
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit >= 0):  # 0: stop after the first step
        raise TrainingError(f"time_limit must be a finite number of seconds >= 0, got {time_limit!r}")
    run = _open(config, data, Path(out), resume=resume, mixed_precision=mixed_precision, progress=progress, lock=lock)
    stop = _StopRequest(enabled=run.accelerator.num_processes == 1)  # under DDP the processes would have to agree on the step
    done = _steps(run, stop, progress=progress, time_limit=time_limit)
    total = run.config.train.steps
    if done < total and run.main:
        if stop.requested:
            print(f"interrupted: stopped at step {done} of {total} with a checkpoint; continue with --resume")
        else:
            print(f"time limit reached: stopped at step {done} of {total}; continue with --resume")
    if run.main and done > run.start:
        print(f"step {done}: EMA weights in {run.out / 'model.safetensors'}, sample grids in {run.out / 'samples'}, "
              f"losses in {run.out / 'metrics.jsonl'}")
    run.accelerator.wait_for_everyone()  # the process group stays up: a script under torchrun may train or evaluate again
    if done < total:
        stop.pass_on()
    return run.out


@dataclass
class _Run:
    """An opened run: checked, its folder held and its config written, its model built or restored."""

    out: Path
    config: ExperimentConfig
    accelerator: Accelerator
    mixed_precision: str
    data: TrainData
    model: torch.nn.Module  # as accelerate prepared it (DDP-wrapped under several processes)
    forward: Callable[..., dict[str, torch.Tensor]]  # the model, or its compiled loss
    ema: CausalDiffAE
    optimizer: torch.optim.Optimizer
    micro: int  # each process's micro-batch
    start: int  # the step it starts from
    saved_window: dict[str, Any]  # the restored, part-filled log window
    data_order: dict[str, int]
    meta: dict[str, Any]  # what the exported weights say about the data

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def checkpoint(self, step: int, window: _LogWindow) -> None:
        """A resumable checkpoint, the exported EMA weights and the loss curves, written by the main process."""
        if self.main:
            state = {"rng": rng_state(), "data_order": self.data_order, "log_window": window.state(),
                     "mixed_precision": self.mixed_precision}
            if self.accelerator.scaler is not None:  # fp16's loss scale and growth count: without them a resume skips other steps
                state["grad_scaler"] = self.accelerator.scaler.state_dict()
            raw_model = self.accelerator.unwrap_model(self.model)
            save_checkpoint(self.out, step, raw_model.state_dict(), self.ema.state_dict(), self.optimizer.state_dict(), state,
                            self.config.train.keep_checkpoints)
            export_model(self.out, self.ema.state_dict(), {**self.meta, "step": step})
            training_curves(self.out / "metrics.jsonl", self.out / "curves.png")
        self.accelerator.wait_for_everyone()


def _plan_line(model: CausalDiffAE, data: TrainData, config: ExperimentConfig, precision: str, world: int, start: int,
               memory: int) -> str:
    """What is about to train, so that a run's scale (a paper-sized default on a laptop) shows before its first step."""
    params = sum(p.numel() for p in model.parameters())
    channels, height, width = data.image_shape
    processes = f" over {world} processes" if world > 1 else ""
    per_process = " per process" if world > 1 else ""
    return (f"training {model.variant} ({params / 1e6:.2f}M parameters) on {len(data)} {data.name} images of {channels}x{height}x{width}, "
            f"graph {data.graph}: batch {config.train.batch_size}{processes}, {'fp32' if precision == 'no' else precision}, "
            f"about {format_bytes(memory)} a step{per_process}, steps {start + 1}..{config.train.steps}")


def _open(
    config: ExperimentConfig, data: str | Path | CausalImageDataset, out: Path, *, resume: bool, mixed_precision: str | None,
    progress: bool, lock: RunLock,
) -> _Run:
    """Check the request, read what a resume continues, build or restore the model; only then write
    the folder's config (and cut its log back to the resumed step)."""
    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config: expected an ExperimentConfig (causaldiffae.config.load_config), got {type(config).__name__}")
    # Rebuilt from its fields, so that one edited in Python is checked as a YAML file is, before anything is written.
    config = ExperimentConfig.from_dict(config.to_dict(), "config")
    kept = check_out_dir(out, resume)
    if resume:  # a run is there (checked): hold it, then read it, since another process may be writing it
        lock.take(out)
        kept = checkpoint_dirs(out)
    if not isinstance(data, CausalImageDataset):
        check_outside(out, data)
    changes: list[str] = []
    if resume and (out / "config.yaml").is_file():
        stored = read_config(out)
        if kept:
            check_resumable(stored, config, out)
        changes = [f"{k} {old} -> {new}" for k, old, new in setting_changes(stored, config)]
    t = config.train
    configured_graph(config)  # a bad data.graph fails here, before any image is decoded
    resuming = resume and bool(kept)
    ckpt = load_checkpoint(kept[-1]) if resuming else None  # read once, before any long work
    mixed_precision = choose_precision(mixed_precision, ckpt, kept[-1] if kept else None, changes)
    accelerator = make_accelerator(mixed_precision)  # gradient accumulation is done here (no_sync + loss / grad_accum), not by accelerate
    world, main = accelerator.num_processes, accelerator.is_main_process
    if t.batch_size % (world * t.grad_accum):
        raise ConfigError(
            f"train.batch_size={t.batch_size} must be divisible by processes x grad_accum = {world} x {t.grad_accum}"
        )
    micro = t.batch_size // (world * t.grad_accum)

    train_data = load_training_data(data, config, progress=progress and main)
    if resume and (out / "model.safetensors").is_file():
        check_same_data(read_model_meta(out / "model.safetensors"), train_data, f"--resume {out}")
    if resume and main:  # a kill -9 or a power cut skips the writers' own cleanup
        removed = sum(remove_leftovers(folder) for folder in (out, out / "checkpoints", out / "samples"))
        if removed:
            print(f"removed {removed} temporary file(s) that an interrupted write left in {out}")
    model, ema, optimizer = _build(config, train_data, accelerator.device, init=t.init if not resuming else None, main=main)
    data_order = {"seed": t.seed, "batch_size": t.batch_size, "num_samples": len(train_data)}
    start, saved_window = 0, _LogWindow.EMPTY
    if ckpt is not None:
        start, saved_window = _restore(ckpt, kept[-1], model, ema, optimizer, accelerator, data_order)
        if start > t.steps:
            raise TrainingError(f"--resume {out}: the run is at step {start}, past train.steps={t.steps}; pass a larger train.steps")
    model, optimizer = accelerator.prepare(model, optimizer)
    if main:
        say_how_it_resumes(out, resume, bool(kept), changes, start, t.steps)
        if start < t.steps:
            raw = accelerator.unwrap_model(model)
            memory = step_memory(raw, train_data, micro, accelerator.device, accelerator.autocast, restored=ckpt is not None)
            print(_plan_line(raw, train_data, config, mixed_precision, world, start, memory))
            warning = memory_warning(memory, free_memory(accelerator.device), t.batch_size, world, t.grad_accum)
            if warning:
                warnings.warn(warning, stacklevel=3)
    forward = model if t.compile is None else torch.compile(model, mode=t.compile)
    if t.compile is not None and start < t.steps:
        rank = accelerator.process_index
        check_compiled_loss(model, forward, accelerator.unwrap_model(model), config, train_data, start, rank, micro, main, t.compile)
    meta = {
        "graph": train_data.graph.to_dict(),
        "image_shape": list(train_data.image_shape),
        "num_classes": train_data.num_classes,
        "dataset": train_data.name,
        **summarise(train_data.images.permute(0, 2, 3, 1).numpy()),
    }
    if main:  # nothing is written before every check has passed
        out.mkdir(parents=True, exist_ok=True)
        lock.take(out)
        if start < t.steps or not kept:  # a finished run resumed with nothing to train keeps the config it was trained with
            save_config(out, config)
        if start < t.steps:  # a finished run keeps its last, part-window line: nothing will log those steps again
            truncate_metrics(out / "metrics.jsonl", start, keep_last=saved_window["steps"] == 0)
    accelerator.wait_for_everyone()
    return _Run(out=out, config=config, accelerator=accelerator, mixed_precision=mixed_precision, data=train_data, model=model,
                forward=forward, ema=ema, optimizer=optimizer, micro=micro, start=start, saved_window=saved_window,
                data_order=data_order, meta=meta)


def _steps(run: _Run, stop: _StopRequest, *, progress: bool, time_limit: float | None) -> int:
    """Train from ``run.start`` towards train.steps: log lines, checkpoints and sample grids on their
    grids, and at a stop, a time limit or the end; returns the step reached."""
    from causaldiffae.progress import training_progress

    t, accelerator, out, main = run.config.train, run.accelerator, run.out, run.main
    optimise = _OptimisationStep(run.model, run.forward, run.optimizer, run.ema, accelerator, run.data, t, run.micro, out)
    window = _LogWindow.restore(run.saved_window)
    deadline = None if time_limit is None else time.monotonic() + time_limit
    done = run.start
    run.model.train()
    bar = training_progress(t.steps, run.start, enabled=progress and main, log_every=t.log_every)
    with stop, bar:  # closed on every way out, so a stopped run's bar is not redrawn after its last message
        for step in range(run.start, t.steps):
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
                run.checkpoint(done, window)
            if main and (done % t.sample_every == 0 or last):
                save_grid(run.ema, run.data, out / "samples" / f"step-{done:07d}.png", t.grid_steps, t.seed,
                          spacing=run.config.diffusion.sample_spacing)
            if last:
                break
            if stop.requested:  # it came while this step checkpointed or sampled: stop here, not a step later
                if done % t.checkpoint_every:
                    run.checkpoint(done, window)
                break
    return done


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
    check_same_labels(ckpt["model"], model, where)
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
