"""Datasets: generators that build them offline and loaders that detect their layout.

Every dataset module exposes ``looks_like(path) -> bool`` and
``load(path, split, resolution=None) -> CausalImageDataset``; ``load_dataset`` picks the first
module that recognises the folder, so users never name the format.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from causaldiffae.data.base import SCM, CausalImageDataset, DataError, resize_images

FORMATS = ("morphomnist", "pendulum", "circuit", "folder")

__all__ = ["CausalImageDataset", "DataError", "SCM", "detect_format", "load_dataset", "resize_images"]


def _module(fmt: str):
    return importlib.import_module(f"causaldiffae.data.{fmt}")


def detect_format(path: str | Path) -> str:
    """Name of the dataset format stored in ``path``, with a clear error when none matches."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"dataset folder not found: {path}")
    for fmt in FORMATS:
        try:
            module = _module(fmt)
        except ModuleNotFoundError:
            continue
        if module.looks_like(path):
            return fmt
    raise DataError(f"{path}: not a recognised dataset folder (formats: {', '.join(FORMATS)})")


def load_dataset(path: str | Path, split: str = "train", resolution: int | None = None) -> CausalImageDataset:
    """Load ``split`` of the dataset in ``path``, resized to ``resolution`` if given."""
    return _module(detect_format(path)).load(Path(path), split, resolution=resolution)
