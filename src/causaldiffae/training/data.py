"""The training split as tensors: the graph's label columns standardised, images as uint8 ``(N, C, H, W)``."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from causaldiffae.config import ConfigError, ExperimentConfig, check_image_shape
from causaldiffae.data.base import CausalImageDataset, DataError, resize_images
from causaldiffae.errors import UserError
from causaldiffae.graph import CausalGraph


@dataclass
class TrainData:
    """Tensors of the training split restricted to the model's graph, ready for batch indexing."""

    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # standardised float (N, n), columns in graph order
    classes: torch.Tensor  # long (N,), -1 when unknown
    labeled: torch.Tensor  # bool (N,)
    graph: CausalGraph
    label_mean: np.ndarray
    label_std: np.ndarray
    num_classes: int
    name: str

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return c, h, w

    def batch(self, index: torch.Tensor, device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
        image = self.images[index].to(device).float().div_(127.5).sub_(1.0)
        if channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return {
            "image": image,
            "labels": self.labels[index].to(device),
            "class": self.classes[index].to(device),
            "labeled": self.labeled[index].to(device),
        }


def labeled_mask(n: int, fraction: float, seed: int) -> torch.Tensor:
    """A fixed, seeded subset of ``round(fraction * n)`` (at least one) samples that keep labels."""
    count = max(1, round(fraction * n))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7_777_777))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[:count]] = True
    return mask


def prepare_data(dataset: CausalImageDataset, config: ExperimentConfig) -> TrainData:
    """Select and standardise the graph's label columns; check the graph and image size against the data."""
    configured = configured_graph(config)
    graph = dataset.graph if configured is None else configured
    if configured is not None:
        missing = [v for v in graph.variables if v not in dataset.variables]
        if missing:
            raise ConfigError(
                f"data.graph: variable {missing[0]!r} is missing from the data {dataset.name} "
                f"(it has: {', '.join(dataset.variables)}); pass data.graph=null to train on the data's own graph, {dataset.graph}"
            )
    columns = [dataset.variables.index(v) for v in graph.variables]
    check_image_shape(config.model, dataset.image_shape, "model.channel_mult")
    if config.model.class_conditional and (dataset.classes is None or dataset.num_classes <= 0):
        raise ConfigError(f"model.class_conditional=true but the data {dataset.name} has no classes; pass model.class_conditional=false")
    images = torch.from_numpy(np.ascontiguousarray(dataset.images.transpose(0, 3, 1, 2)))
    labels = torch.from_numpy(dataset.standardise(dataset.labels)[:, columns]).float()
    classes = torch.full((len(dataset),), -1, dtype=torch.long) if dataset.classes is None else torch.from_numpy(dataset.classes)
    return TrainData(
        images=images,
        labels=labels,
        classes=classes,
        labeled=labeled_mask(len(dataset), config.model.labeled_fraction, config.train.seed),
        graph=graph,
        label_mean=dataset.label_mean[columns],
        label_std=dataset.label_std[columns],
        num_classes=dataset.num_classes if config.model.class_conditional else 0,
        name=dataset.name,
    )


def configured_graph(config: ExperimentConfig) -> CausalGraph | None:
    """The graph ``data.graph`` names (None: the dataset's own), with errors that name the field."""
    if not config.data.graph:
        return None
    try:
        return CausalGraph.load(config.data.graph)
    except UserError as err:
        raise ConfigError(f"data.graph: {err}") from None


def load_training_data(data: str | Path | CausalImageDataset, config: ExperimentConfig, *, progress: bool) -> TrainData:
    """The training split as TrainData: read from a folder, or a given dataset at data.resolution."""
    if not isinstance(data, CausalImageDataset):
        from causaldiffae.data import load_dataset

        data = load_dataset(data, "train", resolution=config.data.resolution, progress=progress)
    elif config.data.resolution is not None and data.images.shape[1:3] != (config.data.resolution,) * 2:
        data = copy.copy(data)  # the run records data.resolution, so later loads see the size it trained on
        data.images = resize_images(data.images, config.data.resolution)
    train_data = prepare_data(data, config)
    batch_size = config.train.batch_size
    if len(train_data) < batch_size:
        raise DataError(f"{data.name}: {len(train_data)} training images, fewer than train.batch_size={batch_size}; "
                        f"pass a smaller one, e.g. train.batch_size={_smaller_batch(len(train_data))}")
    return train_data


def _smaller_batch(n: int) -> int:
    """The largest power of two up to ``n`` images: a batch the data can fill."""
    return 1 << (n.bit_length() - 1)
