"""Datasets: generators that build them offline and loaders that detect their layout.

Every dataset module exposes ``looks_like(path) -> bool`` and
``load(path, split, resolution=None, progress=True) -> CausalImageDataset`` (``progress``: a bar
while images are decoded one by one); ``load_dataset`` picks the first module that recognises the
folder, so users never name the format.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from causaldiffae.config import MAX_RESOLUTION
from causaldiffae.data.base import SCM, CausalImageDataset, DataError, resize_images
from causaldiffae.errors import require_folder

FORMATS = ("morphomnist", "pendulum", "circuit", "folder")

__all__ = ["CausalImageDataset", "DataError", "SCM", "check_outside", "detect_format", "load_dataset", "resize_images"]


def _module(fmt: str) -> ModuleType:
    return importlib.import_module(f"causaldiffae.data.{fmt}")


def detect_format(path: str | Path) -> str:
    """Name of the dataset format stored in ``path``, with a clear error when none matches."""
    path = require_folder(path, "dataset folder", DataError)
    for fmt in ("folder", *(f for f in FORMATS if f != "folder")):  # labels.csv + graph.yaml are the most explicit sign
        try:
            module = _module(fmt)
        except ModuleNotFoundError:
            continue
        if module.looks_like(path):
            return fmt
    from causaldiffae.data.folder import GRAPH_FILE, LABELS

    half = [name for name in (LABELS, GRAPH_FILE) if (path / name).is_file()]
    if len(half) == 1:  # a user folder missing one of its two files
        missing = GRAPH_FILE if half == [LABELS] else LABELS
        raise DataError(f"{path}: has {half[0]} but no {missing}; a user dataset folder needs both (README, 'Your own data')")
    raise DataError(f"{path}: not a recognised dataset folder (formats: {', '.join(FORMATS)})")


def check_resolution(resolution: int | None) -> None:
    """Refuse a size outside 1..MAX_RESOLUTION before any image is decoded (PIL's own error names no
    option, and a typo such as 2000 would fill the memory first)."""
    if resolution is not None and resolution < 1:
        raise DataError(f"resolution must be a positive number of pixels, got {resolution}")
    if resolution is not None and resolution > MAX_RESOLUTION:
        raise DataError(f"resolution {resolution} is larger than the {MAX_RESOLUTION} pixels this library trains at")


def load_dataset(path: str | Path, split: str = "train", resolution: int | None = None, progress: bool = True) -> CausalImageDataset:
    """Load ``split`` of the dataset in ``path``, resized to ``resolution`` if given."""
    check_resolution(resolution)
    return _module(detect_format(path)).load(Path(path), split, resolution=resolution, progress=progress)


def check_outside(out: str | Path, data: str | Path, option: str = "--out") -> None:
    """Refuse an output inside a dataset folder: a user folder's loader reads every image under it (a
    run's sample grids there would break the dataset and the run's own resume), and regenerating a
    generated one with ``--force`` replaces the whole folder, outputs and all."""
    inside, root = Path(out).resolve(), Path(data).resolve()
    if not (inside == root or root in inside.parents):
        return
    try:
        fmt = detect_format(root)
    except DataError:  # not a dataset folder: loading it says so
        return
    why = "whose loader would read its images as data" if fmt == "folder" else "which regenerating it with --force would delete"
    raise DataError(f"{option} {out} lies inside the dataset folder {data}, {why}; choose a path outside it")
