"""What a perfect MorphoMNIST counterfactual scores on the measurements the evaluation uses, and
what one a few grey levels off the perfect image scores.

The dataset's own generator performs the true intervention (``causaldiffae.evaluation.oracle``,
also part of every MorphoMNIST ``evaluate`` and demo report): it redraws each digit from the same
real MNIST original with the SCM's counterfactual labels, exactly as it drew the data. Each
redrawn digit is measured with the same Morpho-MNIST morphometrics as a model's counterfactual:
the floor of the metrics, the error of a model that is exactly right.

The medial-axis thickness reacts to small grey-level changes, so the benchmark also scores the
true do(intensity) counterfactuals with every stroke pixel moved by a random integer in
[-k, k] grey levels (seeded): how close to the exact image a model must be for "thickness kept
under do(intensity) within 1.2 x its error on exact reconstructions".

It also scores the dataset's own intensity operation applied to the unedited digit
(``morphometrics.set_intensity``: a gain, clipped at 255) as a do(intensity) edit, split into
brightening and dimming. Brightening saturates the stroke's core, which widens it at the
half-maximum cut; the generator's true intervention redraws the stroke thinner to keep the
thickness, a proportional rescaling does not.

    python benchmarks/morphomnist_oracle.py --data data/morphomnist --n 100

Digits and intervention values are drawn exactly as ``causaldiffae evaluate`` draws them (seed 0:
test images by permutation, values a permuted copy of the test labels with seed 1000).
"""

from __future__ import annotations

import argparse

import numpy as np
from evaluate_draw import load_morphomnist

from causaldiffae.data import morphometrics as mm
from causaldiffae.data.morphomnist import source_digits
from causaldiffae.evaluation.metrics import draw_indices, mae, marginal_values
from causaldiffae.evaluation.oracle import morphomnist_oracle_scores, morphomnist_true_counterfactuals

GREY_LEVELS = (1, 2, 4)


def jittered(digits: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Stroke pixels (>= 1/4 of the digit's peak) moved by a random integer in [-k, k]."""
    out = digits.astype(np.int64)
    stroke = out >= out.max(axis=(1, 2), keepdims=True) // 4
    out[stroke] += rng.integers(-k, k + 1, size=int(stroke.sum()))
    return np.clip(out, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a MorphoMNIST folder (causaldiffae data morphomnist)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    morpho = load_morphomnist(args.data, "test")
    test = morpho.data
    sources = source_digits(args.data, "test")
    idx = draw_indices(np.random.default_rng(args.seed), len(test), args.n)
    images, labels = test.images[idx], test.labels[idx]
    values = marginal_values(test.labels, idx, args.seed)
    true = morphomnist_true_counterfactuals(sources[idx], labels, values, morpho.scm)
    o = morphomnist_oracle_scores(images, true, labels)
    rows = [
        ("unedited digit (= exact reconstruction): thickness MAE", o["unedited"]["thickness_mae"]),
        ("do(intensity): thickness MAE (non-descendant, kept)", o["do_intensity"]["thickness_mae"]),
        ("do(intensity): intensity MAE", o["do_intensity"]["intensity_mae"]),
        ("do(thickness): thickness MAE", o["do_thickness"]["thickness_mae"]),
        ("do(thickness): descendant intensity MAE", o["do_thickness"]["intensity_mae"]),
    ]
    drawn, truth = true["intensity"]
    rng = np.random.default_rng(args.seed)
    for k in GREY_LEVELS:
        measured = np.array([mm.measure_thickness(d) for d in jittered(drawn, k, rng)])
        rows.append((f"do(intensity), true image +-{k} grey levels: thickness MAE", mae(measured, truth[:, 0])))
    digits = images.reshape(-1, 28, 28)
    thickness = np.array([mm.measure_thickness(mm.set_intensity(d, v)) for d, v in zip(digits, truth[:, 1])])
    change = thickness - np.array([mm.measure_thickness(d) for d in digits])
    brighter = truth[:, 1] > labels[:, 1]
    rows.append(("do(intensity) as the unedited digit rescaled: thickness MAE", mae(thickness, truth[:, 0])))
    for name, part in (("brightened", brighter), ("dimmed", ~brighter)):
        rows.append((f"  {name} ({part.sum()} digits): thickness MAE", mae(thickness[part], truth[part, 0])))
        rows.append((f"  {name}: mean thickness change from the unedited digit", change[part].mean()))
    print(f"{len(idx)} test digits of {args.data}; the true intervention by the dataset's generator, measured")
    for name, value in rows:
        print(f"{name:<64} {value:.4f}")
    bar = 1.2 * rows[0][1]
    print(f"bar for thickness kept under do(intensity): 1.2 x {rows[0][1]:.4f} = {bar:.4f}; "
          f"the true counterfactual is at {rows[1][1] / rows[0][1]:.2f} x")


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))
