"""Pendulum (CausalVAE): a pendulum lit by a sun casts a shadow whose length and position it causes.

Variables, in graph order: ``angle`` and ``light`` are the grid indices ``i`` and ``j`` of the
original generator (pendulum angle ``theta = angle * pi / 200`` rad and sun elevation
``phi = light * pi / 200`` rad, i.e. 0.9 degree per unit), ``shadow_len`` and ``shadow_pos``
are the shadow's length and midpoint in scene units (x in [0, 20]). Graph:
angle, light -> shadow_len, shadow_pos. Images are 96x96 RGBA drawn by matplotlib's Agg
renderer with the original figure geometry (1 inch at 96 dpi, axes spanning the data limits,
line widths in points), so they match the published files; one figure per worker process is
reused, about 1 ms per image. The shadow is a deterministic function of angle and light, so
the SCM's counterfactuals are exact.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from causaldiffae.atomic import Output
from causaldiffae.cli.options import add_build_options
from causaldiffae.data.base import CausalImageDataset, DataError, do_values, resize_images
from causaldiffae.data.parallel import map_progress
from causaldiffae.graph import CausalGraph

VARIABLES = ("angle", "light", "shadow_len", "shadow_pos")
GRAPH = CausalGraph(
    VARIABLES,
    (("angle", "shadow_len"), ("angle", "shadow_pos"), ("light", "shadow_len"), ("light", "shadow_pos")),
)
ANGLES = tuple(range(-40, 44))
LIGHTS = tuple(j for j in range(60, 148) if j != 100)
SPLITS = ("train", "test")
SIZE = 96
FORMAT = "pendulum"
METADATA = "pendulum.json"
OUTPUT = Output(METADATA, format=FORMAT)  # what --force may replace

_NAME = re.compile(r"^a_(-?\d+)_(-?\d+)_(-?\d+)_(-?\d+)\.png$")
_PIVOT = (10.0, 10.5)
_GROUND = -0.5


# Geometry ---------------------------------------------------------------------------------------


def _project(x: np.ndarray | float, y: np.ndarray | float, phi: np.ndarray) -> np.ndarray:
    """Where the sun ray through ``(x, y)`` meets the ground line y = -0.5."""
    return x + (_GROUND - y) / np.tan(phi)


def shadow(angle: np.ndarray | float, light: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Shadow length and midpoint for angle/light in index units (the pendulum's mechanisms)."""
    theta = np.asarray(angle, dtype=np.float64) * math.pi / 200.0
    phi = np.asarray(light, dtype=np.float64) * math.pi / 200.0
    p1 = _project(np.float64(_PIVOT[0]), np.float64(_PIVOT[1]), phi)
    p2 = _project(_PIVOT[0] + 9.5 * np.sin(theta), _PIVOT[1] - 9.5 * np.cos(theta), phi)
    return np.maximum(3.0, np.abs(p1 - p2)), (p1 + p2) / 2.0


def sun_x(light: np.ndarray | float) -> np.ndarray:
    """Horizontal position of the sun's centre (on the line y = 20.5)."""
    return _PIVOT[0] + 10.0 / np.tan(np.asarray(light, dtype=np.float64) * math.pi / 200.0)


def file_name(i: int, j: int) -> str:
    """``a_{i}_{j}_{int(shade)}_{int(mid)}.png`` exactly as the original generator names files."""
    length, mid = shadow(i, j)
    return f"a_{i}_{j}_{int(length)}_{int(mid)}.png"


def split_of(n: int) -> str:
    """Image number ``n`` (loop order) goes to test when ``n > 0 and n % 4 == 0``."""
    return "test" if n > 0 and n % 4 == 0 else "train"


def grid(limit: int | None = None) -> list[tuple[int, int, int, str]]:
    """``(n, i, j, split)`` for every image in loop order (``i`` outer, ``j`` inner).

    With ``limit``, a fixed random subset of that many images in loop order, numbered and split as
    a grid of their own: the loop's first images would share one angle, and evenly strided ones
    line up with the rows of lights (only two lights, or angle and light in lockstep, for some sizes).
    """
    cells = [(i, j) for i in ANGLES for j in LIGHTS]
    if limit is not None and limit < len(cells):
        cells = [cells[k] for k in np.sort(np.random.default_rng(0).choice(len(cells), limit, replace=False))]
    return [(n, i, j, split_of(n)) for n, (i, j) in enumerate(cells)]


