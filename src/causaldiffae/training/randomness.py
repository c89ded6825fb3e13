"""Everything random in training is a function of the step, so a resumed run repeats the uninterrupted one exactly.

The data order is a permutation seeded by ``(seed, epoch)``; each process takes its slice of every
global batch (the sharding is ours, not a sampler's, so it survives restarts); the noise,
timesteps and condition dropout of a micro-batch come from a generator seeded by ``(seed, step,
rank, micro-batch)``. The global RNGs (torch's, used by dropout, numpy's and Python's) are saved
with each checkpoint as JSON.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


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
