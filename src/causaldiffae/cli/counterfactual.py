"""``causaldiffae counterfactual``: a grid of counterfactuals of dataset images or image files, and a CSV of their values."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from causaldiffae.cli.options import (
    THREADS_HELP,
    add_run_options,
    add_sampling_options,
    check_input_folders,
    note_part_trained,
    set_threads,
)
from causaldiffae.errors import UserError

if TYPE_CHECKING:  # torch and numpy load only when the command runs
    import numpy as np
    import torch

    from causaldiffae.config import ExperimentConfig
    from causaldiffae.data.base import CausalImageDataset
    from causaldiffae.models import CausalDiffAE


def parse_do(items: list[str]) -> list[tuple[str, list[float]]]:
    """``["thickness=1.5,3", "intensity=100"]`` -> ``[("thickness", [1.5, 3.0]), ("intensity", [100.0])]``."""
    out: list[tuple[str, list[float]]] = []
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name or not raw.strip():
            raise UserError(f"--do {item!r}: expected NAME=VALUE[,VALUE...], e.g. thickness=1.5,3,4.5")
        values = []
        for part in raw.split(","):
            try:
                values.append(float(part))
            except ValueError:
                raise UserError(f"--do {item!r}: value {part.strip()!r} is not a number") from None
        if any(v != v or v in (float("inf"), float("-inf")) for v in values):
            raise UserError(f"--do {item!r}: values must be finite")
        out.append((name, values))
    return out


def parse_joint(items: list[str]) -> list[dict[str, float]]:
    """``["thickness=1.5,intensity=200"]`` -> ``[{"thickness": 1.5, "intensity": 200.0}]``: one column each."""
    out = []
    for item in items:
        do: dict[str, float] = {}
        for part in item.split(","):
            name, sep, raw = (t.strip() for t in part.partition("="))
            if not sep or not name or not raw:
                raise UserError(f"--joint {item!r}: expected NAME=VALUE,NAME=VALUE..., e.g. thickness=1.5,intensity=200")
            if name in do:
                raise UserError(f"--joint {item!r}: names {name!r} twice")
            try:
                do[name] = float(raw)
            except ValueError:
                raise UserError(f"--joint {item!r}: value {raw!r} is not a number") from None
            if not math.isfinite(do[name]):
                raise UserError(f"--joint {item!r}: values must be finite")
        out.append(do)
    return out


def column_title(do: dict[str, float]) -> str:
    return ", ".join(f"{name}={v:g}" for name, v in do.items())


DEFAULT_N = 16  # images in a grid when neither --n nor --indices says
FAR_SD = 4  # interventions further than this from the training mean get a note: extrapolation


def parse_indices(text: str | None) -> list[int] | None:
    """``--indices "0,17,42"`` -> ``[0, 17, 42]``; checked against the split once it is loaded."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--indices {text!r}: expected whole numbers separated by commas, e.g. 0,17,42") from None


