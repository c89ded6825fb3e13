"""What a perfect MorphoMNIST counterfactual scores on the measurements the evaluation uses.

The dataset's own generator performs the true intervention on the real digit
(``causaldiffae.evaluation.oracle``, also part of every MorphoMNIST ``evaluate`` and demo report):
do(intensity) rescales it with ``set_intensity``, do(thickness) redraws it with ``set_thickness``
and the descendant intensity from the SCM's counterfactual, exactly as the generator made the
data. Each edited digit is then measured with the same Morpho-MNIST morphometrics as a model's
counterfactual. This is the floor of the metrics:
measurement and rendering error alone, the error of a model that is exactly right. In
particular it shows whether "thickness kept under do(intensity) within 1.2 x its error on exact
reconstructions" is attainable at all.

    python benchmarks/morphomnist_oracle.py --data data/morphomnist --n 100

Digits and intervention values are drawn exactly as ``causaldiffae demo`` and
``causaldiffae evaluate`` draw them (seed 0: test images by permutation, values a permuted copy
of the test labels with seed 1000).
"""

from __future__ import annotations

import argparse

import numpy as np

from causaldiffae.data import load_dataset
from causaldiffae.evaluation.oracle import morphomnist_oracle_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a MorphoMNIST folder (causaldiffae data morphomnist)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    test = load_dataset(args.data, "test")
    idx = np.sort(np.random.default_rng(args.seed).permutation(len(test))[: args.n])
    values = test.labels[np.random.default_rng(args.seed + 1000).permutation(len(test))][idx]
    o = morphomnist_oracle_scores(test.images[idx], test.labels[idx], values, test.scm)
    rows = [
        ("unedited digit (= exact reconstruction): thickness MAE", o["unedited"]["thickness_mae"]),
        ("do(intensity): thickness MAE (non-descendant, kept)", o["do_intensity"]["thickness_mae"]),
        ("do(intensity): intensity MAE", o["do_intensity"]["intensity_mae"]),
        ("do(thickness): thickness MAE", o["do_thickness"]["thickness_mae"]),
        ("do(thickness): descendant intensity MAE", o["do_thickness"]["intensity_mae"]),
    ]
    print(f"{len(idx)} test digits of {args.data}; the true intervention by the dataset's generator, measured")
    for name, value in rows:
        print(f"{name:<58} {value:.4f}")
    ratio = rows[1][1] / rows[0][1]
    print(f"thickness error under do(intensity) / on exact reconstructions = {ratio:.2f} (the bar asks <= 1.2)")


if __name__ == "__main__":
    main()
