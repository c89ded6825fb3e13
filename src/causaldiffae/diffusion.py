"""Noise schedule and samplers: a diffusers scheduler for training, small pure functions for DDIM.

Training draws ``t`` and noises ``x0`` with a ``DDPMScheduler`` (linear or cosine betas, fixed variance).
Sampling and inversion are plain functions of ``(eps_fn, x, timesteps, alphas_cumprod)`` in the
style of k-diffusion samplers: no hidden state, so the counterfactual code can invert, edit and
decode with the same few lines, and deterministic DDIM (eta=0) inverts exactly in the limit of
many steps. ``eps_fn(x, t)`` returns the noise prediction for a batch ``x`` at integer timestep
``t`` (a ``(B,)`` long tensor); a decoder trained to predict ``v`` is turned into one by ``to_eps``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from diffusers import DDPMScheduler

from causaldiffae.config import BETA_SCHEDULES, SPACINGS, DiffusionConfig
from causaldiffae.progress import bar

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_scheduler(config: DiffusionConfig) -> DDPMScheduler:
    """The forward process of SPEC §1.3 (linear betas unless configured cosine), fixed variance, the configured prediction."""
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        beta_schedule=BETA_SCHEDULES[config.beta_schedule],
        prediction_type=config.prediction_type,
        variance_type="fixed_small",
        clip_sample=False,
    )


def to_eps(output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """The noise prediction a decoder ``output`` stands for, so every sampler can speak eps.

    ``alpha_bar`` holds each sample's ``alpha_bar_t`` (shape ``(B,)``). With ``v = sqrt(a) eps -
    sqrt(1 - a) x0`` (Salimans & Ho 2022) and ``x_t = sqrt(a) x0 + sqrt(1 - a) eps``, ``eps =
    sqrt(a) v + sqrt(1 - a) x_t``.
    """
    if prediction_type == "epsilon":
        return output
    if prediction_type != "v_prediction":
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    a = alpha_bar.to(torch.float32).view(-1, *([1] * (x_t.ndim - 1)))
    return a.sqrt() * output.float() + (1 - a).sqrt() * x_t.float()


def training_target(scheduler: DDPMScheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the decoder is trained to output for ``x0`` noised by ``noise`` to level ``t``: the
    noise itself, or the velocity (``to_eps``'s inverse)."""
    return noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """The clean image a noise prediction implies at level ``alpha_bar`` (no dtype change)."""
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """The noise a clean-image estimate implies at level ``alpha_bar`` (no dtype change)."""
    return (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()


def ddim_timesteps(num_train_timesteps: int, steps: int, start: float = 1.0, spacing: str = "uniform") -> torch.Tensor:
    """``steps`` timesteps from the top level ``stride * (steps - 1)`` down to 0, descending.

    ``uniform`` strides evenly (``ddim250`` of 1000: 996, 992, ..., 0). ``quadratic`` places level
    ``i`` of ``steps`` at ``top * (i / (steps - 1))**2`` (the DDIM paper's "quad" schedule): the same
    top level, but most steps at low noise, where an edit's fine detail is drawn (20 steps: 950,
    853, ..., 11, 3, 0). ``start < 1`` spans only the first ``start`` fraction of the noise levels
    (0.6 of 1000 in 20 steps: 570, 540, ..., 0): abduction and decoding then begin from a partly
    noised image, which keeps more of it, as edit-friendly DDPM's skip or SDEdit's strength.
    """
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r} (use {' or '.join(SPACINGS)})")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (one step would sit at t=0 and draw nothing), got {steps}")
    stride = int(num_train_timesteps * start) // steps
    if stride < 1:
        raise ValueError(f"start={start} leaves fewer than {steps} of {num_train_timesteps} timesteps")
    if spacing == "uniform":
        return torch.arange(0, stride * steps, stride, dtype=torch.long).flip(0)
    top = stride * (steps - 1)
    levels = np.round(top * np.linspace(0.0, 1.0, steps) ** 2).astype(np.int64)
    # Rounding merges the lowest levels when steps are many; lifting each to at least its index
    # keeps them distinct (the quadratic's slope exceeds 1 wherever it passes the diagonal).
    levels = np.maximum(levels, np.arange(steps))
    return torch.from_numpy(levels).flip(0).contiguous()