def pick_images(indices: list[int] | None, n: int | None, split: str, size: int) -> np.ndarray:
    """The split's images to use: ``indices``, or ``n`` (default ``DEFAULT_N``) spread evenly from the first to the last; a
    split smaller than an ``n`` asked for is noted, one smaller than the default is simply used whole."""
    import numpy as np

    if indices is None:
        if n is not None and n > size:
            print(f"note: --n {n}, but the {split} split has {size} images: the grid has {size} rows", file=sys.stderr)
        return np.linspace(0, size - 1, min(DEFAULT_N if n is None else n, size)).round().astype(np.int64)
    bad = [i for i in indices if not 0 <= i < size]
    if bad:
        raise UserError(f"--indices: {bad[0]} is not an image of the {split} split (0..{size - 1})")
    return np.asarray(indices, dtype=np.int64)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "counterfactual",
        help="counterfactual images of dataset images or image files under do-interventions",
        description="Rows are images; columns are the original, its reconstruction, one column per --do value and one per --joint.",
    )
    add_run_options(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="dataset folder")
    source.add_argument("--images", nargs="+", metavar="FILE",
                        help="image files instead, or patterns such as 'digits/*.png' (PNG/JPEG, any size: converted and resized to the run's images as a folder dataset's are), "
                             "one row each; their labels are unknown, so the CSV leaves them empty; a file framed unlike the run's training images "
                             "(inverted, on a grey page, off-centre, drawn at another size) gets a note")
    parser.add_argument("--classes", default=None, metavar="K[,K...]",
                        help="with --images on a class-conditional run: the class of each file, one for all or one per file (default -1: unknown)")
    parser.add_argument("--predictors", default=None, metavar="DIR",
                        help="with --images on a class-conditional run: read each file's class with these predictors' classifier instead")
    parser.add_argument("--invert", action="store_true",
                        help="with --images: invert the files' colours (255 - v, alpha kept), so that a dark digit on white paper "
                             "becomes the white digit on black a MorphoMNIST model expects")
    parser.add_argument("--frame", action="store_true",
                        help="with --images: frame each file (after --invert) as the run's training images are (MNIST's way) before "
                             "resizing it: its page levelled to theirs (a photographed page is grey) and, if it was, its ink evened "
                             "(a pen pressed unevenly), the square window about its brightness centroid in which its bright part spans "
                             "their median extent, its edges smoothed or sharpened to rise as theirs do; a file already framed as theirs "
                             "at their size is not cut again")
    parser.add_argument("--even-ink", action="store_true",
                        help="with --frame: even the ink of files on the run's own page too (a digit drawn with a pressure-sensitive pen on "
                             "a plain canvas, or scanned on pure white and inverted); --frame evens only pages it levels, as a file like the "
                             "training images has uneven ink of its own")
    parser.add_argument("--split", default=None, help="split of --data the images come from (default test)")
    parser.add_argument("--n", type=int, default=None,
                        help="number of images (default 16), spread evenly over the split (so a split stored in order, "
                             "such as Pendulum's grid, is sampled across)")
    parser.add_argument("--indices", default=None, metavar="I,J,...", help="these images of the split instead (0-based, as the CSV's index column)")
    parser.add_argument("--do", action="append", default=[], metavar="NAME=V1,V2,...",
                        help="variable and values, one column per value, e.g. thickness=1.5,3,4.5; repeatable; digit=K on class-conditional models")
    parser.add_argument("--joint", action="append", default=[], metavar="NAME=V,NAME=V,...",
                        help="one column that intervenes on several variables at once, e.g. thickness=1.5,intensity=200; repeatable; after the --do columns")
    add_sampling_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the abduction noise (ddpm and stochastic abductions; default 0)")
    parser.add_argument("--out", required=True, help="grid PNG path; the CSV of values is written beside it")
    parser.add_argument("--force", action="store_true", help="overwrite an existing grid PNG or CSV")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (in a log, nor the lines saying what is sampled and that it still runs)")
    parser.set_defaults(handler=run)


