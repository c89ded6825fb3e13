"""A tiny synthetic causal image dataset with known answers: a square whose size causes its brightness."""

import numpy as np
import pytest

from causaldiffae.data.base import CausalImageDataset
from causaldiffae.graph import CausalGraph

GRAPH = CausalGraph.parse("size -> brightness")


def make_squares(n: int, seed: int, split: str, stats: tuple | None = None) -> CausalImageDataset:
    """16x16 images: a bright square of side ``size`` (2..8 px) at the left (class 0) or right (class 1)."""
    rng = np.random.default_rng(seed)
    size = rng.integers(2, 9, n).astype(np.float64)
    brightness = np.clip(80 + 18 * size + rng.normal(0, 10, n), 60, 255)
    classes = rng.integers(0, 2, n)
    images = np.zeros((n, 16, 16, 1), dtype=np.uint8)
    for i in range(n):
        s = int(size[i])
        top = rng.integers(0, 16 - s + 1)
        left = rng.integers(0, 8 - s + 1) + 8 * classes[i]
        images[i, top : top + s, left : left + s, 0] = int(brightness[i])
    labels = np.stack([size, brightness], axis=1)
    mean, std = stats if stats is not None else (labels.mean(0), labels.std(0))
    return CausalImageDataset(images, labels, GRAPH, mean, std, name="squares", split=split, classes=classes, num_classes=2)


@pytest.fixture(scope="session")
def squares():
    train = make_squares(384, 0, "train")
    test = make_squares(128, 1, "test", stats=(train.label_mean, train.label_std))
    return train, test
