"""Anti-causal predictors: small CNNs that read each causal variable (and the digit) off an image.

They are the measuring instrument for effectiveness, preservation and realism, so they are
trained only on the train split and scored on the test split. There is one network per
variable (a shared trunk would let a correlated variable leak into another's reading, e.g.
thickness into intensity, which would blur what an intervention changed) plus a digit
classifier where the dataset has classes. All networks are trained in one loop over the same
minibatches; their parameters are disjoint, so this is the same as training them one by one.
Checkpoints are safetensors + JSON recording the dataset, graph and image shape.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from causaldiffae.atomic import Output, atomic_dir
from causaldiffae.config import MAX_PARAMETERS, MAX_WIDTH, is_finite_number, is_image_shape, is_whole
from causaldiffae.data.base import CausalImageDataset, images_tensor
from causaldiffae.errors import UserError
from causaldiffae.graph import MAX_VARIABLES

WEIGHTS = "predictors.safetensors"
META = "predictors.json"
DEFAULT_EPOCHS = 6  # met the MorphoMNIST targets: 426 steps over its 4,500 train digits
MIN_STEPS = 400  # the default's floor: on a few hundred images six passes are a few dozen steps and learn nothing


class PredictorError(UserError):
    """A predictors folder that is missing, corrupt, or trained for another dataset or graph."""


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class PredictorNet(nn.Module):
    """Conv stages halving the resolution down to at most 8 px, global average pool, an MLP head.

    The full-resolution stage has a single conv (most of the cost would sit there); later
    stages have two. Average pooling makes the digit reading shift-invariant; stroke width and
    brightness are global statistics of the feature maps, which the pool keeps.
    """

    def __init__(self, in_channels: int, image_size: int, n_out: int, width: int = 16, feature_dim: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = [_block(in_channels, width)]
        cin, size = width, image_size
        while size > 8:
            c = min(2 * cin, 8 * width)
            layers += [nn.MaxPool2d(2), _block(cin, c), _block(c, c)]
            cin, size = c, math.ceil(size / 2)
        self.trunk = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(cin, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Linear(feature_dim, n_out)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (used for the Frechet distance)."""
        h = self.trunk(x)
        return self.embed(F.adaptive_avg_pool2d(h, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class PredictorMeta:
    """Everything needed to rebuild the networks and check they fit a dataset."""

    dataset: str
    variables: list[str]
    edges: list[list[str]]
    image_shape: list[int]
    label_mean: list[float]
    label_std: list[float]
    num_classes: int = 0
    width: int = 16
    feature_dim: int = 128
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)

    @classmethod
    def for_dataset(cls, ds: CausalImageDataset, width: int = 16, feature_dim: int = 128) -> "PredictorMeta":
        return cls(
            dataset=ds.name,
            variables=list(ds.graph.variables),
            edges=[list(e) for e in ds.graph.edges],
            image_shape=list(ds.image_shape),
            label_mean=[float(v) for v in ds.label_mean],
            label_std=[float(v) for v in ds.label_std],
            num_classes=int(ds.num_classes) if ds.classes is not None else 0,
            width=width,
            feature_dim=feature_dim,
        )


OUTPUT = Output(META, frozenset({"dataset", "variables", "image_shape", "metrics"}), (WEIGHTS,))  # what --force may replace


class Predictors(nn.Module):
    """One regressor per variable (outputs standardised values) and an optional class classifier."""

    def __init__(self, meta: PredictorMeta) -> None:
        super().__init__()
        self.meta = meta
        c, h, w = meta.image_shape
        size = max(h, w)
        self.regressors = nn.ModuleDict(
            {v: PredictorNet(c, size, 1, meta.width, meta.feature_dim) for v in meta.variables}
        )
        self.classifier = PredictorNet(c, size, meta.num_classes, meta.width, meta.feature_dim) if meta.num_classes else None

    @property
    def variables(self) -> list[str]:
        return self.meta.variables

    def _nets(self) -> list[PredictorNet]:
        return [cast(PredictorNet, net) for net in self.regressors.values()] + ([self.classifier] if self.classifier is not None else [])

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Read natural-unit values of every variable (and ``"class"`` when there is a classifier).

        ``images``: float ``(N, C, H, W)`` in ``[-1, 1]``, the dataset contract's range.
        """
        self.eval()
        mean = np.asarray(self.meta.label_mean)
        std = np.asarray(self.meta.label_std)
        out: dict[str, list[np.ndarray]] = {v: [] for v in self.variables}
        if self.classifier is not None:
            out["class"] = []
        device = next(self.parameters()).device
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device=device, dtype=torch.float32)
            for i, v in enumerate(self.variables):
                out[v].append(self.regressors[v](x)[:, 0].double().cpu().numpy() * std[i] + mean[i])
            if self.classifier is not None:
                out["class"].append(self.classifier(x).argmax(1).cpu().numpy())
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Concatenated penultimate features of all networks, ``(N, F)``, for the Frechet distance."""
        self.eval()
        chunks = []
        device = next(self.parameters()).device
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device=device, dtype=torch.float32)
            chunks.append(torch.cat([net.features(x) for net in self._nets()], dim=1).double().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.meta.feature_dim * len(self._nets())))


