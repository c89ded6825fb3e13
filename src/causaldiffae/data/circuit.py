"""CausalCircuit: a robot arm presses buttons that switch red, green and blue lights.

Two sources share one file layout (Brehmer et al. 2022): ``{split}.npz`` or shards
``{split}-0..K.npz`` for splits train, val, test, with keys ``imgs`` (N, 2) JPEG bytes,
``original_latents`` (N, 2, 4) ordered [red, green, blue, arm], ``epsilon``, ``pressed``
(N, 2, 3), ``intervention_labels``, ``intervention_masks``; ``[:, 0]`` is the observational
sample, the only one loaded. Variables are exposed in graph order arm, blue, green, red
(arm -> red, green, blue; blue -> red; green -> red).

* The official files (512x512 renders) load as they are; their SCM is unknown here, so ``scm``
  is None.
* ``causaldiffae data circuit`` writes a procedural stand-in: a flat 2-D scene drawn with PIL
  from the SCM below, whose counterfactuals are exact (``CircuitSCM``).

Stand-in SCM (all values in [0, 1]; ``press_k(arm) = exp(-((arm - c_k) / 0.08)^2 / 2)`` with
buttons at arm positions c_blue = 0.2, c_green = 0.5, c_red = 0.8; ``s`` is the logistic
function; noises ``e_* ~ N(0, 0.5^2)`` independent)::

    arm   = e_arm ~ Uniform(0, 1)
    blue  = s(8 press_blue(arm)  - 4 + e_blue)
    green = s(8 press_green(arm) - 4 + e_green)
    red   = s(8 press_red(arm) + 5 (blue + green) - 5 + e_red)

so a light is on when the arm presses its button, and red also when blue and green shine.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from causaldiffae.atomic import Output
from causaldiffae.cli.options import add_build_options
from causaldiffae.config import MAX_RESOLUTION, is_whole
from causaldiffae.data.base import CausalImageDataset, DataError, do_values, resize
from causaldiffae.data.parallel import map_progress
from causaldiffae.graph import CausalGraph

VARIABLES = ("arm", "blue", "green", "red")
GRAPH = CausalGraph(
    VARIABLES,
    (("arm", "blue"), ("arm", "green"), ("arm", "red"), ("blue", "red"), ("green", "red")),
)
LATENT_ORDER = ("red", "green", "blue", "arm")  # the official ``original_latents`` columns
TO_GRAPH = [LATENT_ORDER.index(v) for v in VARIABLES]
SPLITS = ("train", "val", "test")
MAX_ARRAY_BYTES = 2**31  # per npz member; the official 512 px JPEG arrays are a few hundred MB per shard
ALLOW_PICKLE_ENV = "CAUSALDIFFAE_ALLOW_PICKLE"  # "1": unpickle object arrays of files the user trusts
KEYS = ("imgs", "original_latents", "epsilon", "pressed", "intervention_labels", "intervention_masks")
REQUIRED = ("imgs", "original_latents")
DEFAULT_RESOLUTION = 128
FORMAT = "circuit"
METADATA = "circuit.json"
OUTPUT = Output(METADATA, format=FORMAT)  # what --force may replace

BUTTONS = {"blue": 0.2, "green": 0.5, "red": 0.8}
PRESS_WIDTH = 0.08
NOISE_STD = 0.5
_SHARD = re.compile(r"^(train|val|test)(?:-(\d+))?\.npz$")


# The stand-in SCM -------------------------------------------------------------------------------


def press(arm: np.ndarray | float, button: str) -> np.ndarray:
    """How firmly the arm at ``arm`` presses ``button`` (1 when exactly on it)."""
    return np.exp(-0.5 * ((np.asarray(arm, dtype=np.float64) - BUTTONS[button]) / PRESS_WIDTH) ** 2)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _drive(name: str, values: np.ndarray) -> np.ndarray:
    """The noiseless logit of light ``name`` given the current values (graph-order columns)."""
    arm = values[:, 0]
    if name == "red":
        return 8 * press(arm, "red") + 5 * (values[:, 1] + values[:, 2]) - 5
    return 8 * press(arm, name) - 4


class CircuitSCM:
    """The stand-in's SCM; counterfactuals abduct the logit noises and recompute descendants."""

    graph = GRAPH

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` observational samples (graph order) and their noises (arm's noise is its value)."""
        noise = np.column_stack([rng.uniform(0, 1, n), rng.normal(0, NOISE_STD, (n, 3))])
        return self.apply(noise, {}), noise

    def apply(self, noise: np.ndarray, do: Mapping[str, np.ndarray | float]) -> np.ndarray:
        """Evaluate the mechanisms in topological order from the noises, with interventions."""
        out = np.empty_like(noise, dtype=np.float64)
        for name in GRAPH.topological_order:
            k = GRAPH.index(name)
            if name in do:
                out[:, k] = do_values(do, name, len(out))
            elif name == "arm":
                out[:, k] = noise[:, k]
            else:
                out[:, k] = _sigmoid(_drive(name, out) + noise[:, k])
        return out

    def abduct(self, labels: np.ndarray) -> np.ndarray:
        """The noises that reproduce ``labels`` exactly."""
        labels = np.asarray(labels, dtype=np.float64)
        noise = labels.copy()
        for name in ("blue", "green", "red"):
            k = GRAPH.index(name)
            noise[:, k] = _logit(labels[:, k]) - _drive(name, labels)
        return noise

    def counterfactual(self, labels: np.ndarray, do: Mapping[str, np.ndarray | float]) -> np.ndarray:
        """Intervened variables and their descendants recomputed; every other value kept bit-exact."""
        labels = np.asarray(labels, dtype=np.float64)
        affected = set(do).union(*(GRAPH.descendants(name) for name in do))
        out = self.apply(self.abduct(labels), do)
        keep = [GRAPH.index(v) for v in VARIABLES if v not in affected]
        out[:, keep] = labels[:, keep]
        return out


# Rendering the stand-in -------------------------------------------------------------------------

_COLOURS = {"blue": (50, 120, 255), "green": (40, 215, 90), "red": (255, 60, 45)}
_DARK = (38, 42, 50)
_LIGHT_X = {"blue": 0.22, "green": 0.5, "red": 0.78}
_LIGHT_Y, _LIGHT_R = 0.17, 0.09
_BASE, _REACH = (0.5, 0.92), 0.45
_SUPERSAMPLE = 4


def _mix(a: Sequence[int], b: Sequence[int], t: float) -> tuple[int, ...]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def arm_point(arm: float, reach: float = _REACH) -> tuple[float, float]:
    """Scene position (x right, y down, in [0, 1]) of the arm's tip: an arc from left (0) to right (1)."""
    angle = math.pi * (0.85 - 0.7 * arm)
    return _BASE[0] + reach * math.cos(angle), _BASE[1] - reach * math.sin(angle)


def light_centre(name: str) -> tuple[float, float]:
    return _LIGHT_X[name], _LIGHT_Y


def render(values: Sequence[float], resolution: int = DEFAULT_RESOLUTION) -> np.ndarray:
    """The stand-in scene for graph-order values (arm, blue, green, red), uint8 (R, R, 3)."""
    from PIL import Image, ImageDraw

    arm, lights = float(values[0]), dict(zip(("blue", "green", "red"), (float(v) for v in values[1:])))
    size = resolution * _SUPERSAMPLE
    img = Image.new("RGB", (size, size), _DARK)
    draw = ImageDraw.Draw(img)

    def px(x: float) -> float:
        return x * size

    def disc(centre: tuple[float, float], radius: float, fill: tuple[int, ...], outline: tuple[int, ...] | None = None,
             width: float = 0) -> None:
        x, y = centre
        corners = [px(x - radius), px(y - radius), px(x + radius), px(y + radius)]
        draw.ellipse(corners, fill=fill, outline=outline, width=int(px(width)))

    # the track, the buttons on it (pressed ones sink and brighten), the lights with a halo
    box = [px(_BASE[0] - _REACH), px(_BASE[1] - _REACH), px(_BASE[0] + _REACH), px(_BASE[1] + _REACH)]
    draw.arc(box, start=180 + 0.15 * 180, end=360 - 0.15 * 180, fill=(90, 96, 108), width=int(px(0.012)))
    for name, position in BUTTONS.items():
        pressed = float(press(arm, name))
        disc(arm_point(position), 0.05, _mix(_DARK, _COLOURS[name], 0.35 + 0.4 * pressed), (200, 200, 200), 0.008)
        disc(arm_point(position), 0.05 * (1 - 0.5 * pressed), _mix((70, 70, 70), _COLOURS[name], 0.5))
    for name, value in lights.items():
        disc(light_centre(name), _LIGHT_R * 1.45, _mix(_DARK, _COLOURS[name], 0.3 * value))
        disc(light_centre(name), _LIGHT_R, _mix((25, 25, 25), _COLOURS[name], value), (150, 150, 150), 0.006)
    # the arm: an upright upper link leaning towards the tip, then the forearm (continuous in arm)
    tip = arm_point(arm)
    elbow = (_BASE[0] + 0.4 * (tip[0] - _BASE[0]), _BASE[1] - 0.25)
    for a, b, w in ((_BASE, elbow, 0.045), (elbow, tip, 0.032)):
        draw.line([px(a[0]), px(a[1]), px(b[0]), px(b[1])], fill=(225, 225, 232), width=int(px(w)))
    disc(_BASE, 0.07, (120, 124, 135))
    disc(elbow, 0.03, (160, 164, 175))
    disc(tip, 0.028, (250, 210, 60))
    return np.asarray(img.resize((resolution, resolution), Image.Resampling.BOX))


def _encode_jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _render_chunk(args: tuple[np.ndarray, int]) -> list[bytes]:
    values, resolution = args
    return [_encode_jpeg(render(v, resolution)) for v in values]


def _split_sizes(n: int) -> dict[str, int]:
    return {"train": n, "val": max(1, n // 10), "test": max(1, n // 10)}


def generate(
    out: str | Path,
    *,
    n: int = 10000,
    resolution: int = DEFAULT_RESOLUTION,
    seed: int = 0,
    workers: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Write the stand-in: ``n`` training pairs and ``max(1, n // 10)`` each for val and test, atomically."""
    from causaldiffae.atomic import atomic_dir

    if n < 1:
        raise DataError(f"--n must be at least 1, got {n}")
    if seed < 0:
        raise DataError(f"--seed must be at least 0, got {seed}")
    if workers is not None and workers < 1:
        raise DataError(f"--workers must be at least 1, got {workers}")
    if not 16 <= resolution <= MAX_RESOLUTION:
        raise DataError(f"--resolution must be between 16 and {MAX_RESOLUTION}, got {resolution}")
    workers = max(1, workers or len(os.sched_getaffinity(0)))
    scm = CircuitSCM()
    rng = np.random.default_rng(seed)
    sizes = _split_sizes(n)
    with atomic_dir(out, force=force, made_by=OUTPUT) as tmp:
        for split, count in sizes.items():
            factual, noise = scm.sample(count, rng)
            target = rng.integers(0, len(VARIABLES) + 1, count)  # 0: no intervention, k: VARIABLES[k - 1]
            new_values = rng.uniform(0, 1, count)
            intervened = factual.copy()
            for k, name in enumerate(VARIABLES, start=1):
                rows = target == k
                if rows.any():
                    intervened[rows] = scm.apply(noise[rows], {name: new_values[rows]})
            pairs = np.stack([factual, intervened], axis=1)  # (N, 2, 4) graph order
            flat = pairs.reshape(-1, len(VARIABLES))
            jobs = [(flat[k : k + 256], resolution) for k in range(0, len(flat), 256)]
            parts = map_progress(_render_chunk, jobs, workers=workers, total=len(flat), desc=f"circuit {split}", progress=progress)
            jpegs = [blob for part in parts for blob in part]
            masks = np.zeros((count, len(LATENT_ORDER)), dtype=bool)
            for k, name in enumerate(VARIABLES, start=1):
                masks[target == k, LATENT_ORDER.index(name)] = True
            to_latent = [VARIABLES.index(v) for v in LATENT_ORDER]
            np.savez(
                tmp / f"{split}.npz",
                imgs=np.array(jpegs, dtype=bytes).reshape(count, 2),
                original_latents=pairs[..., to_latent].astype(np.float32),
                epsilon=np.repeat(noise[:, None, to_latent], 2, axis=1).astype(np.float32),
                pressed=np.stack([press(pairs[..., 0], b) for b in ("red", "green", "blue")], axis=-1).astype(np.float32),
                intervention_labels=target.astype(np.int64),
                intervention_masks=masks,
            )
        meta = {
            "format": FORMAT,
            "source": "stand-in",
            "graph": GRAPH.to_dict(),
            "resolution": resolution,
            "seed": seed,
            "counts": sizes,
            "latent_order": list(LATENT_ORDER),
            "intervention_labels": "0 none; 1..4 arm, blue, green, red (graph order); [:, 1] shares the noise of [:, 0]",
            "epsilon": "the SCM noises in latent order (arm's noise is its value)",
            "pressed": "press strength exp(-((arm - c) / width)^2 / 2) of the red, green, blue buttons",
            "scm": {"buttons": BUTTONS, "press_width": PRESS_WIDTH, "noise_std": NOISE_STD},
        }
        (tmp / METADATA).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# Loading ----------------------------------------------------------------------------------------


def _metadata(path: Path) -> dict | None:
    try:
        meta = json.loads((path / METADATA).read_bytes())
    except (OSError, ValueError):  # missing, bad JSON or text that is not UTF-8
        return None
    return meta if isinstance(meta, dict) else None


def looks_like(path: str | Path) -> bool:
    """Our metadata or any ``train[-k].npz`` / ``val`` / ``test`` file of the official layout."""
    path = Path(path)
    meta = _metadata(path)
    if meta is not None:
        return meta.get("format") == FORMAT
    return any(_SHARD.match(p.name) for p in path.glob("*.npz"))


def available_splits(path: str | Path) -> list[str]:
    path = Path(path)
    return [s for s in SPLITS if (path / f"{s}.npz").is_file() or any(path.glob(f"{s}-*.npz"))]


def split_files(path: Path, split: str) -> list[Path]:
    """``{split}.npz`` or its shards ``{split}-0..K.npz`` in order; refuse gaps and mixtures."""
    if split not in SPLITS:
        raise DataError(f"{path}: no split {split!r} (expected one of {', '.join(SPLITS)})")
    whole = path / f"{split}.npz"
    shards: dict[int, Path] = {}
    for p in path.glob(f"{split}-*.npz"):
        m = _SHARD.match(p.name)
        if m and m.group(2) is not None:
            k = int(m.group(2))
            if k in shards:
                raise DataError(f"{path}: {shards[k].name} and {p.name} are both shard {k}; keep one")
            shards[k] = p
    if whole.is_file() and shards:
        raise DataError(f"{path}: both {whole.name} and shards {split}-*.npz; keep one")
    if whole.is_file():
        return [whole]
    if not shards:
        raise DataError(f"{path}: no {split}.npz or {split}-0.npz")
    missing = sorted(set(range(max(shards) + 1)) - set(shards))
    if missing:
        raise DataError(f"{path}: shard {split}-{missing[0]}.npz is missing (found {len(shards)} shards)")
    return [shards[k] for k in sorted(shards)]


def _keys(file: Path) -> list[str]:
    try:
        with np.load(file, allow_pickle=False) as data:
            return list(data.files)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"{file}: unreadable npz ({err})") from None


def _declared_bytes(file: Path, key: str) -> int:
    """The size an npz member's header declares, read before its data (a few MB of zeros can inflate to gigabytes)."""
    try:
        with zipfile.ZipFile(file) as zf, zf.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(f)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise DataError(f"{file}: {key!r} is unreadable ({err})") from None
    return math.prod(shape) * dtype.itemsize


def _read(file: Path, key: str) -> np.ndarray:
    """One array of an npz file. Object arrays (JPEG bytes stored by pickle, as some official files
    are) are unpickled only when the user vouches for the file via ``ALLOW_PICKLE_ENV``: unpickling
    can run code, and a downloaded dataset must not."""
    keys = _keys(file)
    if key not in keys:
        raise DataError(f"{file}: missing key {key!r} (has {', '.join(keys) or 'none'})")
    declared = _declared_bytes(file, key)
    if declared > MAX_ARRAY_BYTES:
        raise DataError(f"{file}: {key!r} declares {declared / 2**30:.3g} GiB; more than the {MAX_ARRAY_BYTES // 2**30} GiB this reader takes")
    with np.load(file, allow_pickle=False) as data:
        try:
            return data[key]
        except ValueError as err:
            if "allow_pickle" not in str(err):  # a damaged array, not a pickled one: say that, not "trust it"
                raise DataError(f"{file}: {key!r} is unreadable ({err})") from None
        except MemoryError:
            raise DataError(f"{file}: {key!r} declares an array too large to load") from None
    if os.environ.get(ALLOW_PICKLE_ENV) != "1":
        raise DataError(
            f"{file}: {key!r} is a pickled object array, and unpickling can run code from the file; "
            f"if you trust it, set {ALLOW_PICKLE_ENV}=1"
        )
    with np.load(file, allow_pickle=True) as data:
        return data[key]


def _latents(files: list[Path]) -> np.ndarray:
    parts = []
    for file in files:
        latents = _read(file, "original_latents")
        if latents.ndim != 3 or latents.shape[1:] != (2, len(LATENT_ORDER)):
            raise DataError(f"{file}: 'original_latents' has shape {latents.shape}, expected (N, 2, 4)")
        parts.append(latents[:, 0, TO_GRAPH].astype(np.float64))
    return np.concatenate(parts)


def _decode_chunk(args: tuple[list[bytes], int, str, int]) -> list[np.ndarray]:
    from PIL import Image

    blobs, resolution, file, start = args
    out = []
    for k, blob in enumerate(blobs):
        try:
            with Image.open(io.BytesIO(bytes(blob))) as jpeg:
                jpeg.draft("RGB", (resolution, resolution))  # JPEG DCT scaling: decode 512 px at 1/4 directly
                out.append(np.asarray(resize(jpeg.convert("RGB"), (resolution, resolution))))
        except OSError as err:
            raise DataError(f"{file}: imgs[{start + k}, 0] is not a readable JPEG ({err})") from None
    return out


def _images(files: list[Path], resolution: int, workers: int, progress: bool = True) -> np.ndarray:
    """Decode ``imgs[:, 0]`` file by file, so only one shard's JPEG bytes are held at a time."""
    out = np.empty((0, resolution, resolution, 3), dtype=np.uint8)
    for file in files:
        imgs = _read(file, "imgs")
        if imgs.ndim != 2 or imgs.shape[1] != 2:
            raise DataError(f"{file}: 'imgs' has shape {imgs.shape}, expected (N, 2)")
        if imgs.dtype.kind not in "SO":
            raise DataError(f"{file}: 'imgs' must hold JPEG bytes, got dtype {imgs.dtype}")
        if len(imgs) == 0:
            raise DataError(f"{file}: 'imgs' holds no images")
        first = list(imgs[:, 0])
        del imgs
        jobs = [(first[k : k + 256], resolution, str(file), k) for k in range(0, len(first), 256)]
        procs = 1 if len(first) < 2048 else workers
        parts = map_progress(_decode_chunk, jobs, workers=procs, total=len(first), desc=f"decode {file.name}", progress=progress)
        out = np.concatenate([out, np.stack([img for part in parts for img in part])])
    return out


def load(
    path: str | Path, split: str = "train", resolution: int | None = None, progress: bool = True, *, workers: int | None = None
) -> CausalImageDataset:
    """The observational samples of ``split`` resized to ``resolution``.

    ``None`` keeps a stand-in at the size it was rendered at and brings the official 512 px
    renders to the reference's 128.
    """
    path = Path(path)
    meta = _metadata(path)
    if resolution is None:
        stored = (meta or {}).get("resolution") or DEFAULT_RESOLUTION
        if not is_whole(stored, 16, MAX_RESOLUTION):
            raise DataError(f"{path / METADATA}: resolution {stored!r} is not a whole number of pixels in 16..{MAX_RESOLUTION}")
        resolution = stored
    files = split_files(path, split)
    for file in files:  # every file's keys checked before any decoding
        keys = _keys(file)
        for key in REQUIRED:
            if key not in keys:
                raise DataError(f"{file}: missing key {key!r} (has {', '.join(keys) or 'none'})")
    labels = _latents(files)
    train = labels if split == "train" else _latents(split_files(path, "train"))
    images = _images(files, resolution, max(1, workers or len(os.sched_getaffinity(0))), progress)
    if len(images) != len(labels):
        raise DataError(f"{path}/{split}: {len(images)} images but {len(labels)} latent rows")
    standin = meta is not None and meta.get("source") == "stand-in"
    return CausalImageDataset(
        images,
        labels,
        GRAPH,
        train.mean(axis=0),
        train.std(axis=0),
        name=FORMAT,
        split=split,
        scm=CircuitSCM() if standin else None,
    )


# CLI --------------------------------------------------------------------------------------------


def add_data_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "circuit",
        help="write the procedural CausalCircuit stand-in (official npz layout)",
        description="Render a 2-D robot-arm/buttons/lights scene from a known SCM and write "
        "train.npz, val.npz, test.npz in the official CausalCircuit layout, plus circuit.json.",
    )
    add_build_options(parser, "CausalCircuit")
    parser.add_argument("--n", type=int, default=10000, help="training pairs; val and test get max(1, n // 10) each (default 10000)")
    parser.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION, help="image size in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import time

    start = time.perf_counter()
    meta = generate(args.out, n=args.n, resolution=args.resolution, seed=args.seed, workers=args.workers, force=args.force, progress=not args.no_progress)
    counts = ", ".join(f"{k} {v}" for k, v in meta["counts"].items())
    print(f"circuit stand-in: {counts} pairs at {args.resolution} px in {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0