def measure_shadow(image: np.ndarray, floor: float = 0.1) -> tuple[float, float]:
    """Shadow length and midpoint (scene units) read off an image's ground rows, at any resolution.

    Darkness is summed along the rows y in [-1, 0.4] (only the shadow lies there), column-wise
    maximum, ignoring darkness below ``floor`` (noise of generated images); the line ends flat at
    its endpoints, so the dark run's length is the shadow's. Exact to the pixel
    snapping of the renderer (<= 1 px in length, 0.5 px in midpoint) when the shadow lies fully
    inside the image; a shadow cut by the border measures its visible part. NaN when none is seen.
    """
    h, w = image.shape[:2]
    band = image[int(math.ceil((21 - 0.4) / 22 * h)) :, :, :3].astype(np.float64)
    coverage = (1 - band.mean(axis=-1) / 255).max(axis=0)
    coverage = np.where(coverage >= floor, coverage, 0.0)
    total = coverage.sum()
    if total == 0:
        return math.nan, math.nan
    unit = 20 / w
    centre = float((coverage * (np.arange(w) + 0.5)).sum() / total)
    return float(total * unit), centre * unit


class PendulumSCM:
    """The scene geometry as an SCM: roots angle and light, noiseless shadow mechanisms."""

    graph = GRAPH

    def counterfactual(self, labels: np.ndarray, do: Mapping[str, np.ndarray | float]) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.float64)
        out = labels.copy()
        for name in do:
            out[:, GRAPH.index(name)] = do_values(do, name, len(out))
        length, mid = shadow(out[:, 0], out[:, 1])
        for k, value in ((2, length), (3, mid)):
            if VARIABLES[k] not in do:
                out[:, k] = value
        return out


# Rendering --------------------------------------------------------------------------------------


