"""Command-line options and checks shared by several commands; torch is imported only when they run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from causaldiffae.config import (
    ABDUCTIONS,
    DEFAULT_ABDUCTION,
    DEFAULT_GUIDANCE,
    DEFAULT_MODE,
    DEFAULT_START,
    DEFAULT_W,
    GUIDANCES,
    MODES,
    SPACINGS,
)
from causaldiffae.errors import UserError, require_folder

if TYPE_CHECKING:
    from causaldiffae.config import ExperimentConfig
    from causaldiffae.models import CausalDiffAE

THREADS_HELP = (
    "torch CPU threads (default: torch's choice, all cores: on a quiet 2-core CPU 2 threads decode a grid 1.7x faster "
    "than 1, benchmarks/grid_decoding.py; use 1 when other work keeps the cores busy, where extra threads spin-wait)"
)
TRAINING_THREADS_HELP = "torch CPU threads per process (default: torch's choice, all cores; 1 when sharing a small machine, where extra threads spin-wait)"


def add_build_options(parser: argparse.ArgumentParser, dataset: str) -> None:
    """``--out``, ``--workers``, ``--force`` and ``--no-progress``, worded alike for every ``data`` builder."""
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all CPUs)")
    parser.add_argument("--force", action="store_true", help=f"replace an earlier {dataset} folder at --out (the whole folder)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def check_input_folders(args: argparse.Namespace, *options: str) -> None:
    """Refuse a missing input folder before torch loads (seconds), so a mistyped path fails at once;
    what a folder holds is checked where it is read. ``data`` must also hold a dataset (format detected)."""
    from causaldiffae.data import detect_format

    for name in options:
        given = getattr(args, name)
        if given is None:
            continue
        if name == "data":
            detect_format(given)
        else:
            require_folder(given, f"{name} folder")


def set_threads(n: int | None) -> None:
    """Apply ``--threads`` before any tensor work; None keeps torch's default."""
    import torch

    if n is None:
        return
    if n < 1:
        raise UserError(f"--threads must be at least 1, got {n}")
    torch.set_num_threads(n)


def check_device(name: str) -> None:
    """Refuse a device torch cannot parse or this machine does not have, before loading anything."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device here (this torch build: {torch.__version__})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available here")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The trained run a command loads, and which of its kept weights (``counterfactual``, ``evaluate``)."""
    parser.add_argument("--run", required=True, help="run folder made by 'causaldiffae train'")
    parser.add_argument("--step", type=int, default=None,
                        help="use the EMA weights of this kept checkpoint (default: the latest, model.safetensors)")


def note_part_trained(model: CausalDiffAE, config: ExperimentConfig, run: str | Path, step: int | None) -> None:
    """A run stopped before its train.steps (Ctrl-C, a lost machine) loads like a finished one; its
    images are a part-trained model's, which a user reading them should know. (``--step`` picks a
    checkpoint on purpose, so it gets no note.)"""
    if step is None and model.trained_steps < config.train.steps:
        print(f"note: {run} has trained {model.trained_steps} of its train.steps={config.train.steps} steps, so its images are a "
              f"part-trained model's ('causaldiffae train --data DATA --out {run} --resume' continues it)", file=sys.stderr)


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``counterfactual`` and ``evaluate``."""
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps for inversion and decoding (default: the run's diffusion.sample_steps)")
    parser.add_argument("--w", type=float, default=DEFAULT_W,
                        help="guidance weight: 1 plain, > 1 stronger interventions, 0..1 weaker ones (0 decodes the --guidance reference "
                             f"itself; a negative weight pushes against the intervention; default {DEFAULT_W:g})")
    parser.add_argument("--guidance", choices=GUIDANCES, default=DEFAULT_GUIDANCE,
                        help="null: guide away from the null condition (classifier-free; needs a model trained with one); "
                             f"factual: away from the factual latent (exact null interventions); default {DEFAULT_GUIDANCE}")
    parser.add_argument("--start", type=float, default=DEFAULT_START,
                        help=f"fraction of the noise levels to abduct and decode through (1: all; 0.6 keeps more of the image; default {DEFAULT_START:g})")
    parser.add_argument("--spacing", choices=SPACINGS, default=None,
                        help="how the steps sit on the noise levels: evenly, or quadratic (more at low noise; default: the run's diffusion.sample_spacing)")
    parser.add_argument("--mode", choices=MODES, default=DEFAULT_MODE, help=f"set the whole block, or shift its mean (default {DEFAULT_MODE})")
    parser.add_argument("--abduction", choices=ABDUCTIONS, default=DEFAULT_ABDUCTION,
                        help="inversion: deterministic DDIM inversion; ddpm: the stochastic sampler's noise, abducted "
                             f"(exact reconstruction, freer edits); stochastic: fresh noise (the reference); default {DEFAULT_ABDUCTION}")