@dataclass
class _Rows:
    """The images of the grid's rows, whichever source they come from."""

    x: torch.Tensor  # (n, C, H, W) in [-1, 1]
    labels: np.ndarray | None  # (n, variables) in the run's graph order; None for image files
    classes: np.ndarray | None
    ids: list[int | str]  # the CSV's first column: dataset indices or file paths
    key: str  # its header
    titles: list[str]  # row titles in the grid
    what: str  # the grid's title, before the settings


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    csv_path = _check_outputs(out, args)
    if not 0 <= args.seed < 2**63:
        raise UserError(f"--seed must lie in 0..2**63-1, got {args.seed}")
    if args.n is not None and args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    _check_source_options(args)
    indices = parse_indices(args.indices)
    if indices is not None and args.n is not None:
        print(f"note: --indices picks {len(indices)} images; --n {args.n} is not used", file=sys.stderr)
    if not args.do and not args.joint:
        raise UserError("give at least one --do NAME=V1,V2,... or --joint NAME=V,NAME=V,...")
    columns = [{name: v} for name, values in parse_do(args.do) for v in values] + parse_joint(args.joint)
    check_input_folders(args, "run", "data", "predictors")
    if args.images is not None:
        from causaldiffae.data.folder import check_image_file

        args.images = _expand_patterns(args.images)
        for file in args.images:
            check_image_file(file)

    import torch

    from causaldiffae.atomic import atomic_file
    from causaldiffae.checkpoint import load_run
    from causaldiffae.counterfactual import (
        abduct,
        block_values,
        check_do,
        check_options,
        decode_interventions,
        label_stats,
        retraces_by_options,
    )
    from causaldiffae.evaluation.figures import image_grid
    from causaldiffae.progress import Heartbeat
    from causaldiffae.signals import signals_held

    set_threads(args.threads)
    model, config = load_run(args.run, step=args.step)
    note_part_trained(model, config, args.run, args.step)
    args.steps = config.diffusion.sample_steps if args.steps is None else args.steps
    args.spacing = args.spacing or config.diffusion.sample_spacing
    check_options(model, steps=args.steps, w=args.w, mode=args.mode, abduction=args.abduction, guidance=args.guidance, start=args.start,
                  spacing=args.spacing)
    mean, std = label_stats(model)
    for do in columns:
        check_do(model, do, 1)
    _note_far_values(model, columns, mean, std)
    rows = _file_rows(args, model) if args.images is not None else _dataset_rows(args, model, config, indices)
    n = len(rows.ids)
    dos: list[dict[str, np.ndarray]] = [{}] + [check_do(model, do, n) for do in columns]
    with Heartbeat(enabled=not args.no_progress) as log:
        if log.enabled:  # a log shows no sampler bars: say what the silence is
            log(_sampling_line(n, len(columns), args.steps, *(retraces_by_options(args.abduction, w=args.w, guidance=args.guidance,
                                                                                    edited=edited) for edited in (False, True))))
        abd = abduct(model, rows.x, steps=args.steps, start=args.start, spacing=args.spacing, abduction=args.abduction, labels=rows.labels,
                     class_labels=rows.classes, label_mean=mean, label_std=std, generator=torch.Generator().manual_seed(args.seed),
                     progress=not args.no_progress)
        decoded = decode_interventions(model, abd, dos, label_mean=mean, label_std=std, mode=args.mode, w=args.w, guidance=args.guidance,
                                       progress=not args.no_progress)
    results = [(do, imgs.cpu().numpy(), block_values(model, z_cf, mean, std), cls) for do, (imgs, z_cf, cls) in zip([{}] + columns, decoded)]
    variables = list(model.graph.variables)
    for do, _, values, _ in results:  # the latent holds the set value up to float error (0 would read 9e-08)
        for name, v in do.items():
            if name in variables:
                values[:, variables.index(name)] = v
    grid = [[rows.x[i].numpy()] + [r[1][i] for r in results] for i in range(n)]
    titles = ["original", "reconstruction"] + [column_title(do) for do in columns]
    with signals_held(), atomic_file(out) as png, atomic_file(csv_path) as table:  # the pair or neither, even on Ctrl-C
        image_grid(grid, png, col_titles=titles, row_titles=rows.titles,
                   title=f"{rows.what}; {args.mode} mode, {args.abduction} abduction, {args.steps} DDIM steps, "
                         f"guidance w={args.w:g} ({args.guidance})")
        _write_values(table, rows, variables, block_values(model, abd.z, mean, std), titles[1:], results)
    print(f"wrote {out} ({n} image{'s' * (n != 1)} x {len(titles)} columns, {args.steps} DDIM steps, {args.spacing} spacing) and {csv_path}")
    return 0


def _sampling_line(n: int, columns: int, steps: int, reconstruction_free: bool, interventions_free: bool) -> str:
    """What the sampling does, for a log: the columns that only retrace the abduction are the images themselves, not decoded."""
    decoded = [part for part, free in (("the reconstruction", reconstruction_free),
                                       (f"{columns} intervention{'s' * (columns != 1)}", interventions_free)) if not free]
    free = [part for part, is_free in (("the reconstruction", reconstruction_free), ("every intervention", interventions_free)) if is_free]
    what = f"abducting {n} image{'s' * (n != 1)}" + (f" and decoding {' and '.join(decoded)} of each" if decoded else "")
    return what + (f" ({' and '.join(free)}: the image itself)" if free else "") + f", {steps} DDIM steps each"


