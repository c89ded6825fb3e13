"""The eps-predicting decoder: a diffusers ``UNet2DModel`` conditioned through its timestep embedding.

The condition vector is ``Linear(z)`` (plus a class embedding when class-conditional); it is
passed as ``class_labels`` to a UNet built with ``class_embed_type="identity"``, so the UNet adds
it to ``time_emb(t)`` and every residual block sees it through scale-shift normalisation
(SPEC §1.3). The null condition is the zero vector: ``emb = time_emb(t)`` alone. Because
``Linear(z)`` has a bias, a real ``z = 0`` is still distinguishable from "no condition".
"""

from __future__ import annotations

import torch
from diffusers import UNet2DModel
from torch import nn

from causaldiffae.config import ModelConfig


def build_unet(config: ModelConfig, image_shape: tuple[int, int, int]) -> UNet2DModel:
    channels = tuple(config.base_channels * m for m in config.channel_mult)
    attn = set(config.attention_levels)
    down = tuple("AttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(len(channels)))
    up = tuple("AttnUpBlock2D" if i in attn else "UpBlock2D" for i in reversed(range(len(channels))))
    c, h, _ = image_shape
    return UNet2DModel(
        sample_size=h,
        in_channels=c,
        out_channels=c,
        block_out_channels=channels,
        down_block_types=down,
        up_block_types=up,
        layers_per_block=config.layers_per_block,
        attention_head_dim=config.attention_head_dim,
        add_attention=config.mid_attention,
        norm_num_groups=config.norm_groups,
        dropout=config.dropout,
        resnet_time_scale_shift="scale_shift",
        class_embed_type="identity",
    )


class Decoder(nn.Module):
    """UNet plus the projections that turn ``z`` (and a class) into the added time-embedding term."""

    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int], cond_dim: int, num_classes: int) -> None:
        super().__init__()
        self.unet = build_unet(config, image_shape)
        self.emb_dim = self.unet.time_embedding.linear_2.out_features
        self.project = nn.Linear(cond_dim, self.emb_dim)
        self.class_embedding = nn.Embedding(num_classes, self.emb_dim) if num_classes > 0 else None

    def condition(
        self, z: torch.Tensor | None, class_labels: torch.Tensor | None = None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, emb)`` condition; rows where ``keep`` is False (or all rows when ``z`` is None) are null."""
        if z is None:
            batch = class_labels.shape[0] if class_labels is not None else 1
            return torch.zeros(batch, self.emb_dim, device=self.project.weight.device, dtype=self.project.weight.dtype)
        cond = self.project(z)
        if self.class_embedding is not None and class_labels is not None:
            known = class_labels >= 0
            cond = cond + self.class_embedding(class_labels.clamp(min=0)) * known.unsqueeze(1).to(cond.dtype)
        if keep is not None:
            cond = cond * keep.unsqueeze(1).to(cond.dtype)
        return cond

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[0] != x_t.shape[0]:
            cond = cond.expand(x_t.shape[0], -1)
        return self.unet(x_t, t, class_labels=cond, return_dict=False)[0]
