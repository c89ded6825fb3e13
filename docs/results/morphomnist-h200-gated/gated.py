"""Experiment: the latent z enters the decoder as a multiplicative gate, DiffAE-style.

SPEC §1.3 adds ``Linear(z)`` to the timestep embedding, so z and t share each residual block's
scale-shift. DiffAE (Preechakul et al. 2022) instead scales each block's normalised features by a
per-channel gate of z: ``h = (1 + g(z)) * (t_s * GN(h) + ...)``. This script swaps the project's
``Decoder`` for one that gates every ResNet block's ``norm2`` output by ``1 + Linear_b(z)`` (zero-
initialised, so training starts from the plain UNet), then runs a causaldiffae command with it:

    GATED=gate   python gated.py train ...     # z only through the gates (class still added to temb)
    GATED=hybrid python gated.py train ...     # the shipped additive path and the gates
    GATED=gate   python gated.py bench ARGS    # benchmarks/preservation_bar.py on such a run
    GATED=gate   python gated.py levers ARGS   # benchmarks/intensity_edit_levers.py on such a run

The null condition (z dropped for guidance) leaves every gate at 1. Not part of the package: a
record of one device experiment (README.md here).
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import torch
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

import causaldiffae.models.causaldiffae as model_module
from causaldiffae.models.decoder import Decoder

MODE = os.environ.get("GATED", "gate")
assert MODE in ("gate", "hybrid"), MODE


class GatedDecoder(Decoder):
    """The project's decoder with a per-block gate of z on each ResNet block's normalised features."""

    def __init__(self, config, image_shape, cond_dim, num_classes):  # type: ignore[no-untyped-def]
        super().__init__(config, image_shape, cond_dim, num_classes)
        self.cond_dim = cond_dim
        blocks = [m for m in self.unet.modules() if isinstance(m, ResnetBlock2D)]
        self.gates = nn.ModuleList(nn.Linear(cond_dim, b.norm2.num_channels) for b in blocks)
        for i, (gate, block) in enumerate(zip(self.gates, blocks)):
            nn.init.zeros_(gate.weight)
            nn.init.zeros_(gate.bias)
            block.norm2.gate_index = i  # the hook is a plain function: copies of the model (EMA) gate by their own weights
            block.norm2.register_forward_hook(_gated)

    def condition(self, z, class_labels=None, keep=None):  # type: ignore[no-untyped-def]
        ref = self.project.weight
        if z is None:
            batch = class_labels.shape[0] if class_labels is not None else 1
            return torch.zeros(batch, self.emb_dim + self.cond_dim + 1, device=ref.device, dtype=ref.dtype)
        add = self.project(z) if MODE == "hybrid" else torch.zeros(z.shape[0], self.emb_dim, device=ref.device, dtype=ref.dtype)
        if self.class_embedding is not None and class_labels is not None:
            known = class_labels >= 0
            add = add + self.class_embedding(class_labels.clamp(min=0)) * known.unsqueeze(1).to(add.dtype)
        flag = torch.ones(z.shape[0], 1, device=z.device, dtype=add.dtype)
        zz = z.to(add.dtype)
        if keep is not None:
            k = keep.unsqueeze(1).to(add.dtype)
            add, zz, flag = add * k, zz * k, flag * k
        return torch.cat([add, zz, flag], dim=1)

    def forward(self, x_t, t, cond):  # type: ignore[no-untyped-def]
        if cond.shape[0] != x_t.shape[0]:
            cond = cond.expand(x_t.shape[0], -1)
        add, z, flag = cond.split([self.emb_dim, self.cond_dim, 1], dim=1)
        global _ACTIVE
        _ACTIVE = (self, z, flag)
        try:
            return self.unet(x_t, t, class_labels=add, return_dict=False)[0]
        finally:
            _ACTIVE = None


_ACTIVE: tuple[GatedDecoder, torch.Tensor, torch.Tensor] | None = None  # the decoder running, its z and null flags


def _gated(module, inputs, output):  # type: ignore[no-untyped-def]
    decoder, z, flag = _ACTIVE
    gate = decoder.gates[module.gate_index]
    scale = gate(z.to(gate.weight.dtype)) * flag
    return output * (1 + scale[:, :, None, None].to(output.dtype))


model_module.Decoder = GatedDecoder  # type: ignore[misc]
BENCHMARKS = {"bench": "preservation_bar.py", "levers": "intensity_edit_levers.py"}

if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command in BENCHMARKS:
        bench = Path(__file__).resolve().parents[3] / "benchmarks" / BENCHMARKS[command]
        sys.argv = [str(bench), *rest]
        sys.path.insert(0, str(bench.parent))
        runpy.run_path(str(bench), run_name="__main__")
    else:
        from causaldiffae.cli import main

        raise SystemExit(main([command, *rest]))
