"""The posterior ``q(u | x0)`` over the exogenous noise of every causal variable (SPEC §1.1)."""

from __future__ import annotations

import torch
from torch import nn


def _groups(channels: int) -> int:
    """The largest group count <= 8 that divides ``channels``, so narrow test encoders still normalise."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class Encoder(nn.Module):
    """Strided conv net (stride 2, GroupNorm, LeakyReLU), then linear heads for mean and log-variance.

    The output width is ``latent_dim``: one equal block per causal variable, then the style block if any.
    """

    def __init__(self, image_shape: tuple[int, int, int], channels: list[int], latent_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = image_shape[0]
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(_groups(c_out), c_out), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.features = nn.Sequential(*layers, nn.Flatten())
        h, w = image_shape[1:]
        for _ in channels:
            h, w = (h + 1) // 2, (w + 1) // 2
        flat = c_in * h * w
        self.mean = nn.Linear(flat, latent_dim)
        self.logvar = nn.Linear(flat, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mean(h), self.logvar(h).clamp(-30.0, 20.0)
