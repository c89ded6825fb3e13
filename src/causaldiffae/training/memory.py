"""A training step's memory, estimated before the first step.

A paper-sized model at its batch of 128 needs about 10 GB a step on the CPU; on a laptop that is
an hour of swap before the first log line. Counting what one small forward pass keeps for the
backward pass tells the run's scale in a second, so the plan line can say it and warn when the
machine has less free.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch

from causaldiffae.training.data import TrainData
from causaldiffae.training.randomness import step_generator

BACKWARD_FACTOR = 1.2  # peak growth / saved bytes: 1.0-1.4 measured over presets and batches (benchmarks/train_memory.py)
GRADIENT_BYTES = 4  # per fp32 parameter: its gradient, all a resumed run (its moments restored) has yet to allocate
MOMENT_BYTES = 8  # per fp32 parameter: AdamW's two moments
STATE_BYTES = GRADIENT_BYTES + MOMENT_BYTES  # per fp32 parameter beyond the model and its EMA


def saved_bytes(model: torch.nn.Module, data: TrainData, count: int, device: torch.device,
                autocast: Callable[[], contextlib.AbstractContextManager]) -> int:
    """Bytes the training loss on ``count`` images saves for its backward pass, parameters not counted
    (they are held anyway); the global random state is left as it was (dropout draws from it)."""
    held = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in held:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    batch = data.batch(torch.arange(count) % len(data), device, channels_last=False)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast():
        model(batch, torch.tensor(1.0, device=device), step_generator(0, 0, 0, 0, device))
    return sum(seen.values())


def step_memory(model: torch.nn.Module, data: TrainData, micro: int, device: torch.device,
                autocast: Callable[[], contextlib.AbstractContextManager], *, restored: bool = False) -> int:
    """About how many bytes a step on micro-batches of ``micro`` images adds to the model, its EMA and the data.

    Two probes (one image, two) split what the forward pass saves into a part per image and a fixed
    part (autocast's weight copies); the backward pass holds gradients beside them, which
    ``BACKWARD_FACTOR`` accounts for; the gradient and AdamW's moments take ``STATE_BYTES`` per
    parameter, of which a resumed run (``restored``) already holds the moments.
    """
    one, two = (saved_bytes(model, data, n, device, autocast) for n in (1, 2))
    per_image, fixed = two - one, max(2 * one - two, 0)
    params = sum(p.numel() for p in model.parameters())
    state = GRADIENT_BYTES if restored else STATE_BYTES
    return int(BACKWARD_FACTOR * (fixed + per_image * micro) + state * params)


@dataclass(frozen=True)
class FreeMemory:
    """Bytes free where a step runs; ``shared`` when every process of the run draws on them (a CPU)."""

    bytes: int
    where: str
    shared: bool


def free_memory(device: torch.device) -> FreeMemory | None:
    """What is free where the step will run; None where unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return FreeMemory(free, str(device), shared=False)
    if device.type == "cpu":
        import psutil

        return FreeMemory(psutil.virtual_memory().available, "this machine", shared=True)
    return None


def format_bytes(n: float) -> str:
    """``840 MB``, ``17.3 GB``."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def memory_warning(need: int, free: FreeMemory | None, batch_size: int, processes: int, grad_accum: int) -> str | None:
    """One line when ``processes`` steps of ``need`` bytes each would not fit in what is free, with what to change.

    A GPU is suggested only to a run on shared (CPU) memory; one already on a GPU is told what to
    change there.
    """
    if free is None:
        return None
    total = need * processes if free.shared else need
    if total <= free.bytes:
        return None
    parts = 2 * grad_accum
    split = f", or take each batch in parts (train.grad_accum={parts} halves it)" if batch_size % (processes * parts) == 0 else ""
    elsewhere = ", or train on a GPU" if free.shared else ""
    return (f"a training step needs about {format_bytes(total)} of memory and {free.where} has {format_bytes(free.bytes)} "
            f"free; lower train.batch_size{split}{elsewhere}")
