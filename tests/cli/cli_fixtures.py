"""The tiny blob folder the predictors, counterfactual and evaluate command tests share, and MorphoMNIST-format splits."""

import csv

import numpy as np
from PIL import Image

from causaldiffae.data.idx import write_idx

TINY_MODEL = {
    "latent_block": 4, "encoder_channels": [8, 8], "mechanism_hidden": 8, "base_channels": 8, "channel_mult": [1, 2],
    "layers_per_block": 1, "attention_levels": [], "mid_attention": False, "attention_head_dim": 8, "norm_groups": 8, "class_conditional": False,
}


def read_rows(path) -> list[dict[str, str]]:
    """A CSV file's rows as dicts, the file closed again."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def image_size(path) -> tuple[int, int]:
    """An image file's (width, height), read from its header, the file closed again."""
    with Image.open(path) as image:
        return image.size


def make_blobs(root, n=48):
    """8x8 grey blobs: radius ``a`` causes brightness ``b``; 2/3 train, 1/3 test."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    yy, xx = np.mgrid[:8, :8]
    lines = ["file,a,b,split"]
    for k in range(n):
        a = rng.uniform(1.0, 3.5)
        b = 100 + 40 * a + rng.normal(0, 8)
        img = np.where((yy - 3.5) ** 2 + (xx - 3.5) ** 2 <= a * a, b, 0).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"{k:02d}.png")
        lines.append(f"images/{k:02d}.png,{a},{b},{'test' if k % 3 == 0 else 'train'}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    (root / "graph.yaml").write_text("variables: [a, b]\nedges: [a -> b]\n")


def write_morpho_split(folder, prefix, digits, rng):
    """One split (``train`` or ``t10k``) of a MorphoMNIST-format folder: random 28x28 images of the classes
    ``digits``, thickness and intensity labels in the data's ranges."""
    write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (len(digits), 28, 28), dtype=np.uint8))
    write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.asarray(digits).astype(np.uint8))
    rows = ["index,thickness,intensity"] + [f"{i},{2 + rng.random()},{100 + 50 * rng.random()}" for i in range(len(digits))]
    (folder / f"{prefix}-morpho.csv").write_text("\n".join(rows) + "\n")


def error_lines(capsys) -> list[str]:
    """The error lines on stderr (the data loaders' progress bars also write there)."""
    return [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
