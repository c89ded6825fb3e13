"""The step-indexed schedules of training: stateless functions, so a resumed run needs no scheduler state."""

from __future__ import annotations


def kl_scale(step: int, anneal_steps: int) -> float:
    """``lambda_k``: rises linearly from 0 at step 0 to 1 at ``anneal_steps``, then stays at 1."""
    return 1.0 if anneal_steps <= 0 else min(1.0, step / anneal_steps)


def learning_rate(step: int, lr: float, warmup_steps: int) -> float:
    """Linear warm-up, then constant (stateless, so resuming needs no scheduler state)."""
    return lr if warmup_steps <= 0 else lr * min(1.0, (step + 1) / warmup_steps)


def ema_decay(step: int, decay: float) -> float:
    """EMA decay with the usual warm-up, so early EMA weights are not dominated by the initialisation."""
    return min(decay, (1 + step) / (10 + step))
