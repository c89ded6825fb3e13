"""Tiny configs and synthetic datasets shared by the model and training tests (fast on 2 CPU cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from causaldiffae.config import ExperimentConfig
from causaldiffae.data.base import CausalImageDataset
from causaldiffae.graph import CausalGraph
from causaldiffae.models import CausalDiffAE

TINY = {
    "name": "tiny",
    "model": {
        "latent_block": 4,
        "encoder_channels": [8, 8],
        "mechanism_hidden": 8,
        "base_channels": 8,
        "channel_mult": [1, 2],
        "layers_per_block": 1,
        "attention_levels": [],
        "mid_attention": True,
        "attention_head_dim": 8,
        "norm_groups": 8,
    },
    "diffusion": {"num_train_timesteps": 100, "sample_steps": 10},
    "train": {
        "steps": 4,
        "batch_size": 8,
        "lr": 1e-3,
        "ema_decay": 0.9,
        "kl_anneal_steps": 4,
        "log_every": 1,
        "sample_every": 1000,
        "checkpoint_every": 2,
        "keep_checkpoints": 2,
        "grid_steps": 2,
    },
}


def tiny_config(*overrides: str) -> ExperimentConfig:
    return ExperimentConfig.from_dict(TINY, "tiny").with_overrides(overrides)


def synthetic_dataset(n: int = 32, size: int = 8, graph: str = "a -> b", seed: int = 0) -> CausalImageDataset:
    """Blobs whose brightness follows the first variable: enough structure for a loss to fall."""
    rng = np.random.default_rng(seed)
    g = CausalGraph.parse(graph)
    labels = rng.normal(size=(n, len(g)))
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / size)
    images = (255 * blob[None] * (0.5 + 0.5 / (1 + np.exp(-labels[:, :1, None])))).astype(np.uint8)[..., None]
    classes = rng.integers(0, 3, size=n)
    return CausalImageDataset(
        images, labels, g, labels.mean(0), labels.std(0), name="synthetic", split="train", classes=classes, num_classes=3
    )


def exploding_loss(at_call: int, here: bool = True) -> Callable:
    """A replacement for ``CausalDiffAE.loss`` whose ``at_call``-th call (from 1) returns a NaN loss
    when ``here``; its ``calls`` attribute counts the calls."""
    original = CausalDiffAE.loss

    def loss(self, batch, scale, generator=None):
        terms = original(self, batch, scale, generator)
        loss.calls += 1
        if here and loss.calls == at_call:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    loss.calls = 0
    return loss


# Training in bf16 on a CPU without native bf16 warns (tested in training/test_precision.py); tests that use bf16 for other reasons filter it.
EMULATED_BF16_IS_NOT_THE_SUBJECT = pytest.mark.filterwarnings("ignore:--mixed-precision bf16 on a CPU:UserWarning")


def read_metrics(run: Path) -> list[dict]:
    """The lines of a run's metrics.jsonl, strictly: a line cut short fails the test (``figures.read_metrics``,
    which draws the curves, skips one), so the resume tests see any line truncation should have removed."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def torchrun(tmp_path: Path, body: str) -> None:
    """Run ``body`` (after importing the fixtures and ``training``) in two gloo processes; ``out`` is ``tmp_path``."""
    script = tmp_path / "worker.py"
    script.write_text(
        f"""
import hashlib, json, os, sys
import torch
sys.path.insert(0, {str(Path(__file__).parent)!r})
from training_fixtures import synthetic_dataset, tiny_config
from causaldiffae import training

torch.set_num_threads(1)
out = {str(tmp_path)!r}
"""
        + body
        # a process group left to interpreter shutdown can abort (SIGABRT) while gloo's threads wind down
        + "\nif torch.distributed.is_initialized():\n    torch.distributed.destroy_process_group()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        env=env, capture_output=True, text=True, timeout=120,  # a disagreement between processes hangs DDP
    )
    assert result.returncode == 0, result.stderr[-3000:]
