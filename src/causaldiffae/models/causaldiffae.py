"""CausalDiffAE and its baselines as one model whose variant is configuration (SPEC §1, §1.6).

| variant             | encoder | causal layer | u prior N(0,I) | label prior | decoder condition |
|---------------------|---------|--------------|----------------|-------------|-------------------|
| ``causaldiffae``      | yes     | yes          | yes            | yes         | z = mechanisms(u) |
| ``diffae``            | yes     | no           | yes            | no          | z = u             |
| ``diffae-aligned``    | yes     | no           | yes            | yes         | z = u             |
| ``label-conditional`` | no      | no           | no             | no          | z = labels        |

KL normalisation: every KL term (u, label prior, style) is averaged per latent dimension (and over the batch), like
the eps MSE is averaged per pixel, so weight 1 means "one nat per latent dimension costs as much
as one unit of squared error per pixel" independently of the latent and image sizes. Summed KLs
would grow with ``n * latent_block`` (512 for the paper preset) and swamp the MSE.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from numpy.typing import ArrayLike
from torch import nn

from causaldiffae.config import MAX_PARAMETERS, DiffusionConfig, ModelConfig
from causaldiffae.diffusion import make_scheduler, to_eps, training_target
from causaldiffae.errors import UserError
from causaldiffae.graph import CausalGraph
from causaldiffae.models.causal_layer import CausalLayer
from causaldiffae.models.decoder import Decoder
from causaldiffae.models.encoder import Encoder


class CausalDiffAE(nn.Module):
    """Encoder ``q(u|x)``, causal layer ``u -> z`` and a z-conditioned diffusion decoder."""

    alphas_cumprod: torch.Tensor
    label_mean: torch.Tensor
    label_std: torch.Tensor

    def __init__(
        self,
        config: ModelConfig,
        graph: CausalGraph,
        image_shape: tuple[int, int, int],
        num_classes: int = 0,
        diffusion: DiffusionConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.graph = graph
        self.variant = config.variant
        channels, height, width = image_shape
        self.image_shape = (channels, height, width)
        self.num_classes = num_classes if config.class_conditional else 0
        self.trained_steps = 0  # set by checkpoint.load_run from the weights' metadata, reported by evaluate
        self.framing: dict[str, Any] = {}  # how its training images are framed (data.framing.summarise), set by load_run; read by --images
        self.block_size = 1 if self.variant == "label-conditional" else config.latent_block
        self.causal_dim = len(graph) * self.block_size
        self.style_dim = config.style_dim
        latent_dim = self.causal_dim + self.style_dim
        self.encoder = None if self.variant == "label-conditional" else Encoder(self.image_shape, config.encoder_channels, latent_dim)
        self.causal = (
            CausalLayer(graph, self.block_size, config.mechanism_hidden, config.mechanism_layers) if self.has_mechanisms else None
        )
        self.decoder = Decoder(config, self.image_shape, latent_dim, self.num_classes)
        self.scheduler = make_scheduler(diffusion or DiffusionConfig())
        self.register_buffer("alphas_cumprod", self.scheduler.alphas_cumprod.clone().float(), persistent=False)
        # Train-set label statistics, saved with the weights so do() values can be given in natural units.
        self.register_buffer("label_mean", torch.zeros(len(graph)))
        self.register_buffer("label_std", torch.ones(len(graph)))

    # Variant facts -------------------------------------------------------------------------------

    @property
    def has_mechanisms(self) -> bool:
        return self.variant == "causaldiffae"

    @property
    def has_label_prior(self) -> bool:
        return self.variant in ("causaldiffae", "diffae-aligned")

    @property
    def has_null_condition(self) -> bool:
        return self.config.cond_drop_prob > 0 or self.config.labeled_fraction < 1

    def set_label_stats(self, mean: ArrayLike, std: ArrayLike) -> None:
        self.label_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.label_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    # Model contract (docs/design.md) -----------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(u | x)``, ``(B, n * block + style)`` each."""
        if self.encoder is None:
            raise UserError("the label-conditional variant has no encoder: its condition is the labels themselves")
        return self.encoder(x)

    def split(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A latent (``u`` or ``z``) as its causal part ``(B, n * block)`` and its style block ``(B, style)``."""
        return v[:, : self.causal_dim], v[:, self.causal_dim :]

    def blocks(self, z: torch.Tensor) -> torch.Tensor:
        """The causal blocks of a latent, ``(B, n, block)``; the style block is left out."""
        return self.split(z)[0].reshape(z.shape[0], len(self.graph), self.block_size)

    def propagate(self, u: torch.Tensor) -> torch.Tensor:
        """``z`` from ``u`` through the causal layer (identity for variants without mechanisms).

        The style block is exogenous to every variable, so it passes through unchanged.
        """
        u_causal, u_style = self.split(u)
        z = self.causal(u_causal) if self.causal is not None else u_causal
        return torch.cat([z, u_style], dim=1)

    def intervene(self, u: torch.Tensor, do: Mapping[str, torch.Tensor | float]) -> torch.Tensor:
        """``z`` under ``do(name = block)``; descendants recomputed, non-descendants (and style) bit-identical."""
        values = {name: self._block_value(name, value, u) for name, value in do.items()}
        u_causal, u_style = self.split(u)
        if self.causal is not None:
            return torch.cat([self.causal.intervene(u_causal, values), u_style], dim=1)
        blocks = list(self.blocks(u).unbind(1))
        for name, block in values.items():
            blocks[self.graph.index(name)] = block
        return torch.cat([*blocks, u_style], dim=1)

    def _block_value(self, name: str, value: torch.Tensor | float, u: torch.Tensor) -> torch.Tensor:
        """A do() value as ``(B, block)``: a scalar fills every block; anything else must have that
        shape (a ``(B,)`` vector would broadcast along the block when ``B == block``)."""
        self.graph.index(name)
        b, d = u.shape[0], self.block_size
        value = torch.as_tensor(value, dtype=u.dtype, device=u.device)
        if value.ndim == 0:
            return value.expand(b, d)
        if tuple(value.shape) != (b, d):
            raise UserError(f"do({name}=...): expected a scalar or a ({b}, {d}) block per sample, got shape {tuple(value.shape)}")
        return value

    def condition(
        self, z: torch.Tensor | None, class_labels: torch.Tensor | None = None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decoder condition ``(B, emb)``; ``z=None`` gives the null condition, ``keep`` nulls chosen rows."""
        return self.decoder.condition(z, class_labels if self.num_classes else None, keep)

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler.config.prediction_type)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The noise prediction at ``x_t``, whatever the decoder was trained to predict."""
        return to_eps(self.decoder(x_t, t, cond), x_t, self.alphas_cumprod[t], self.prediction_type)

    # Training objective (SPEC §1.4) -------------------------------------------------------------

    def forward(
        self, batch: Mapping[str, torch.Tensor], kl_scale: float | torch.Tensor = 1.0, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """The training loss (see ``loss``); ``forward`` so DDP and autocast wrappers apply to it."""
        return self.loss(batch, kl_scale, generator)

    def latent(self, batch: Mapping[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The training-time latent: ``z`` (with ``u = mu + sqrt(s * var) * eps``) and the posterior."""
        if self.encoder is None:
            return {"z": batch["labels"].to(self.label_mean.dtype)}
        mu, logvar = self.encode(batch["image"])
        std = (0.5 * logvar).exp() * self.config.z_noise_scale**0.5
        u = mu + std * torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return {"z": self.propagate(u), "mu": mu, "logvar": logvar}

    def loss(
        self, batch: Mapping[str, torch.Tensor], kl_scale: float | torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """``mse + kl_scale * (kl_weight * KL_u + label_weight * KL_label + style_kl_weight * KL_style)``;
        terms are per-dim means (``KL_u`` over the causal blocks, ``KL_style`` over the style block).

        ``batch["labeled"]`` (bool, B) marks samples that keep labels; the others train with the
        null condition and contribute no label-prior term.
        """
        x = batch["image"]
        b, device = x.shape[0], x.device
        labeled = batch.get("labeled", torch.ones(b, dtype=torch.bool, device=device))
        lat = self.latent(batch, generator)
        z = lat["z"]
        zero = torch.zeros((), device=device)
        kl_u = kl_label = kl_style = zero
        if "mu" in lat:
            mu, logvar = lat["mu"].float(), lat["logvar"].float()
            kl_causal, kl_style_dims = self.split(0.5 * (mu.square() + logvar.exp() - 1.0 - logvar))
            kl_u = kl_causal.mean()
            if self.style_dim:
                kl_style = kl_style_dims.mean()
        z_causal, z_style = self.split(z)
        if self.has_label_prior:
            target = batch["labels"].float().repeat_interleave(self.block_size, dim=1)
            per_sample = 0.5 * (z_causal.float() - target).square().mean(dim=1)
            kl_label = (per_sample * labeled.float()).sum() / b
        drop = torch.rand(b, generator=generator, device=device) < self.config.cond_drop_prob
        keep = labeled & ~drop
        if self.style_dim:
            # Without style the decoder must draw the labelled factors from their own blocks.
            drop_style = torch.rand(b, generator=generator, device=device) < self.config.style_drop_prob
            z = torch.cat([z_causal, z_style * (~drop_style).unsqueeze(1).to(z.dtype)], dim=1)
        cond = self.condition(z, batch.get("class"), keep)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=generator, device=device)
        noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
        x_t = self.scheduler.add_noise(x, noise, t)
        if x.is_contiguous(memory_format=torch.channels_last):
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        mse = (self.decoder(x_t, t, cond).float() - training_target(self.scheduler, x, noise, t).float()).square().mean()
        c = self.config
        loss = mse + kl_scale * (c.kl_weight * kl_u + c.label_weight * kl_label + c.style_kl_weight * kl_style)
        out = {"loss": loss, "mse": mse.detach(), "kl_u": kl_u.detach(), "kl_label": kl_label.detach()}
        if self.style_dim:
            out["kl_style"] = kl_style.detach()
        return out


def check_model_size(
    config: ModelConfig, graph: CausalGraph, image_shape: tuple[int, int, int], num_classes: int = 0,
    diffusion: DiffusionConfig | None = None, source: str = "config",
) -> int:
    """The model's parameter count, found by building it on the meta device (no memory), and refused past
    ``MAX_PARAMETERS``: each width is bounded, but a config or a downloaded run could multiply them into terabytes."""
    with torch.device("meta"):
        count = sum(p.numel() for p in CausalDiffAE(config, graph, image_shape, num_classes, diffusion).parameters())
    if count > MAX_PARAMETERS:
        raise UserError(f"{source}: the model would have {count / 1e9:.3g}G parameters ({4 * count / 2**30:.3g} GiB in fp32), "
                        f"more than the {MAX_PARAMETERS / 1e9:g}G this library builds")
    return count
