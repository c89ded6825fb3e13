"""``causaldiffae evaluate``'s test digits, intervention values and one ``ddpm`` abduction, for the
benchmarks that take its edits apart (``intensity_edit_anatomy``, ``intensity_edit_levers``,
``intensity_pull``, ``identity_class_input``, ``ideal_decoder``, ``own_digit_size``).

``--split train`` draws training digits (and values from the training marginal) the same way: a
diagnostic of how much of an error is the model not generalising, never a reported score."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from causaldiffae.checkpoint import load_run
from causaldiffae.config import SPACINGS
from causaldiffae.counterfactual import Abduction, abduct, label_stats
from causaldiffae.data import load_dataset
from causaldiffae.data.base import CausalImageDataset, images_tensor
from causaldiffae.data.morphomnist import ThicknessIntensitySCM
from causaldiffae.demo import WEIGHTS
from causaldiffae.errors import UserError
from causaldiffae.evaluation.metrics import Reader, abduction_generator, draw_indices, marginal_values, morphometric_reader
from causaldiffae.models import CausalDiffAE


@dataclass
class Morpho:
    """A MorphoMNIST split and what these benchmarks read from it, checked present."""

    data: CausalImageDataset
    classes: np.ndarray  # every digit's class
    scm: ThicknessIntensitySCM  # for true counterfactual labels and their noise
    measure: Reader  # its morphometrics


def load_morphomnist(path: str, split: str) -> Morpho:
    """``split`` of the MorphoMNIST folder ``path``; any other dataset is one line naming the folder."""
    data = load_dataset(path, split)
    measure = morphometric_reader(data.graph)
    if not isinstance(data.scm, ThicknessIntensitySCM) or data.classes is None or measure is None:
        raise UserError(f"--data {path}: a {data.name} folder; these benchmarks take a MorphoMNIST one (causaldiffae data morphomnist)")
    return Morpho(data, data.classes, data.scm, measure)


@dataclass
class Draw:
    model: CausalDiffAE
    steps: int  # the run's DDIM steps
    spacing: str  # where they sit on the noise levels
    data: CausalImageDataset  # the MorphoMNIST split drawn from (test unless --split train)
    idx: np.ndarray
    x: torch.Tensor  # the digits in [-1, 1]
    labels: np.ndarray
    values: np.ndarray  # evaluate's intervention values, one row per digit
    label_mean: np.ndarray
    label_std: np.ndarray
    abduction: Abduction
    classes: np.ndarray  # the digits' classes
    scm: ThicknessIntensitySCM  # MorphoMNIST's, for true counterfactual labels
    measure: Reader  # its morphometrics

    @property
    def residuals(self) -> list[torch.Tensor]:
        """The abduction's per-step noise, which a ddpm abduction always records."""
        assert self.abduction.residuals is not None
        return self.abduction.residuals


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True, help="a MorphoMNIST folder (causaldiffae data morphomnist)")
    parser.add_argument("--run", default=str(WEIGHTS), help="run folder (default: the shipped model)")
    parser.add_argument("--step", type=int, default=None, help="a kept checkpoint's EMA weights (default: the run's latest)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spacing", choices=SPACINGS, default=None, help="where the DDIM steps sit (default: the run's sample_spacing)")
    parser.add_argument("--split", choices=("test", "train"), default="test", help="digits to draw (default: test, as evaluate)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; 1 on a busy machine)")
    return parser


def evaluate_draw(args: argparse.Namespace) -> Draw:
    """The digits and values ``evaluate`` scores for seed ``--seed`` (``evaluate`` itself uses 0), or their like from
    ``--split``, abducted once with that seed's first abduction generator."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model, config = load_run(args.run, step=args.step)
    steps, spacing = config.diffusion.sample_steps, args.spacing or config.diffusion.sample_spacing
    morpho = load_morphomnist(args.data, args.split)
    data = morpho.data
    idx = draw_indices(np.random.default_rng(args.seed), len(data), args.n)
    x = images_tensor(data, idx)
    mean, std = label_stats(model)
    abd = abduct(model, x, steps=steps, spacing=spacing, abduction="ddpm", labels=data.labels[idx], class_labels=morpho.classes[idx],
                 generator=abduction_generator(args.seed, 1))  # labels: the condition of a label-conditional run
    values = marginal_values(data.labels, idx, args.seed)
    return Draw(model, steps, spacing, data, idx, x, data.labels[idx], values, mean, std, abd, morpho.classes[idx], morpho.scm, morpho.measure)


if __name__ == "__main__":
    raise SystemExit("evaluate_draw.py is a helper module; run intensity_edit_anatomy.py, intensity_edit_levers.py, intensity_pull.py, "
                     "identity_class_input.py, ideal_decoder.py or own_digit_size.py")
