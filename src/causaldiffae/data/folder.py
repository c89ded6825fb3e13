"""Any user dataset: a folder of images, a label table and a causal graph, no code edits.

Layout::

    DIR/labels.csv   column ``file`` (image path relative to DIR), one numeric column per graph
                     variable, optional ``split`` (train / val / test); other columns are ignored
    DIR/graph.yaml   ``variables: [...]`` and ``edges: ["a -> b", ...]`` (see causaldiffae.graph)
    DIR/**.png|jpg   the images, any size (resized to the configured resolution), one channel
                     count for all (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)

Without a ``split`` column, a seeded shuffle of the file names sends 10% to test and the rest
to train, the same split whatever the row order. Everything that can be wrong (columns, numbers,
missing or unlisted images, unreadable files, mixed channel counts) is checked from the CSV
and the image headers before any pixel is decoded. The generating process is unknown: ``scm``
is None.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import math
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Iterator

import numpy as np

from causaldiffae.config import MAX_RESOLUTION
from causaldiffae.data.base import CausalImageDataset, DataError, colour_channels, resize
from causaldiffae.data.framing import Framing, frame_file
from causaldiffae.data.parallel import map_progress
from causaldiffae.errors import did_you_mean
from causaldiffae.graph import CausalGraph

if TYPE_CHECKING:  # Pillow loads only when a folder is read
    from PIL.Image import Image as PILImage

LABELS = "labels.csv"
GRAPH_FILE = "graph.yaml"
FILE_COLUMN = "file"
SPLIT_COLUMN = "split"
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEST_FRACTION = 0.1
SPLIT_SEED = 0
SHOWN_PROBLEMS = 30  # `data check` lists this many of a folder's problems, then counts the rest
EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how a camera held the picture
# orientation -> the PIL.Image.Transpose that shows it upright (EXIF 2.3, as PIL.ImageOps.exif_transpose)
_TURNS = {1: None, 2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
          7: "TRANSVERSE", 8: "ROTATE_90"}

# PIL mode -> (channels, mode decoded to)
_MODES = {
    "1": (1, "L"), "L": (1, "L"), "I": (1, "L"), "I;16": (1, "L"), "I;16B": (1, "L"), "I;16L": (1, "L"),
    "LA": (2, "LA"), "La": (2, "LA"), "PA": (4, "RGBA"),
    "RGB": (3, "RGB"), "YCbCr": (3, "RGB"), "CMYK": (3, "RGB"), "RGBA": (4, "RGBA"), "RGBa": (4, "RGBA"),
}  # fmt: skip


@dataclass(frozen=True)
class FolderIndex:
    """What a user folder holds, validated: rows in CSV order, image headers, splits."""

    root: Path
    graph: CausalGraph
    files: tuple[str, ...]
    labels: np.ndarray  # (N, n) natural units, graph order
    splits: np.ndarray  # (N,) split names
    channels: int
    sizes: tuple[tuple[int, int], ...]  # (width, height) per row
    modes: tuple[str, ...]  # decode mode per row
    columns: tuple[str, ...]
    split_given: bool

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)


class FolderProblems(DataError):
    """Every problem found in a user folder, one line each; the message is the first and a count of the rest."""

    def __init__(self, root: Path, problems: list[str]) -> None:
        more = len(problems) - 1
        check = f"causaldiffae data check {shlex.quote(str(root))}"
        listed = f"{more} more problems: {check} lists them" if more > 1 else f"1 more problem: {check} lists it"
        super().__init__(problems[0] + (f" (and {listed})" if more else ""))
        self.problems = problems


def looks_like(path: str | Path) -> bool:
    path = Path(path)
    return (path / LABELS).is_file() and (path / GRAPH_FILE).is_file()


def _channels(file: Path, mode: str, info: dict) -> tuple[int, str]:
    if mode == "P":
        return (4, "RGBA") if "transparency" in info else (3, "RGB")
    if mode not in _MODES:
        raise DataError(f"{file}: unsupported image mode {mode!r}")
    return _MODES[mode]


def _image_files(root: Path) -> set[str]:
    """Image paths under ``root``, relative and POSIX-style; symlinked folders are followed, each real folder once.

    A folder is listed under its real path when it has one inside ``root``, so a link to it (an
    alias) is skipped wherever the two sit. A link to the folder itself or to one above it
    (``root -> /``) is not followed: it could only walk the dataset again, or the whole disk.
    """

    def key(path: str) -> tuple[int, int]:
        st = os.stat(path)
        return st.st_dev, st.st_ino

    def visible(names: list[str]) -> list[str]:
        return sorted(d for d in names if not d.startswith("."))

    real = set()
    for dirpath, dirnames, _ in os.walk(root):  # links not followed: the folders that have a real path here
        dirnames[:] = visible(dirnames)
        real.add(key(dirpath))
    found, seen = set(), set()
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = key(dirpath)
        if here in seen:  # a link back to a folder already walked
            dirnames[:] = []
            continue
        seen.add(here)
        dirnames[:] = [
            d for d in visible(dirnames)
            if not os.path.islink(link := os.path.join(dirpath, d))
            or not (real_root.is_relative_to(Path(link).resolve()) or key(link) in real)
        ]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.add(Path(dirpath, name).relative_to(root).as_posix())
    return found


def _read_table(
    table: Path, graph: CausalGraph, graph_file: Path, problems: list[str]
) -> tuple[list[str], list[int], np.ndarray, list | None, list, set[str]]:
    """The label table's good rows: files, their line numbers, labels (graph order), splits or None;
    the header; and every file a row names, good or not. A bad row adds a line to ``problems``."""
    try:
        with open(table, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{table}: unreadable ({err})") from None
    if not rows:
        raise DataError(f"{table}: empty file")
    header = [h.strip() for h in rows[0]]
    twice = [h for h in header if header.count(h) > 1]
    if twice:
        raise DataError(f"{table}: column {twice[0]!r} appears more than once in the header")
    if FILE_COLUMN not in header:
        other = [name for sep, name in ((";", "semicolons"), ("\t", "tabs")) if len(header) == 1 and sep in header[0]]
        hint = f"; it is read as comma-separated, and its header is separated by {other[0]}" if other else ""
        raise DataError(f"{table}: no {FILE_COLUMN!r} column (columns: {', '.join(header)}){hint}")
    for name in graph.variables:
        if name not in header:
            raise DataError(
                f"{graph_file}: variable {name!r} is not a column of {table.name} ({did_you_mean(name, header)}columns: {', '.join(header)})"
            )
    at = {h: header.index(h) for h in header}
    files, lines, values, splits = [], [], [], []
    first_row: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problems.append(f"{table}, row {line}: {len(row)} fields, the header has {len(header)}")
            continue
        name = row[at[FILE_COLUMN]].strip()
        if not name:
            problems.append(f"{table}, row {line}: empty {FILE_COLUMN!r}")
            continue
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            problems.append(f"{table}, row {line}: {name} must be a path inside the folder, relative to it (e.g. images/0001.png)")
            continue
        name = path.as_posix()  # ./images/a.png and images//a.png name images/a.png
        if name in first_row:
            problems.append(f"{table}, row {line}: {name} is listed twice (first at row {first_row[name]})")
            continue
        first_row[name] = line
        cells = {var: row[at[var]].strip() for var in graph.variables}
        wrong = [(var, why) for var, cell in cells.items() if (why := _bad_number(cell))]
        split = row[at[SPLIT_COLUMN]].strip() if SPLIT_COLUMN in at else "train"
        if split not in SPLITS:
            wrong.append((SPLIT_COLUMN, f"{split!r} is not one of {', '.join(SPLITS)}"))
        if wrong:
            problems += [f"{table}, row {line}, column {column!r}: {why}" for column, why in wrong]
            continue
        files.append(name)
        lines.append(line)
        values.append([float(cell) for cell in cells.values()])
        splits.append(split)
    if not first_row and not problems:
        raise DataError(f"{table}: no rows")
    labels = np.array(values, dtype=np.float64).reshape(len(files), len(graph))
    return files, lines, labels, (splits if SPLIT_COLUMN in at else None), header, set(first_row)


def _bad_number(cell: str) -> str | None:
    """What is wrong with a variable's cell, or None."""
    if not cell:
        return "missing value"
    try:
        number = float(cell)
    except ValueError:
        return f"non-numeric value {cell!r}"
    return None if math.isfinite(number) else f"{cell!r} is not a finite number"


