"""A tiny synthetic causal image dataset with known answers: a square whose size causes its brightness."""

import numpy as np

from causaldiffae.data.base import CausalImageDataset
from causaldiffae.graph import CausalGraph

GRAPH = CausalGraph.parse("size -> brightness")


class SquaresSCM:
    """``brightness = 80 + 18 * size + e``: counterfactuals keep each square's own ``e``."""

    def counterfactual(self, labels, do):
        labels = np.asarray(labels, dtype=np.float64)
        out = labels.copy()
        noise = labels[:, 1] - 80 - 18 * labels[:, 0]
        if "size" in do:
            out[:, 0] = do["size"]
            out[:, 1] = 80 + 18 * out[:, 0] + noise
        if "brightness" in do:
            out[:, 1] = do["brightness"]
        return out


def render_squares(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """uint8 (N, 16, 16, 1): a square of side round(size), value round(brightness), in the class's half."""
    images = np.zeros((len(labels), 16, 16, 1), dtype=np.uint8)
    for i, (size, bright) in enumerate(labels):
        s = int(round(size))
        left = 8 * int(classes[i])
        images[i, 4 : 4 + s, left : left + s, 0] = int(round(bright))
    return images


def make_squares(n: int, seed: int, split: str, stats: tuple | None = None) -> CausalImageDataset:
    """16x16 images: a bright square of side ``size`` (2..8 px) at the left (class 0) or right (class 1)."""
    rng = np.random.default_rng(seed)
    size = rng.integers(2, 9, n).astype(np.float64)
    brightness = 80 + 18 * size + rng.normal(0, 10, n)
    classes = rng.integers(0, 2, n)
    images = np.zeros((n, 16, 16, 1), dtype=np.uint8)
    for i in range(n):
        s = int(size[i])
        top = rng.integers(0, 16 - s + 1)
        left = rng.integers(0, 8 - s + 1) + 8 * classes[i]
        images[i, top : top + s, left : left + s, 0] = int(brightness[i])
    labels = np.stack([size, brightness], axis=1)
    mean, std = stats if stats is not None else (labels.mean(0), labels.std(0))
    return CausalImageDataset(
        images, labels, GRAPH, mean, std, name="squares", split=split, classes=classes, num_classes=2, scm=SquaresSCM()
    )
