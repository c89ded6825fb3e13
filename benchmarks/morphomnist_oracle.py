"""What a perfect MorphoMNIST counterfactual scores on the measurements the evaluation uses.

The dataset's own generator performs the true intervention on the real digit: do(intensity)
rescales it with ``set_intensity``, do(thickness) redraws it with ``set_thickness`` and the
descendant intensity from the SCM's counterfactual, exactly as the generator made the data. Each edited digit is then measured with the
same Morpho-MNIST morphometrics as a model's counterfactual. This is the floor of the metrics:
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
from causaldiffae.data import morphometrics as mm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a MorphoMNIST folder (causaldiffae data morphomnist)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    test = load_dataset(args.data, "test")
    idx = np.sort(np.random.default_rng(args.seed).permutation(len(test))[: args.n])
    values = test.labels[np.random.default_rng(args.seed + 1000).permutation(len(test))][idx]
    images = test.images[idx].reshape(len(idx), 28, 28)
    labels = test.labels[idx]
    truth = test.scm.counterfactual(labels, {"thickness": values[:, 0]})

    def thick(imgs):
        return np.array([mm.measure_thickness(im) for im in imgs])

    def inten(imgs):
        return np.array([mm.measure_intensity(im) for im in imgs])

    base_t = thick(images)
    do_i = [mm.set_intensity(im, v) for im, v in zip(images, values[:, 1])]
    do_t = [mm.set_thickness(im, t, intensity=i) for im, t, i in zip(images, truth[:, 0], truth[:, 1])]
    rows = [
        ("unedited digit (= exact reconstruction): thickness MAE", np.abs(base_t - labels[:, 0]).mean()),
        ("do(intensity): thickness MAE (non-descendant, kept)", np.abs(thick(do_i) - labels[:, 0]).mean()),
        ("do(intensity): intensity MAE", np.abs(inten(do_i) - values[:, 1]).mean()),
        ("do(thickness): thickness MAE", np.abs(thick(do_t) - truth[:, 0]).mean()),
        ("do(thickness): descendant intensity MAE", np.abs(inten(do_t) - truth[:, 1]).mean()),
    ]
    print(f"{len(idx)} test digits of {args.data}; the true intervention by the dataset's generator, measured")
    for name, value in rows:
        print(f"{name:<58} {value:.4f}")
    ratio = rows[1][1] / rows[0][1]
    print(f"thickness error under do(intensity) / on exact reconstructions = {ratio:.2f} (the bar asks <= 1.2)")


if __name__ == "__main__":
    main()