def _check_source_options(args: argparse.Namespace) -> None:
    """Options that pick dataset images make no sense with files, nor --classes / --predictors with a dataset (it has its classes)."""
    if args.images is not None:
        given = [o for o, v in (("--n", args.n), ("--indices", args.indices), ("--split", args.split)) if v is not None]
        if given:
            raise UserError(f"{given[0]} picks images of --data; with --images every file given is a row")
        if args.classes is not None and args.predictors is not None:
            raise UserError("--classes and --predictors both say the images' classes; give one of them")
    else:
        given = [o for o, v in (("--classes", args.classes), ("--predictors", args.predictors)) if v is not None]
        if given:
            raise UserError(f"{given[0]} goes with --images; the images of --data come with their dataset's classes")
        for flag, given in (("--invert", args.invert), ("--frame", args.frame), ("--even-ink", args.even_ink)):
            if given:
                raise UserError(f"{flag} goes with --images; the images of --data are used as the dataset stores them")


def _dataset_rows(args: argparse.Namespace, model: CausalDiffAE, config: ExperimentConfig, indices: list[int] | None) -> _Rows:
    """The --data split's images picked by --indices or --n, with their labels and classes."""
    from causaldiffae.data.base import images_tensor

    split = args.split or "test"
    ds = _load_matching_data(args, split, model, config)
    idx = pick_images(indices, args.n, split, len(ds))
    labels = ds.labels[idx][:, [ds.variables.index(v) for v in model.graph.variables]]
    classes = None if ds.classes is None else ds.classes[idx]
    return _Rows(images_tensor(ds, idx), labels, classes, [int(i) for i in idx], "index", [f"#{i}" for i in idx],
                 f"{split} images by index")


def _expand_patterns(items: list[str]) -> list[str]:
    """Each --images item that is no file but a pattern (``digits/*.png``), as the files it matches in
    name order: Windows' cmd passes patterns on unexpanded, and a quoted one reaches any shell's user so."""
    import glob

    files = []
    for item in items:
        if Path(item).exists() or not any(c in item for c in "*?["):
            files.append(item)
            continue
        matched = sorted(glob.glob(item))
        if not matched:
            raise UserError(f"--images {item}: no file matches this pattern")
        files.extend(matched)
    return files


def _file_rows(args: argparse.Namespace, model: CausalDiffAE) -> _Rows:
    """The --images files in the run's image shape; their class from --classes or the --predictors' classifier (else -1, unknown)."""
    import numpy as np

    from causaldiffae.counterfactual import is_class_conditional
    from causaldiffae.data.base import pixels_tensor
    from causaldiffae.data.folder import read_image
    from causaldiffae.data.framing import Framing

    if model.variant == "label-conditional":
        raise UserError("--images: a label-conditional run needs each image's labels to abduct its condition; give them as a dataset folder (--data)")
    channels, height, width = model.image_shape
    if height != width:
        raise UserError(f"--images: the run's images are {height}x{width}; files are resized to square images only")
    framing = Framing.of_run(model.framing) if args.frame else None
    if args.frame and framing is None:
        raise UserError(f"--frame: the weights of {args.run} do not say how large its training images are drawn (extent; runs trained "
                        "before 2026-12-03 lack it); frame the files by hand")
    if args.even_ink and not args.frame:
        raise UserError("--even-ink evens the ink as part of --frame; give --frame too")
    if args.even_ink and framing is not None and framing.background is None:
        raise UserError(f"--even-ink: the weights of {args.run} do not say what page its training images are drawn on "
                        "(edge_brightness), so which of ink and page is bright is unknown")
    read = [read_image(file, channels, height, invert=args.invert, frame=framing, even=args.even_ink) for file in args.images]
    converted = [(file, was) for file, (_, was) in zip(args.images, read) if was is not None]
    if converted:
        file, was = converted[0]
        print(f"note: {len(converted)} of {len(read)} images converted to the run's {height}x{width}, {channels} channel(s) "
              f"({file} was {was})", file=sys.stderr)
    pixels = np.stack([image for image, _ in read])
    _note_unlike_framing(args.images, pixels, model.framing, args.invert, args.frame)
    x = pixels_tensor(pixels)
    classes = None
    if not is_class_conditional(model):
        if args.classes is not None or args.predictors is not None:
            print(f"note: the run has no classes; {'--classes' if args.classes is not None else '--predictors'} is not used", file=sys.stderr)
    elif args.predictors is not None:
        classes = _read_classes(args.predictors, model, x)
        print(f"note: classes read by the classifier of {args.predictors}: {', '.join(map(str, classes))}", file=sys.stderr)
    else:
        classes = _parse_classes(args.classes, len(read))
        if args.classes is None:
            print("note: the run is class-conditional and neither --classes nor --predictors was given: "
                  "the images' class is unknown to it (-1)", file=sys.stderr)
    return _Rows(x, None, classes, list(args.images), "file", [Path(f).name for f in args.images], "image files")