def q_sample(x0: torch.Tensor, t: int, alphas_cumprod: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A forward noising of ``x0`` to level ``t``, float64; the noise is drawn on the CPU, so a seeded
    ``generator`` gives the same ``x_t`` on any device."""
    a = _alpha(alphas_cumprod, t, x0)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64).to(x0.device)
    return a.sqrt() * x0.double() + (1 - a).sqrt() * noise


def _alpha(alphas_cumprod: torch.Tensor, t: int, like: torch.Tensor) -> torch.Tensor:
    """``alpha_bar_t`` as a scalar tensor; ``t < 0`` is the clean image (alpha_bar = 1)."""
    value = alphas_cumprod[t] if t >= 0 else torch.ones((), dtype=alphas_cumprod.dtype)
    return value.to(device=like.device, dtype=torch.float64)


def _sigma2(a_from: torch.Tensor, a_to: torch.Tensor, eta: float) -> torch.Tensor:
    """Variance of the fresh noise a DDIM move with level ``eta`` adds (1: the DDPM posterior's)."""
    return eta**2 * (1 - a_to) / (1 - a_from) * (1 - a_from / a_to)


def _mean(x: torch.Tensor, eps: torch.Tensor, a_from: torch.Tensor, a_to: torch.Tensor, *, eta: float = 0.0, clip_x0: bool = False) -> torch.Tensor:
    """The deterministic part of a DDIM move from noise level ``a_from`` to ``a_to`` along the
    predicted ``x0`` (float64); with ``eta=0`` it is the whole move."""
    x0 = x0_from_eps(x.double(), eps.double(), a_from)
    if clip_x0:
        x0 = x0.clamp(-1, 1)
        eps = eps_from_x0(x.double(), x0, a_from)
    sigma2 = _sigma2(a_from, a_to, eta) if eta else 0.0  # inversion moves from a_from = 1, where _sigma2 is 0/0
    return a_to.sqrt() * x0 + (1 - a_to - sigma2).clamp(min=0).sqrt() * eps.double()


@torch.no_grad()
def ddim_sample(
    eps_fn: EpsFn,
    x_T: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    *,
    eta: float = 0.0,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Denoise ``x_T`` along descending ``timesteps`` to ``x0``; ``eta=0`` is deterministic DDIM."""
    x = x_T
    ts = [int(t) for t in timesteps]
    for i, t in enumerate(bar(ts, desc="ddim", leave=False, enabled=progress)):
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        eps = eps_fn(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
        a_t, a_next = _alpha(alphas_cumprod, t, x), _alpha(alphas_cumprod, t_next, x)
        mean = _mean(x, eps, a_t, a_next, eta=eta, clip_x0=clip_x0)
        if eta != 0.0:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float64)
            mean = mean + _sigma2(a_t, a_next, eta).sqrt() * noise
        x = mean.to(x.dtype)
    return x


@torch.no_grad()
def ddim_invert(
    eps_fn: EpsFn,
    x0: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    *,
    refine: int = 0,
    progress: bool = False,
) -> torch.Tensor:
    """Deterministic DDIM run backwards: encode ``x0`` to the ``x_T`` that ``ddim_sample`` maps back to it.

    ``timesteps`` are the same descending steps the decoder will use. The decoder's move from
    level ``t`` evaluates ``eps`` at the noisier point ``x_t``, which inversion does not know yet:
    plain inversion uses the current, less noisy point instead (exact only with many steps);
    ``refine`` fixed-point iterations re-evaluate ``eps`` at the latest estimate of ``x_t``, so
    that decoding retraces the path even with few steps.
    """
    x = x0
    ts = [int(t) for t in timesteps.flip(0)]
    for i, t in enumerate(bar(ts, desc="ddim-invert", leave=False, enabled=progress)):
        a_prev = _alpha(alphas_cumprod, ts[i - 1] if i > 0 else -1, x)
        a_t = _alpha(alphas_cumprod, t, x)
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x_t = _mean(x, eps_fn(x, t_batch), a_prev, a_t).to(x.dtype)
        for _ in range(refine):
            x_t = _mean(x, eps_fn(x_t, t_batch), a_prev, a_t).to(x.dtype)
        x = x_t
    return x


@torch.no_grad()
def ddpm_invert(
    eps_fn: EpsFn,
    x0: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    *,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Abduct a stochastic sampler's exogenous noise: ``x_T`` and one residual per step.

    Each level ``x_t`` is an independent forward noising of ``x0``; the residual of a step is
    what the sampler must add to the model's mean to land on the next level, so
    :func:`ddpm_decode` with the same ``eps_fn`` returns ``x0`` exactly, while another condition
    decodes with the individual's noise (edit-friendly DDPM inversion, Huberman-Spiegelglas et al. 2024).
    """
    ts = [int(t) for t in timesteps]
    levels = {t: q_sample(x0, t, alphas_cumprod, generator) for t in ts}
    residuals = []
    for i, t in enumerate(bar(ts, desc="ddpm-invert", leave=False, enabled=progress)):
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        x_t = levels[t].to(x0.dtype)
        eps = eps_fn(x_t, torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device))
        mean = _mean(x_t, eps, _alpha(alphas_cumprod, t, x0), _alpha(alphas_cumprod, t_next, x0), eta=eta)
        target = levels[t_next] if t_next >= 0 else x0.double()
        residuals.append((target - mean).to(x0.dtype))
    return levels[ts[0]].to(x0.dtype), residuals


@torch.no_grad()
def ddpm_decode(
    eps_fn: EpsFn,
    x_T: torch.Tensor,
    residuals: list[torch.Tensor],
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    *,
    eta: float = 1.0,
    progress: bool = False,
) -> torch.Tensor:
    """The stochastic sampler driven by abducted noise: each step is the model's mean plus its residual."""
    x = x_T
    ts = [int(t) for t in timesteps]
    for i, t in enumerate(bar(ts, desc="ddpm", leave=False, enabled=progress)):
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        eps = eps_fn(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
        mean = _mean(x, eps, _alpha(alphas_cumprod, t, x), _alpha(alphas_cumprod, t_next, x), eta=eta)
        x = (mean + residuals[i].double()).to(x.dtype)
    return x


def guided(eps_cond: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor], cond: torch.Tensor, null: torch.Tensor, w: float) -> EpsFn:
    """Classifier-free guidance: ``eps = w * eps(x, t, cond) + (1 - w) * eps(x, t, null)``.

    ``w = 1`` is the plain conditional model and ``w = 0`` the reference alone (one forward pass
    each); otherwise both branches run as one doubled batch.
    """
    if w == 1.0:
        return lambda x, t: eps_cond(x, t, cond)
    if w == 0.0:
        return lambda x, t: eps_cond(x, t, null)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        both = eps_cond(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond.expand(b, -1), null.expand(b, -1)]))
        e_cond, e_null = both[:b], both[b:]
        return w * e_cond + (1 - w) * e_null

    return eps_fn