class _Scene:
    """One reusable matplotlib figure with the four artists; only their coordinates change per image."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Circle, Polygon

        fig = Figure(figsize=(1.0, 1.0), dpi=SIZE, facecolor="white")
        self.canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_xlim(0, 20)
        ax.set_ylim(-1, 21)
        ax.set_axis_off()
        # The reference's artists: every shape a patch, so they draw in insertion order (rod, bob, sun,
        # shadow: the bob covers the rod's end), and the rod and shadow are two-point polygons, whose
        # outline ends flat at the endpoints. Explicit styles so a user's matplotlibrc cannot change the data.
        line: dict[str, Any] = dict(closed=True, color="black", linewidth=3, antialiased=True)
        patch: dict[str, Any] = dict(linewidth=1.0, antialiased=True)
        self.rod = Polygon([[0, 0], [0, 0]], **line)
        self.bob = Circle((0, 0), 1.5, color="firebrick", **patch)
        self.sun = Circle((0, 0), 3, color="orange", **patch)
        self.shadow = Polygon([[0, 0], [0, 0]], **line)
        for artist in (self.rod, self.bob, self.sun, self.shadow):
            ax.add_artist(artist)

    def draw(self, angle: float, light: float) -> np.ndarray:
        theta = angle * math.pi / 200.0
        bob = (_PIVOT[0] + 8 * math.sin(theta), _PIVOT[1] - 8 * math.cos(theta))
        length, mid = (float(v) for v in shadow(angle, light))
        self.rod.set_xy([_PIVOT, bob])
        self.bob.center = bob
        self.sun.center = (float(sun_x(light)), 20.5)
        self.shadow.set_xy([(mid - length / 2, _GROUND), (mid + length / 2, _GROUND)])
        self.canvas.draw()
        return np.array(self.canvas.buffer_rgba(), dtype=np.uint8)


_scene: _Scene | None = None


def render(angle: float, light: float) -> np.ndarray:
    """The 96x96x4 uint8 image for any angle and light (index units; fractional values allowed)."""
    global _scene
    if _scene is None:
        _scene = _Scene()
    return _scene.draw(float(angle), float(light))


def _render_chunk(args: tuple[Sequence[tuple[int, int, int, str]], str]) -> int:
    from PIL import Image

    cells, root = args
    for _, i, j, split in cells:
        Image.fromarray(render(i, j)).save(os.path.join(root, split, file_name(i, j)))
    return len(cells)


def generate(
    out: str | Path, *, workers: int | None = None, limit: int | None = None, force: bool = False, progress: bool = True
) -> dict:
    """Render the grid (or a fixed random ``limit`` of its images) into ``out`` atomically; return the metadata."""
    from causaldiffae.atomic import atomic_dir

    if limit is not None and limit < 1:
        raise DataError(f"--limit must be at least 1, got {limit}")
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be at least 1, got {workers}")
    cells = grid(limit)
    workers = max(1, workers or len(os.sched_getaffinity(0)))
    with atomic_dir(out, force=force, made_by=OUTPUT) as tmp:
        for split in SPLITS:
            (tmp / split).mkdir()
        jobs = [(cells[k : k + 64], str(tmp)) for k in range(0, len(cells), 64)]
        map_progress(_render_chunk, jobs, workers=workers, total=len(cells), desc="pendulum", progress=progress)  # writes into tmp
        counts = {}
        for split in SPLITS:
            rows = [(i, j) for _, i, j, s in cells if s == split]
            counts[split] = len(rows)
            _write_labels(tmp / f"{split}.csv", rows)
        meta = {
            "format": FORMAT,
            "graph": GRAPH.to_dict(),
            "image_shape": [SIZE, SIZE, 4],
            "counts": counts,
            "complete": len(cells) == len(ANGLES) * len(LIGHTS),
            "limit": limit if limit is not None and limit < len(ANGLES) * len(LIGHTS) else None,  # a random subset of this size
            "units": {
                "angle": "grid index i; theta = angle * pi / 200 rad",
                "light": "grid index j; phi = light * pi / 200 rad",
                "shadow_len": "scene units (image width = 20)",
                "shadow_pos": "scene units, x of the shadow midpoint",
            },
        }
        (tmp / METADATA).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _write_labels(path: Path, cells: list[tuple[int, int]]) -> None:
    angle = np.array([i for i, _ in cells], dtype=np.float64)
    light = np.array([j for _, j in cells], dtype=np.float64)
    length, mid = shadow(angle, light)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("file",) + VARIABLES)
        for k, (i, j) in enumerate(cells):
            writer.writerow((file_name(i, j), i, j, repr(float(length[k])), repr(float(mid[k]))))


# Loading ----------------------------------------------------------------------------------------


def looks_like(path: str | Path) -> bool:
    """Our metadata, or train/test folders of ``a_i_j_shade_mid.png`` files (the original generator)."""
    path = Path(path)
    meta = path / METADATA
    if meta.is_file():
        try:
            return json.loads(meta.read_bytes()).get("format") == FORMAT
        except (ValueError, AttributeError):  # bad JSON, text that is not UTF-8, or not an object
            return False
    if not (path / "train").is_dir():
        return False
    first = next((p.name for p in (path / "train").iterdir() if p.suffix == ".png"), None)
    return first is not None and bool(_NAME.match(first))


def available_splits(path: str | Path) -> list[str]:
    return [s for s in SPLITS if (Path(path) / s).is_dir()]


def _from_names(folder: Path) -> tuple[list[str], np.ndarray]:
    """Labels of an original-generator folder: angle, light from the name, exact shadow from the geometry."""
    named = []
    for file in folder.iterdir():
        if file.suffix != ".png":
            continue
        m = _NAME.match(file.name)
        if m is None:
            raise DataError(f"{file}: not a pendulum file name (expected a_<i>_<j>_<shade>_<mid>.png)")
        named.append((tuple(int(g) for g in m.groups()), file.name))
    named.sort()  # the generator's loop order: angle, then light
    files = [name for _, name in named]
    parsed = [values for values, _ in named]
    arr = np.array(parsed, dtype=np.float64).reshape(-1, 4)
    length, mid = shadow(arr[:, 0], arr[:, 1])
    for k, name in enumerate(files):
        for value, named in ((length[k], arr[k, 2]), (mid[k], arr[k, 3])):
            if named not in {int(value - 1e-9), int(value), int(value + 1e-9)}:
                raise DataError(
                    f"{folder / name}: the name says {int(named)} but the pendulum geometry gives "
                    f"{value:.4f} (shade/mid); not made by the pendulum generator"
                )
    return files, np.stack([arr[:, 0], arr[:, 1], length, mid], axis=1)


def _from_csv(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("file",) + VARIABLES if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column {missing[0]!r}")
            files, rows = [], []
            seen: dict[str, int] = {}
            for line, row in enumerate(reader, start=2):
                try:
                    values = [float(row[v]) for v in VARIABLES]
                except (TypeError, ValueError):
                    raise DataError(f"{path}, row {line}: non-numeric label in {row}") from None
                if not np.all(np.isfinite(values)):
                    raise DataError(f"{path}, row {line}: non-finite label in {row}")
                if row["file"] in seen:
                    raise DataError(f"{path}, row {line}: {row['file']} is listed again (first in row {seen[row['file']]})")
                seen[row["file"]] = line
                rows.append(values)
                files.append(row["file"])
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: unreadable ({err})") from None
    return files, np.array(rows, dtype=np.float64).reshape(-1, len(VARIABLES))


def _labels(path: Path, split: str) -> tuple[list[str], np.ndarray]:
    folder = path / split
    if not folder.is_dir():
        raise DataError(f"{path}: no split {split!r} (expected one of {', '.join(SPLITS)})")
    table = path / f"{split}.csv"
    if not table.is_file():
        return _from_names(folder)
    files, labels = _from_csv(table)
    present = {p.name for p in folder.iterdir() if p.suffix == ".png"}
    listed = set(files)
    for name in files:
        if name not in present:
            raise DataError(f"{table}: row for {name} but {folder / name} does not exist")
    for name in sorted(present - listed):
        raise DataError(f"{folder / name}: image has no row in {table}")
    return files, labels


def load(path: str | Path, split: str = "train", resolution: int | None = None, progress: bool = True) -> CausalImageDataset:
    """Load a split made by ``causaldiffae data pendulum`` or by the original generator."""
    from PIL import Image
    from causaldiffae.progress import bar

    path = Path(path)
    if split not in SPLITS:
        raise DataError(f"{path}: no split {split!r} (expected one of {', '.join(SPLITS)})")
    files, labels = _labels(path, split)
    train = labels if split == "train" else _labels(path, "train")[1]
    if len(files) == 0 or len(train) == 0:
        raise DataError(f"{path / split}: no images")
    images = np.empty((len(files), SIZE, SIZE, 4), dtype=np.uint8)
    for k, name in enumerate(bar(files, desc=f"pendulum {split}", unit="img", enabled=progress)):
        file = path / split / name
        try:
            with Image.open(file) as img:
                arr = np.asarray(img.convert("RGBA"))
        except (OSError, SyntaxError, ValueError) as err:  # Pillow: SyntaxError for a broken chunk
            raise DataError(f"{file}: unreadable image ({err})") from None
        if arr.shape != images.shape[1:]:
            raise DataError(f"{file}: expected {SIZE}x{SIZE} pixels, got {arr.shape[1]}x{arr.shape[0]}")
        images[k] = arr
    return CausalImageDataset(
        resize_images(images, resolution),
        labels,
        GRAPH,
        train.mean(axis=0),
        train.std(axis=0),
        name=FORMAT,
        split=split,
        scm=PendulumSCM(),
    )


# CLI --------------------------------------------------------------------------------------------


def add_data_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pendulum",
        help="render the Pendulum dataset (7,308 images, CausalVAE geometry)",
        description="Render the Pendulum grid: 96x96 RGBA PNGs in train/ and test/, exact labels in "
        "train.csv/test.csv, pendulum.json.",
    )
    add_build_options(parser, "Pendulum")
    parser.add_argument("--limit", type=int, default=None, help="render only N images, a fixed random subset of the grid")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import time

    start = time.perf_counter()
    full = len(ANGLES) * len(LIGHTS)
    if args.limit is not None and args.limit >= full:
        print(f"note: --limit {args.limit} covers the whole grid of {full} images", file=sys.stderr)
    meta = generate(args.out, workers=args.workers, limit=args.limit, force=args.force, progress=not args.no_progress)
    counts = ", ".join(f"{k} {v}" for k, v in meta["counts"].items())
    print(f"pendulum: {counts} images in {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0
