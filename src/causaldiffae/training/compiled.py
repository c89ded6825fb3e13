"""``train.compile``: the compiled loss is trusted only once its gradients match the eager ones."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Callable

import torch

from causaldiffae.config import ExperimentConfig
from causaldiffae.errors import TrainingError
from causaldiffae.training.data import TrainData
from causaldiffae.training.randomness import rng_state, set_rng_state, step_generator, step_indices

if TYPE_CHECKING:
    from causaldiffae.models import CausalDiffAE


def check_compiled_loss(
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
        warnings.warn("train.compile: gradient check skipped: compiled dropout draws other masks than eager",
                      stacklevel=5)  # here, loop._open, loop._train, train, and the line that called train
        return
    device = next(raw_model.parameters()).device
    part = step_indices(len(data), t.batch_size, t.seed, start)[rank * micro : (rank + 1) * micro]
    worst, error = check_compiled_gradients(
        model, forward, raw_model, data.batch(part, device, t.channels_last),
        lambda: step_generator(t.seed, start, rank, 0, device), mode,
    )
    if main:
        print(f"compiled gradients match the eager ones (worst relative error {error:.1e}, in {worst})")


def check_compiled_gradients(
    model: torch.nn.Module,
    compiled: Callable[..., dict[str, torch.Tensor]],
    raw_model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    make_generator: Callable[[], torch.Generator],
    mode: str,
    tolerance: float = 0.1,
) -> tuple[str, float]:
    """One micro-batch through the eager and the compiled loss, before any step: torch.compile can
    return wrong gradients (torch 2.13's CPU inductor zeroes those of every diffusers UNet layer
    below its first upsampler), and training on them fails silently. The KL terms count fully
    (``kl_scale`` 1, a tensor like the loop's), whatever the annealing says at this step. Gradients
    are left unset, as they are before a step, and the RNG states as they were found. Returns the
    parameter whose gradient differs most and its relative error: how close a passing compile came."""
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
    return (worst, errors[worst]) if worst is not None else ("no parameter", 0.0)