def default_splits(files: list[str]) -> np.ndarray:
    """A seeded 90/10 train/test split of the sorted file names (independent of row order)."""
    order = sorted(range(len(files)), key=files.__getitem__)
    n_test = max(1, round(TEST_FRACTION * len(files))) if len(files) >= 2 else 0
    picked = np.random.default_rng(SPLIT_SEED).permutation(len(files))[:n_test]
    splits = np.full(len(files), "train", dtype=object)
    splits[[order[k] for k in picked]] = "test"
    return splits


def scan(path: str | Path) -> FolderIndex:
    """Validate a user folder from its CSV, graph and image headers (no pixel decoding).

    A missing table or graph, or a header that names no usable columns, stops at once; after that
    every bad row, missing or unlisted image and unreadable header is found before raising, so that
    one ``data check`` lists them all (``FolderProblems``).
    """
    root = Path(path)
    table, graph_file = root / LABELS, root / GRAPH_FILE
    for required in (table, graph_file):
        if not required.is_file():
            raise DataError(f"{root}: no {required.name} (a user dataset needs {LABELS} and {GRAPH_FILE})")
    graph = CausalGraph.from_yaml(graph_file)
    problems: list[str] = []
    files, lines, labels, splits, header, listed = _read_table(table, graph, graph_file, problems)

    present = _image_files(root)
    for line, name in zip(lines, files):
        if name not in present:
            problems.append(f"{table}, row {line}: image {root / name} {_why_not_read(root, name)}")
    problems += [f"{root / name}: image has no row in {LABELS}" for name in sorted(present - listed)]

    sizes, modes = [], []
    first_of: dict[int, str] = {}
    for name in files:
        if name not in present:
            continue
        file = root / name
        try:
            with _open_image(file) as img:
                channels, mode = _channels(file, img.mode, img.info)
                sizes.append(_upright_size(img))
        except DataError as err:
            problems.append(str(err))
            continue
        modes.append(mode)
        first_of.setdefault(channels, name)
    if len(first_of) > 1:
        (c0, f0), (c1, f1) = list(first_of.items())[:2]
        problems.append(f"{root}: images have mixed channel counts: {f0} has {c0}, {f1} has {c1}; convert them to one mode")
    if problems:
        raise FolderProblems(root, problems)
    split_array = np.array(splits, dtype=object) if splits is not None else default_splits(files)
    if not (split_array == "train").any():
        raise DataError(f"{table}: no rows in split 'train' (needed for label statistics)")
    return FolderIndex(
        root, graph, tuple(files), labels, split_array, next(iter(first_of)), tuple(sizes), tuple(modes),
        tuple(header), splits is not None,
    )  # fmt: skip