def _note_unlike_framing(files: list[str], pixels: np.ndarray, kept: dict[str, Any], inverted: bool, framed: bool) -> None:
    """A note for each file framed unlike every training image (an inverted, tightly cropped, off-centre,
    wrongly sized or sharp-edged digit; ``data.framing.likeness``): the model answers for images like those,
    and a file unlike them gets counterfactuals of something else (on pen-drawn digits the shipped model sets
    thickness half as precisely, and at 0.7 of MNIST's size intensity 2.7x as loosely,
    benchmarks/own_digit_size.py). The edge note names what ``--frame`` would do only for a file not yet
    ``framed``. ``kept``: the training images' framing (``CausalDiffAE.framing``)."""
    from causaldiffae.data.framing import likeness, looks_inverted

    side = pixels.shape[1]
    for file, seen in zip(files, likeness(pixels, kept)):
        if "edge_brightness" in seen.unlike:
            low, high = kept["edge_brightness"]
            if looks_inverted(seen.edge, (low, high)):
                why = "it looks inverted once --invert turned it over: leave --invert out" if inverted else "it looks inverted: --invert turns it over"
            else:
                why = ("on another background or cropped closer: --frame levels its background to theirs and redraws it with a margin, "
                       "or its counterfactuals may be poor")
            print(f"note: {file}: its edge pixels average {seen.edge:.2f} in brightness (0 black, 1 white), the run's training images' "
                  f"{low:.2f}-{high:.2f}; {why}", file=sys.stderr)
        if "blank" in seen.unlike:
            print(f"note: {file}: it is blank (black once converted to the run's {pixels.shape[3]} channel(s)): there is nothing to edit",
                  file=sys.stderr)
        if "centroid_offset" in seen.unlike:
            print(f"note: {file}: its brightness centroid lies {seen.offset * side:.1f} px from the centre, the run's training images' "
                  f"within {kept['centroid_offset'] * side:.1f} px; --frame centres it, or its counterfactuals may be poor",
                  file=sys.stderr)
        if "extent" in seen.unlike:
            sizes = kept["extent"]
            print(f"note: {file}: its bright part spans {seen.size * side:.0f} of its {side} px (at half its peak brightness), the run's "
                  f"training images' {sizes[0] * side:.0f}-{sizes[-1] * side:.0f} px; --frame scales it to match, or its counterfactuals "
                  "may be poor", file=sys.stderr)
        if "edge_width" in seen.unlike:
            widths = kept["edge_width"]
            how = "sharper than theirs" if seen.width < widths[0] else "softer than theirs"
            if not framed:
                how += "; --frame smooths them to match" if seen.width < widths[0] else "; --frame sharpens them to match"
            print(f"note: {file}: its edges rise over {seen.width:.2f} px (pixels between 10% and 90% of its peak per border pixel), the run's "
                  f"training images' {widths[0]:.2f}-{widths[-1]:.2f}: {how}, or its counterfactuals may be poor", file=sys.stderr)


def _read_classes(folder: str, model: CausalDiffAE, x: torch.Tensor) -> np.ndarray:
    """Each image's class as the predictors' digit classifier reads it, from predictors made for the run's images and classes."""
    from causaldiffae.evaluation.predictors import load_predictors

    predictors = load_predictors(folder)
    meta = predictors.meta
    if tuple(meta.image_shape) != tuple(model.image_shape) or meta.num_classes != model.num_classes:
        raise UserError(f"--predictors {folder}: made for {meta.num_classes} classes of {tuple(meta.image_shape)} images, "
                        f"the run has {model.num_classes} classes of {tuple(model.image_shape)} images")
    return predictors.predict(x)["class"].astype("int64")


