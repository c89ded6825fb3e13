"""Learned mechanisms ``z_i = f_i(z_pa(i)) + u_i`` over latent blocks, one batched step per graph level.

Each ``f_i`` is an MLP over the concatenated *z* blocks of ``V_i``'s parents (SPEC §1.2), so
effects propagate along every path of the DAG, not just one hop. The MLPs of all variables in a
topological level are stored as stacked weight tensors; the first layer sees the whole latent
through a fixed parent mask, which makes a level one batched matmul per layer (over the
level's variables) rather than a Python loop over variables or samples.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from causaldiffae.graph import CausalGraph


class _LevelMLPs(nn.Module):
    """The mechanisms of the ``k`` variables of one level: ``(B, n*d) -> (B, k, d)``."""

    mask: torch.Tensor

    def __init__(self, graph: CausalGraph, names: tuple[str, ...], block: int, hidden: int, layers: int) -> None:
        super().__init__()
        n, k = len(graph), len(names)
        mask = torch.zeros(k, n * block)
        for j, name in enumerate(names):
            for parent in graph.parents(name):
                p = graph.index(parent)
                mask[j, p * block : (p + 1) * block] = 1.0
        self.register_buffer("mask", mask, persistent=False)
        widths = [n * block] + [hidden] * layers + [block]
        fan_in = mask.sum(1).clamp(min=1.0)  # per variable: only its parents' units are real inputs
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            bound = (1.0 / fan_in if i == 0 else torch.full((k,), 1.0 / w_in)).sqrt().view(k, 1, 1)
            self.weights.append(nn.Parameter((torch.rand(k, w_in, w_out) * 2 - 1) * bound))
            self.biases.append(nn.Parameter(torch.zeros(k, w_out)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # bmm over the level's k variables: einsum and matmul fold a one-variable level into a plain
        # matmul whose weight gradients get other strides than the weights, which DDP warns about
        k = self.mask.shape[0]
        h = torch.bmm(z.expand(k, *z.shape), self.weights[0] * self.mask.unsqueeze(-1)).transpose(0, 1) + self.biases[0]
        for w, b in zip(self.weights[1:], self.biases[1:]):
            h = torch.bmm(nn.functional.silu(h).transpose(0, 1), w).transpose(0, 1) + b
        return h


class CausalLayer(nn.Module):
    """Maps exogenous noise ``u`` to causal latents ``z`` and answers do-interventions on ``z`` blocks."""

    def __init__(self, graph: CausalGraph, block: int, hidden: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.graph = graph
        self.block = block
        self.levels = [names for names in graph.levels[1:]]  # roots have no mechanism: z = u
        self.mechanisms = nn.ModuleList(_LevelMLPs(graph, names, block, hidden, layers) for names in self.levels)

    def _run(self, u: torch.Tensor, fixed: Mapping[int, torch.Tensor]) -> torch.Tensor:
        """Propagate level by level; blocks in ``fixed`` are held at the given values."""
        b, d = u.shape[0], self.block
        noise = list(u.view(b, -1, d).unbind(1))
        z = [fixed.get(i, block) for i, block in enumerate(noise)]
        for names, mlp in zip(self.levels, self.mechanisms):
            out = mlp(torch.cat(z, dim=1)).unbind(1)
            for name, f in zip(names, out):
                i = self.graph.index(name)
                if i not in fixed:
                    z[i] = f + noise[i]
        return torch.cat(z, dim=1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self._run(u, {})

    def intervene(self, u: torch.Tensor, do: Mapping[str, torch.Tensor | float]) -> torch.Tensor:
        """``z`` under ``do(V_k = block_k)``: descendants recomputed from their own ``u``; others untouched.

        Non-descendants are copied from the factual ``z``, so they are bit-identical to ``forward(u)``.
        """
        b, d = u.shape[0], self.block
        fixed = {self.graph.index(name): torch.as_tensor(value, dtype=u.dtype, device=u.device).expand(b, d) for name, value in do.items()}
        factual = self.forward(u).view(b, -1, d)
        changed = set(fixed)
        for name in do:
            changed.update(self.graph.index(v) for v in self.graph.descendants(name))
        counterfactual = self._run(u, fixed).view(b, -1, d)
        mask = torch.zeros(1, len(self.graph), 1, dtype=torch.bool, device=u.device)
        mask[0, sorted(changed)] = True
        return torch.where(mask, counterfactual, factual).reshape(b, -1)