def _why_not_read(root: Path, name: str) -> str:
    """Why a file a row names is not among the images the folder's walk reads."""
    if not (root / name).is_file():
        slashed = name.replace("\\", "/")
        if slashed != name and (root / slashed).is_file():
            return f"does not exist (paths are separated by '/': {slashed} does)"
        return "does not exist"
    if any(part.startswith(".") for part in Path(name).parts):
        return "is hidden (a name starting with '.'); hidden files and folders are not read"
    if name.lower().endswith(IMAGE_SUFFIXES):
        return ("lies in a linked folder that is not walked (it is reached by another path too, or holds the dataset); "
                "name each image by one path")
    return "is not a PNG or JPEG file"


def _orientation(img: PILImage) -> int:
    """The EXIF orientation (1 upright .. 8), from the header alone: ``Image.getexif`` would decode
    a PNG's pixels, and scanning a folder decodes none."""
    from PIL import Image

    raw = img.info.get("exif")
    if not raw:
        return 1
    exif = Image.Exif()
    exif.load(raw)
    orientation = exif.get(EXIF_ORIENTATION, 1)
    return orientation if orientation in _TURNS else 1


def _upright_size(img: PILImage) -> tuple[int, int]:
    """(width, height) as image viewers show it: orientations 5-8 (phone photos) turn it a quarter."""
    w, h = img.size
    return (h, w) if _orientation(img) in (5, 6, 7, 8) else (w, h)


@contextlib.contextmanager
def _open_image(file: Path) -> Iterator[PILImage]:
    """``Image.open``, with Pillow's failures in the block (opening, reading, decoding) as one DataError naming the file."""
    from PIL import Image

    try:
        with Image.open(file) as img:
            yield img
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # Pillow: SyntaxError for a broken chunk
        raise DataError(f"{file}: unreadable image ({err})") from None


