"""Pendulum generator fidelity and speed.

Renders every ``--every``-th grid image in this process (one core), reads the shadow back off the
pixels with ``pendulum.measure_shadow`` and prints the error against the exact labels for the
shadows fully inside the image, and the milliseconds per rendered, PNG-encoded image. With
``--dataset DIR`` it checks an existing folder instead (labels from its CSVs or file names).

    python benchmarks/pendulum_fidelity.py --every 4
    python benchmarks/pendulum_fidelity.py --dataset data/pendulum
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from causaldiffae.data import pendulum


def visible(labels: np.ndarray) -> np.ndarray:
    """Shadows whose line lies inside x in [0, 20]."""
    return (labels[:, 3] - labels[:, 2] / 2 >= 0) & (labels[:, 3] + labels[:, 2] / 2 <= 20)


def report(images: np.ndarray, labels: np.ndarray, label: str) -> None:
    inside = visible(labels)
    print(f"{label}: {inside.sum()} of {len(images)} shadows fully visible and re-measured")
    measured = np.array([pendulum.measure_shadow(img) for img in images[inside]])
    for k, name in ((0, "shadow_len"), (1, "shadow_pos")):
        err = np.abs(measured[:, k] - labels[inside, 2 + k])
        print(f"  {name}: MAE {err.mean():.4f}  max {err.max():.4f} scene units (pixel = {20 / pendulum.SIZE:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, default=4, help="render every k-th grid image (default 4)")
    parser.add_argument("--dataset", help="check an existing pendulum folder instead")
    args = parser.parse_args()
    if args.dataset:
        parts = [pendulum.load(args.dataset, split) for split in pendulum.available_splits(args.dataset)]
        report(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]), args.dataset)
        return
    cells = pendulum.grid()[:: args.every]
    pendulum.render(0, 80)  # build the figure outside the timing
    start = time.process_time()
    images = []
    for _, i, j, _ in cells:
        image = pendulum.render(i, j)
        Image.fromarray(image).save(io.BytesIO(), format="PNG")
        images.append(image)
    seconds = time.process_time() - start
    print(f"rendered {len(cells)} images: {1000 * seconds / len(cells):.2f} CPU ms per image (render + PNG)")
    labels = np.array([[i, j, *pendulum.shadow(i, j)] for _, i, j, _ in cells], dtype=np.float64)
    report(np.stack(images), labels, "in-process render")


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))