def _parse_classes(text: str | None, n: int) -> np.ndarray:
    """``--classes "3"`` or ``"3,7"`` -> one class per image; None -> -1 (unknown) for all."""
    import numpy as np

    if text is None:
        return np.full(n, -1, dtype=np.int64)
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--classes {text!r}: expected whole numbers separated by commas, e.g. 3 or 3,7") from None
    if len(values) not in (1, n):
        raise UserError(f"--classes {text!r}: {len(values)} classes for {n} images; give one for all or one per image")
    return np.asarray(values * n if len(values) == 1 else values, dtype=np.int64)


def _check_outputs(out: Path, args: argparse.Namespace) -> Path:
    """Refuse a grid path (and the CSV beside it, returned) that would overwrite or cannot be written, before any work."""
    from causaldiffae.atomic import check_writable_parent
    from causaldiffae.data import check_outside

    if out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: expected a .png path (the CSV goes beside it)")
    if args.data is not None:
        check_outside(out, args.data)
    csv_path = out.with_suffix(".csv")
    for path in (out, csv_path):
        if path.is_dir():
            raise UserError(f"--out {out}: {path} is a folder")
        if path.exists() and not args.force:
            raise UserError(f"--out {out}: {path} already exists; pass --force to overwrite it")
    check_writable_parent(out)  # the grid is written only after sampling
    return csv_path


def _note_far_values(model: CausalDiffAE, columns: list[dict[str, float]], mean: np.ndarray, std: np.ndarray) -> None:
    """Say which requested values lie far outside the training labels (allowed, but the model extrapolates)."""
    far = {(name, v): model.graph.index(name) for do in columns for name, v in do.items() if name in model.graph.variables}
    for (name, v), k in far.items():
        if abs(v - mean[k]) > FAR_SD * std[k]:
            print(f"note: {name}={v:g} lies {abs(v - mean[k]) / std[k]:.0f} training standard deviations from the mean "
                  f"({mean[k]:.3g} +- {std[k]:.3g}); the model has seen nothing like it", file=sys.stderr)


def _load_matching_data(args: argparse.Namespace, split: str, model: CausalDiffAE, config: ExperimentConfig) -> CausalImageDataset:
    """The --data ``split``, refused when it lacks the run's variables or image size; a note when its graph differs."""
    from causaldiffae.data import load_dataset

    ds = load_dataset(args.data, split, resolution=config.data.resolution, progress=not args.no_progress)
    missing = [v for v in model.graph.variables if v not in ds.variables]
    if missing:  # other variables say "other data" more plainly than another image size
        raise UserError(f"{args.data}: the data has no variable {missing[0]!r} of the run's graph ({model.graph})")
    if tuple(ds.image_shape) != tuple(model.image_shape):
        raise UserError(f"{args.data}: images are {ds.image_shape}, the run was trained on {tuple(model.image_shape)}")
    data_edges = {e for e in ds.graph.edges if set(e) <= set(model.graph.variables)}
    if data_edges != set(model.graph.edges):  # allowed (a run may be trained on another graph, data.graph=...), but say so
        print(f"note: the run's graph ({model.graph}) differs from {args.data}'s ({ds.graph}); "
              "the counterfactuals follow the run's", file=sys.stderr)
    return ds


def _write_values(path: Path, rows: _Rows, variables: list[str], factual: np.ndarray, titles: list[str], results: list) -> None:
    """The CSV beside the grid: a row per image and column with its labels (empty for image files),
    the factual latent's values and the counterfactual's (and the class where the model has them)."""
    import csv

    with_class = any(cls is not None for *_, cls in results)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([rows.key, "column", "intervention"] + [f"{v}_label" for v in variables]
                        + [f"{v}_factual" for v in variables] + [f"{v}_counterfactual" for v in variables] + ["class"] * with_class)
        for i, image in enumerate(rows.ids):
            labels = [""] * len(variables) if rows.labels is None else [f"{a:.6g}" for a in rows.labels[i]]
            for col, (do, _, values, cls) in zip(titles, results):
                writer.writerow(
                    [image, col, f"do({column_title(do)})" if do else ""] + labels
                    + [f"{a:.6g}" for a in factual[i]] + [f"{a:.6g}" for a in values[i]]
                    + (["" if cls is None else int(cls[i])] if with_class else [])
                )