def _pixels(img: PILImage, mode: str, resolution: int | None) -> np.ndarray:
    """An opened image as uint8 ``(H, W, C)``: upright, in ``mode``, at ``resolution`` when given."""
    from PIL import Image

    turn = _TURNS[_orientation(img)]
    if turn is not None:  # the way viewers show it, as a user labelled it
        img = img.transpose(Image.Transpose[turn])
    if img.mode.startswith("I"):  # 16-bit gray: keep the top byte
        img = Image.fromarray((np.asarray(img).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8))
    elif img.mode != mode:
        img = img.convert(mode)
    if resolution is not None:
        img = resize(img, (resolution, resolution))
    arr = np.asarray(img)
    return arr.reshape(arr.shape[0], arr.shape[1], -1)


def _on_page(img: PILImage) -> tuple[PILImage, str | None]:
    """An image with transparent pixels laid on a page its drawn (opaque) pixels stand out from: white
    under dark strokes, black under light ones, as a drawing app's export is meant to be seen; and the
    page's colour (None, and the image as it is, without transparency). Converted to a mode without
    alpha it would keep the colour under the transparency instead, often black, and a dark drawing
    would vanish."""
    from PIL import Image

    if img.mode not in ("RGBA", "RGBa", "LA", "La", "PA") and "transparency" not in img.info:
        return img, None
    rgba = img.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    if alpha.min() == 255:
        return img, None
    drawn = alpha > 127
    dark = not drawn.any() or np.asarray(rgba.convert("L"))[drawn].mean() < 128
    page = Image.new("RGBA", rgba.size, (255, 255, 255, 255) if dark else (0, 0, 0, 255))
    laid = Image.alpha_composite(page, rgba)
    laid.info = dict(img.info)  # its EXIF orientation
    return laid, "white" if dark else "black"


def _decode(file: Path, mode: str, resolution: int | None) -> np.ndarray:
    with _open_image(file) as img:
        return _pixels(img, mode, resolution)


_DECODE_MODE = dict(_MODES.values())  # channels -> the mode a folder's images of that many channels are decoded to


def check_image_file(file: str | Path) -> Path:
    """``file`` as a path, refused when it is a folder or missing (before a model loads, from the CLI)."""
    file = Path(file)
    if file.is_dir():
        raise DataError(f"{file}: a folder, not an image file; give its images, e.g. {file / '*.png'}")
    if not file.is_file():
        raise DataError(f"{file}: image file not found")
    return file


def read_image(file: str | Path, channels: int, resolution: int, *, invert: bool = False, frame: Framing | None = None,
               even: bool = False) -> tuple[np.ndarray, str | None]:
    """One image file as uint8 ``(resolution, resolution, channels)``, upright, converted and resized
    as a folder dataset's images are; and what it was (``"64x48 RGB"``) when it was not that already.

    A file with transparent pixels read without alpha is laid on a page first (``_on_page``), which a
    folder dataset's images are not: a drawing app's export of a dark digit would otherwise read as
    black on black. ``invert`` turns its colours over (255 - v, alpha kept): a dark digit on white
    paper becomes white on black. ``frame`` redraws it, at its own resolution before the resize, as the
    run's training images are framed (``framing.frame_file``, which ``even`` asks to even the ink of a file
    on the run's own page too); ``was`` then names a background it levelled.
    """
    file, mode = check_image_file(file), _DECODE_MODE[channels]
    with _open_image(file) as img:
        size, was_mode = _upright_size(img), img.mode
        laid, page = _on_page(img) if mode in ("L", "RGB") else (img, None)
        image = _pixels(laid, mode, None if frame is not None else resolution)
    if invert:
        colour, image = colour_channels(channels), image.copy()
        image[..., colour] = 255 - image[..., colour]
    levelled = None
    if frame is not None:
        image, levelled = frame_file(image, frame, resolution, even)
    if size == (resolution, resolution) and was_mode == mode and levelled is None:
        return image, None
    return image, (f"{size[0]}x{size[1]} {was_mode}" + (f", laid on a {page} page where transparent" if page else "")
                   + (f", its background {levelled:.2f} bright, levelled to the run's" if levelled is not None else ""))