def same_training_labels(meta: PredictorMeta, ds: CausalImageDataset) -> bool:
    """Whether ``ds`` has the train-split label statistics the predictors were fitted with: a renamed copy of a folder does."""
    return len(meta.label_mean) == len(ds.label_mean) and bool(
        np.allclose(meta.label_mean, ds.label_mean, rtol=1e-9, atol=0) and np.allclose(meta.label_std, ds.label_std, rtol=1e-9, atol=0)
    )


def check_meta(meta: PredictorMeta, ds: CausalImageDataset, source: str) -> None:
    """Refuse predictors fitted on other data; a dataset under another name passes when its training labels are the same."""
    if meta.dataset != ds.name and not same_training_labels(meta, ds):
        raise PredictorError(f"{source}: trained on dataset {meta.dataset!r}, not {ds.name!r} (and its training labels differ)")
    if list(meta.variables) != list(ds.graph.variables):
        raise PredictorError(
            f"{source}: trained for variables {', '.join(meta.variables)}, the data has {', '.join(ds.graph.variables)}"
        )
    if sorted(map(tuple, meta.edges)) != sorted(ds.graph.edges):
        edges = "; ".join(f"{a} -> {b}" for a, b in meta.edges) or "none"
        raise PredictorError(f"{source}: trained for graph edges {edges}, the data has {ds.graph}")
    if list(meta.image_shape) != list(ds.image_shape):
        raise PredictorError(f"{source}: trained on images of shape {tuple(meta.image_shape)}, the images to read are "
                             f"{tuple(ds.image_shape)} (a run's data.resolution resizes them); train predictors at that size "
                             f"(causaldiffae predictors --resolution {ds.image_shape[-1]})")


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (background-padded), a cheap augmentation for digits."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


def default_epochs(n_train: int, batch_size: int) -> int:
    """Six passes, or as many as make ``MIN_STEPS`` optimizer steps where the train split is small."""
    return max(DEFAULT_EPOCHS, math.ceil(MIN_STEPS / math.ceil(n_train / batch_size)))


