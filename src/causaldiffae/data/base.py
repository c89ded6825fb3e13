"""The dataset contract every model, metric and CLI command relies on.

A dataset holds uint8 images and natural-unit labels in memory, in the order of its causal
graph's variables, together with the train-set statistics used to standardise labels and,
where the generating process is known, an SCM that answers counterfactual label queries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Protocol

import numpy as np

from causaldiffae.errors import DivergedError, UserError
from causaldiffae.graph import CausalGraph

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image as PILImage


class DataError(UserError):
    """Bad dataset input; the message names the file, field, row or key."""


def resize(img: PILImage, size: tuple[int, int]) -> PILImage:
    """``img`` at ``size`` (width, height): an area average (BOX) when either side shrinks, which cannot
    alias thin strokes, else bicubic; every loader, and ``counterfactual --frame``, resizes by this one rule."""
    from PIL import Image

    if img.size == size:
        return img
    shrink = img.size[0] > size[0] or img.size[1] > size[1]
    return img.resize(size, Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC)


def resize_images(images: np.ndarray, resolution: int | None) -> np.ndarray:
    """Resize uint8 ``(N, H, W, C)`` images to ``resolution`` x ``resolution`` (``resize``)."""
    if resolution is None or images.shape[1:3] == (resolution, resolution):
        return images
    from PIL import Image

    out = np.empty((len(images), resolution, resolution, images.shape[3]), dtype=np.uint8)
    for i, img in enumerate(images):
        arr = np.asarray(resize(Image.fromarray(img[..., 0] if img.shape[2] == 1 else img), (resolution, resolution)))
        out[i] = arr.reshape(resolution, resolution, -1)
    return out


def colour_channels(channels: int) -> slice:
    """The colour channels of an image with ``channels`` (grey, grey + alpha, RGB, RGBA): alpha, the last of 2 or 4, left out."""
    return slice(0, 1 if channels <= 2 else 3)


def do_values(do: Mapping[str, object], name: str, n: int) -> np.ndarray:
    """``do[name]`` as ``n`` floats (a scalar is repeated), or a one-line error naming the variable."""
    values = np.asarray(do[name], dtype=np.float64)
    if values.ndim > 1 or values.size not in (1, n):
        raise DataError(f"do({name}=...): expected a scalar or {n} values (one per row of labels), got shape {values.shape}")
    return np.broadcast_to(values.reshape(-1), (n,)) if values.size == 1 else values


class SCM(Protocol):
    """A known structural causal model over a dataset's variables, in natural units."""

    def counterfactual(self, labels: np.ndarray, do: Mapping[str, np.ndarray | float]) -> np.ndarray:
        """Given factual labels ``(N, n)`` (graph order) and interventions, return counterfactual labels ``(N, n)``."""
        ...


class CausalImageDataset:
    """Images in ``[-1, 1]`` with natural and standardised labels of the graph's variables.

    A map-style dataset (``len`` and indexing, as ``torch.utils.data.DataLoader`` takes) that imports
    torch only when indexed, so the CLI's ``data`` commands and ``--help`` start without it.

    ``images``: uint8 ``(N, H, W, C)``. ``labels``: float ``(N, n)`` natural units, columns in
    ``graph.variables`` order. ``label_mean``/``label_std``: train-split statistics (the same
    for every split). ``classes``: int ``(N,)`` (e.g. the digit) or ``None``.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        graph: CausalGraph,
        label_mean: np.ndarray,
        label_std: np.ndarray,
        *,
        name: str,
        split: str,
        classes: np.ndarray | None = None,
        num_classes: int = 0,
        scm: SCM | None = None,
    ) -> None:
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.dtype != np.uint8:
            raise DataError(f"{name}/{split}: images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
        labels = np.asarray(labels, dtype=np.float64)
        if labels.shape != (len(images), len(graph)):
            raise DataError(f"{name}/{split}: labels have shape {labels.shape}, expected ({len(images)}, {len(graph)})")
        if not np.all(np.isfinite(labels)):
            raise DataError(f"{name}/{split}: labels contain NaN or infinite values")
        if len(images) == 0:
            raise DataError(f"{name}/{split}: the split has no images")
        stats = np.asarray(label_mean, dtype=np.float64), np.asarray(label_std, dtype=np.float64)
        if not all(v.shape == (len(graph),) and np.all(np.isfinite(v)) for v in stats):
            raise DataError(f"{name}/{split}: the train split's label mean / std are not {len(graph)} finite values "
                            f"({stats[0].tolist()} / {stats[1].tolist()}): a NaN or infinite train label?")
        self.images = images
        self.labels = labels
        self.graph = graph
        self.label_mean = np.asarray(label_mean, dtype=np.float64)
        self.label_std = np.where(np.asarray(label_std, dtype=np.float64) > 0, label_std, 1.0)
        self.name = name
        self.split = split
        self.classes = None if classes is None else np.asarray(classes, dtype=np.int64)
        self.num_classes = int(num_classes)
        self.scm = scm

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` as the model sees it."""
        _, h, w, c = self.images.shape
        return (c, h, w)

    @property
    def variables(self) -> tuple[str, ...]:
        return self.graph.variables

    def standardise(self, labels: np.ndarray) -> np.ndarray:
        return (np.asarray(labels, dtype=np.float64) - self.label_mean) / self.label_std

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        import torch

        image = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
        raw = self.labels[i]
        return {
            "image": image,
            "labels": torch.from_numpy(self.standardise(raw)).float(),
            "labels_raw": torch.from_numpy(raw).float(),
            "class": torch.tensor(-1 if self.classes is None else int(self.classes[i]), dtype=torch.long),
            "index": torch.tensor(i, dtype=torch.long),
        }


# Pixels: uint8 as stored <-> float (N, C, H, W) in [-1, 1] as the models take them ---------------


def pixels_tensor(u8: np.ndarray) -> torch.Tensor:
    """uint8 images ``(N, H, W, C)``, or ``(N, H, W)`` for one channel, as float ``(N, C, H, W)`` in ``[-1, 1]``."""
    import torch

    arr = np.ascontiguousarray(u8 if u8.ndim == 4 else u8[..., None])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def images_tensor(ds: CausalImageDataset, indices: np.ndarray | None = None) -> torch.Tensor:
    """Images of a dataset as float ``(N, C, H, W)`` in ``[-1, 1]`` (the dataset contract's range)."""
    return pixels_tensor(ds.images if indices is None else ds.images[indices])


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[-1, 1]`` float images ``(N, C, H, W)`` to uint8 ``(N, C, H, W)``, as a dataset would store them.

    Non-finite pixels are refused: cast to uint8 they would read as a blank digit of thickness 0.
    """
    import torch

    if not torch.isfinite(images).all():
        raise DivergedError(f"{int((~torch.isfinite(images)).sum())} non-finite pixels in the generated images; the model diverged")
    return ((images.detach().cpu().double().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