def _decode_chunk(args: tuple[list[tuple[str, str]], int | None]) -> list[np.ndarray]:
    items, resolution = args
    return [_decode(Path(file), mode, resolution) for file, mode in items]


def _check_chunk(args: tuple[list[tuple[str, str]], int | None]) -> tuple[list[str], list[str]]:
    """The shapes of a chunk's images, and a line for each that fails to decode: `data check` reads them all."""
    items, resolution = args
    shapes, problems = [], []
    for file, mode in items:
        try:
            shapes.append(_shape(_decode(Path(file), mode, resolution)))
        except DataError as err:
            problems.append(str(err))
    return shapes, problems


def _chunks(index: FolderIndex, rows: np.ndarray, resolution: int | None) -> list[tuple[list[tuple[str, str]], int | None]]:
    items = [(str(index.root / index.files[k]), index.modes[k]) for k in rows]
    return [(items[k : k + 256], resolution) for k in range(0, len(items), 256)]


def _workers(rows: np.ndarray) -> int:
    return 1 if len(rows) < 2048 else len(os.sched_getaffinity(0))


def _decode_rows(index: FolderIndex, rows: np.ndarray, resolution: int | None, desc: str, progress: bool = True) -> list[np.ndarray]:
    """Decode the images of ``rows``, in processes when there are many."""
    jobs = _chunks(index, rows, resolution)
    parts = map_progress(_decode_chunk, jobs, workers=_workers(rows), total=len(rows), desc=desc, progress=progress)
    return [img for part in parts for img in part]


def load(path: str | Path, split: str = "train", resolution: int | None = None, progress: bool = True) -> CausalImageDataset:
    """One split of a user folder, images resized to ``resolution`` (required when sizes differ in any
    split: a run trained at the native size of one split could load no other)."""
    index = scan(path)
    if split not in SPLITS:
        raise DataError(f"{index.root}: no split {split!r} (expected one of {', '.join(SPLITS)})")
    rows = index.rows(split)
    if len(rows) == 0:
        raise DataError(f"{index.root / LABELS}: no rows in split {split!r}")
    if resolution is None and _mixed(index.sizes):
        raise DataError(f"{index.root}: images are not all square and of one size ({_sizes_shown(index.sizes, 3)}); "
                        "give a resolution (data.resolution=N to train, --resolution N for predictors)")
    if resolution is None and _too_large(index.sizes):
        raise DataError(f"{index.root}: images of {_sizes_shown(index.sizes, 1)} pixels, larger than the {MAX_RESOLUTION} this "
                        "library trains at; give a resolution (data.resolution=N to train, --resolution N for predictors)")
    images = np.stack(_decode_rows(index, rows, resolution, f"{index.root.name} {split}", progress))
    train = index.labels[index.rows("train")]
    return CausalImageDataset(
        images, index.labels[rows], index.graph, train.mean(axis=0), train.std(axis=0), name=index.root.name, split=split
    )


def _mixed(sizes: tuple[tuple[int, int], ...]) -> bool:
    return len(set(sizes)) > 1 or any(w != h for w, h in sizes)


def _too_large(sizes: tuple[tuple[int, int], ...]) -> bool:
    """Whether any image is larger than this library trains at, so it loads only resized."""
    return max(max(size) for size in sizes) > MAX_RESOLUTION


def _sizes_shown(sizes: tuple[tuple[int, int], ...], most: int) -> str:
    distinct = sorted(set(sizes))
    return ", ".join(f"{w}x{h}" for w, h in distinct[:most]) + (f" and {len(distinct) - most} more" if len(distinct) > most else "")


# ``causaldiffae data check`` --------------------------------------------------------------------


def _shape(image: np.ndarray) -> str:
    return f"{image.shape[2]}x{image.shape[0]}x{image.shape[1]}"