def train_predictors(
    train: CausalImageDataset,
    test: CausalImageDataset,
    *,
    epochs: int | None = None,
    batch_size: int = 64,
    lr: float = 2e-3,
    width: int = 16,
    feature_dim: int = 128,
    class_shift: int = 2,
    seed: int = 0,
    progress: Callable | None = None,
) -> Predictors:
    """Train on ``train`` only; score on ``test`` and store the figures in ``meta.metrics``.

    Regressors fit standardised labels with a Huber loss (robust to the few extreme gamma
    draws); the classifier sees random shifts of up to ``class_shift`` px, which matters with
    only a few thousand digits. Shifts are not used for regressors, since position may be a
    variable (Pendulum's shadow position). ``epochs=None`` takes ``default_epochs``.
    """
    if len(train) < 2 or len(test) == 0:
        raise UserError(f"{train.name}: predictors need at least 2 train images and 1 test image, got {len(train)} and {len(test)}")
    if batch_size < 2:  # BatchNorm needs two samples, so a batch of one would train nothing
        raise UserError(f"predictors: batch_size must be at least 2, got {batch_size}")
    if epochs is None:
        epochs = default_epochs(len(train), batch_size)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    meta = PredictorMeta.for_dataset(train, width=width, feature_dim=feature_dim)
    model = Predictors(meta)
    x_all = images_tensor(train)
    y_all = torch.from_numpy(train.standardise(train.labels)).float()
    c_all = torch.from_numpy(train.classes) if model.classifier is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    # OneCycleLR divides by zero when its warm-up ends at step 0 (5 steps at pct_start 0.2), so a run
    # of 5 steps or fewer takes the first steps of a 6-step cycle.
    total_steps = max(epochs * steps_per_epoch, 6)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.2)
    iterator = range(epochs)
    if progress is not None:
        iterator = progress(iterator, desc="predictors", unit="epoch")
    for _ in iterator:
        model.train()
        perm = torch.randperm(len(train), generator=gen)
        for start in range(0, len(train), batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x, y = x_all[idx], y_all[idx]
            loss = sum((F.smooth_l1_loss(model.regressors[v](x)[:, 0], y[:, i], beta=0.5) for i, v in enumerate(meta.variables)), torch.zeros(()))
            if model.classifier is not None and c_all is not None:
                loss = loss + F.cross_entropy(model.classifier(random_shift(x, class_shift, gen)), c_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    meta.metrics = score_predictors(model, test)
    meta.training = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "class_shift": class_shift, "seed": seed,
        "train_split": train.split, "test_split": test.split, "n_train": len(train), "n_test": len(test),
    }
    return model


def score_predictors(model: Predictors, ds: CausalImageDataset) -> dict:
    """Test MAE per variable in natural units, and class accuracy where there is a classifier."""
    pred = model.predict(images_tensor(ds))
    metrics: dict = {"mae": {v: float(np.mean(np.abs(pred[v] - ds.labels[:, i]))) for i, v in enumerate(model.variables)}}
    if model.classifier is not None and ds.classes is not None:
        metrics["accuracy"] = float(np.mean(pred["class"] == ds.classes))
    metrics["split"] = ds.split
    metrics["n"] = len(ds)
    return metrics


def save_predictors(model: Predictors, out: str | Path, force: bool = False) -> Path:
    """Write ``predictors.safetensors`` and ``predictors.json`` into ``out`` atomically."""
    from safetensors.torch import save_file

    out = Path(out)
    with atomic_dir(out, force=force, made_by=OUTPUT) as tmp:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        (tmp / META).write_text(json.dumps(asdict(model.meta), indent=2))
    return out


def _scores(metrics: object, variables: list) -> bool:
    if not (isinstance(metrics, dict) and isinstance(metrics.get("mae"), dict)):
        return False
    mae = metrics["mae"]
    return all(is_finite_number(mae.get(v)) for v in variables) and is_finite_number(metrics.get("accuracy", 0.0))


def _check_fields(meta: PredictorMeta, source: Path) -> None:
    """Types and sizes of a predictors.json, before the networks are built from it (a downloaded one could ask for terabytes)."""

    def numbers(values: object, n: int) -> bool:
        return isinstance(values, list) and len(values) == n and all(is_finite_number(v) for v in values)

    k = len(meta.variables) if isinstance(meta.variables, list) else -1
    problems = [
        ("variables", isinstance(meta.variables, list) and 1 <= k <= MAX_VARIABLES and all(isinstance(v, str) for v in meta.variables)),
        ("edges", isinstance(meta.edges, list) and all(isinstance(e, list) and len(e) == 2 and all(isinstance(v, str) for v in e)
                                                        for e in meta.edges)),
        ("image_shape", is_image_shape(meta.image_shape)),
        ("label_mean", numbers(meta.label_mean, k)),
        ("label_std", numbers(meta.label_std, k)),
        ("num_classes", is_whole(meta.num_classes, 0, 100_000)),
        ("width", is_whole(meta.width, 1, MAX_WIDTH)),
        ("feature_dim", is_whole(meta.feature_dim, 1, MAX_WIDTH)),
        ("metrics", _scores(meta.metrics, meta.variables if k > 0 else [])),  # the instrument's own test scores, which reports print
    ]
    bad = next((name for name, ok in problems if not ok), None)
    if bad is not None:
        raise PredictorError(f"{source}: field {bad!r} holds {getattr(meta, bad)!r:.80}, which predictors cannot be built or reported from")
    with torch.device("meta"):  # widths are bounded one by one; their product is bounded here, without allocating
        count = sum(p.numel() for p in Predictors(meta).parameters())
    if count > MAX_PARAMETERS:
        raise PredictorError(f"{source}: the networks would have {count / 1e9:.3g}G parameters, more than the {MAX_PARAMETERS / 1e9:g}G "
                             "this library builds")


def load_predictors(path: str | Path, ds: CausalImageDataset | None = None) -> Predictors:
    """Load predictors from a folder; with ``ds``, refuse a dataset/graph/shape mismatch."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta_path, weights_path = path / META, path / WEIGHTS
    if not meta_path.is_file() or not weights_path.is_file():
        raise PredictorError(f"{path}: no predictors here (expected {META} and {WEIGHTS}); train them with 'causaldiffae predictors'")
    try:
        raw = json.loads(meta_path.read_bytes())
        meta = PredictorMeta(**raw)
    except (ValueError, TypeError) as err:
        raise PredictorError(f"{meta_path}: unreadable predictor metadata ({err})") from None
    _check_fields(meta, meta_path)
    if ds is not None:
        check_meta(meta, ds, str(path))
    model = Predictors(meta)
    try:
        model.load_state_dict(load_file(str(weights_path)))
    except (RuntimeError, OSError, SafetensorError) as err:
        raise PredictorError(f"{weights_path}: weights do not match the recorded architecture ({str(err).splitlines()[0]})") from None
    model.eval()
    return model
