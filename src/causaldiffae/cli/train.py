"""``causaldiffae train``: train a model from a preset or YAML config on a dataset folder."""

from __future__ import annotations

import argparse
import math

from causaldiffae.cli.options import TRAINING_THREADS_HELP
from causaldiffae.config import MIXED_PRECISION


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a CausalDiffAE (or a baseline variant) on a dataset folder",
        description="Train from a preset or YAML config; key=value arguments override config fields "
        "(e.g. train.lr=3e-4 model.latent_block=32). Works unchanged under torchrun / accelerate launch.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="YAML config file")
    source.add_argument("--preset", help="preset name, e.g. morphomnist-cpu (see configs/)")
    parser.add_argument("--data", required=True, help="dataset folder (format detected)")
    parser.add_argument("--out", required=True, help="run folder to create (or continue with --resume)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (one with none yet starts again and may change its config)")
    parser.add_argument("--mixed-precision", choices=MIXED_PRECISION, default=None,
                        help="autocast precision (default: no; with --resume, the run's own)")
    parser.add_argument("--threads", type=int, default=None, help=TRAINING_THREADS_HELP)
    parser.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                        help="stop after this many minutes of training, with a checkpoint and an exported model "
                        "(continue later with --resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(handler=run)


def note_preset_for_other_data(preset: str, data: str) -> None:
    """Say so when a dataset's preset (``pendulum-cpu``) is used on another built-in dataset: allowed, rarely
    meant. A user folder is left alone: every preset is a starting point for one (README, Your own data)."""
    import sys

    from causaldiffae.data import FORMATS, detect_format

    family, found = preset.split("-")[0], detect_format(data)
    if family in FORMATS and found not in (family, "folder"):
        print(f"note: preset {preset} is sized for {family} data; {data} is a {found} dataset", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from causaldiffae.cli.options import check_input_folders, set_threads
    from causaldiffae.config import ConfigError, load_config

    spec = args.config or args.preset
    if spec is None and not args.resume:
        raise ConfigError("give --config FILE or --preset NAME (or --resume an existing run)")
    config = load_config(spec, args.overrides) if spec is not None else None
    if args.time_limit is not None and not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise ConfigError(f"--time-limit {args.time_limit:g}: must be a positive number of minutes")
    check_input_folders(args, "data")
    if args.preset is not None:
        note_preset_for_other_data(args.preset, args.data)

    from causaldiffae.training import resolve_resume, train

    out = Path(args.out)
    if args.threads is not None:
        set_threads(args.threads)
    if args.resume:
        config = resolve_resume(config, out, args.overrides)
    time_limit = None if args.time_limit is None else args.time_limit * 60
    assert config is not None  # without --resume, --config or --preset gave one
    try:
        train(config, args.data, out, resume=args.resume, mixed_precision=args.mixed_precision,
              progress=not args.no_progress, time_limit=time_limit)
    finally:
        end_process_group()
    return 0


def end_process_group() -> None:
    """End a torchrun launch's process group before the interpreter does: left to its shutdown,
    gloo's threads can abort the process as they wind down."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