def _folder_report(index: FolderIndex, resolution: int | None, progress: bool = True) -> list[str]:
    sizes = sorted(set(index.sizes))
    shown = _sizes_shown(index.sizes, 4)
    unused = [c for c in index.columns if c not in index.graph.variables and c not in (FILE_COLUMN, SPLIT_COLUMN)]
    given = "from the 'split' column" if index.split_given else "seeded 90/10 train/test (no 'split' column)"
    lines = [
        f"  images: {len(index.files)}, {index.channels} channel(s), sizes {shown}",
        f"  {LABELS}: columns {', '.join(index.columns)}" + (f" (unused: {', '.join(unused)})" if unused else ""),
        f"  splits: {given}",
        f"  graph: {index.graph} (variables: {', '.join(index.graph.variables)})",
    ]
    too_large = resolution is None and _too_large(index.sizes)
    problems: list[str] = []
    for split in (s for s in SPLITS if len(index.rows(s))):
        rows = index.rows(split)
        if too_large:  # not decoded: at native size they would fill the memory, and loading refuses them anyway
            shape = f"not decoded (larger than {MAX_RESOLUTION} px)"
        else:
            parts = map_progress(_check_chunk, _chunks(index, rows, resolution), workers=_workers(rows), total=len(rows),
                                 desc=f"check {split}", progress=progress, count=lambda part: len(part[0]) + len(part[1]))
            shape = ", ".join(sorted({s for shapes, _ in parts for s in shapes}))
            problems += [line for _, failed in parts for line in failed]
        lines += _split_report(split, index.labels[rows], shape, index.graph)
    if problems:
        raise FolderProblems(index.root, problems)
    lines.append("  SCM: none")
    if resolution is None and _mixed(index.sizes):
        lines.append("  note: the images are not all square and of one size: train with data.resolution=N (predictors: --resolution N)")
    if too_large:
        lines.append(f"  note: images larger than {MAX_RESOLUTION} px load only resized: train with data.resolution=N "
                     "(predictors: --resolution N, data check: --resolution N)")
    if any(w != h for w, h in sizes):
        lines.append("  note: non-square images are stretched to a square when resized; crop them first to keep their aspect")
    return lines


def _split_report(split: str, labels: np.ndarray, shape: str, graph: CausalGraph) -> list[str]:
    lines = [f"  {split}: {len(labels)} sample{'' if len(labels) == 1 else 's'}, images {shape} (CxHxW)"]
    for k, name in enumerate(graph.variables):
        col = labels[:, k]
        lines.append(f"    {name:<16} min {col.min():.4g}  max {col.max():.4g}  mean {col.mean():.4g}  std {col.std():.4g}")
    return lines


def describe(path: str | Path, resolution: int | None = None, progress: bool = True) -> str:
    """What a dataset folder holds, every image decoded once; raises DataError on bad input."""
    from causaldiffae.data import check_resolution, detect_format

    check_resolution(resolution)
    path = Path(path)
    fmt = detect_format(path)
    lines = [f"{path}: {fmt} dataset"]
    if fmt == "folder":
        return "\n".join(lines + _folder_report(scan(path), resolution, progress))
    module = importlib.import_module(f"causaldiffae.data.{fmt}")
    splits = module.available_splits(path) if hasattr(module, "available_splits") else ["train", "test"]
    datasets = [module.load(path, split, resolution=resolution, progress=progress) for split in splits]
    if not datasets:
        raise DataError(f"{path}: no splits found")
    graph = datasets[0].graph
    lines.append(f"  graph: {graph} (variables: {', '.join(graph.variables)})")
    for ds in datasets:
        lines += _split_report(ds.split, ds.labels, "x".join(map(str, ds.image_shape)), graph)
    lines.append("  SCM: " + ("known (exact counterfactual labels)" if datasets[0].scm is not None else "none"))
    return "\n".join(lines)


def add_data_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate a dataset folder and print what it holds",
        description=f"Validate a dataset folder (a user folder: {LABELS} + {GRAPH_FILE} + images; or any "
        "generated dataset) and print counts, image shape, variable ranges, graph and splits.",
    )
    parser.add_argument("dir", type=Path, help="dataset folder")
    parser.add_argument("--resolution", type=int, default=None, help="resize images to this size while checking")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    """Print what the folder holds, or every problem found in it, one line each as the CLI prints an error."""
    try:
        print(describe(args.dir, args.resolution, progress=not args.no_progress))
    except FolderProblems as err:
        lines = err.problems[:SHOWN_PROBLEMS]
        if len(err.problems) > SHOWN_PROBLEMS:
            lines.append(f"and {len(err.problems) - SHOWN_PROBLEMS} more problems")
        for line in lines:
            print(f"causaldiffae {args.command}: error: {line}", file=sys.stderr)
        return 2
    return 0
