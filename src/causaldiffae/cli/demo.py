"""``causaldiffae demo``: the shipped MorphoMNIST model's counterfactuals and scores, offline, in minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

OWN_DIGIT = ("your own digit (a PNG or JPEG of any size, white on black; --frame levels a photographed page and evens its ink, sizes, centres "
             "and smooths or sharpens it as the training digits are, --invert takes a dark digit on white paper)")  # the heading of the demo's last lines


def register(subparsers: argparse._SubParsersAction) -> None:
    from causaldiffae.cli.options import THREADS_HELP

    parser = subparsers.add_parser(
        "demo",
        help="counterfactual grids and scores of the shipped MorphoMNIST model (no training, no network)",
        description="Loads the shipped CausalDiffAE, builds the embedded test digits, and writes grids for "
        "do(thickness), do(intensity), both at once and a guidance sweep, plus report.md with the scores.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--data", type=Path, default=None, help="a MorphoMNIST folder to use instead of the embedded test digits")
    parser.add_argument("--n", type=int, default=100, help="test digits to score (default 100)")
    parser.add_argument("--grid", type=int, default=6, help="digits per grid (default 6)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the shipped run's diffusion.sample_steps, 20)")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (in a log, nor the line saying a long stage still runs)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from causaldiffae.cli.options import check_input_folders, set_threads
    from causaldiffae.errors import UserError

    if args.n < 2 or args.grid < 1:
        raise UserError(f"--n must be at least 2 and --grid at least 1, got --n {args.n} --grid {args.grid}")
    check_input_folders(args, "data")

    from causaldiffae.demo import DemoSettings, run_demo
    from causaldiffae.evaluation.acceptance import verdict_lines
    from causaldiffae.progress import Heartbeat

    set_threads(args.threads)
    with Heartbeat(enabled=not args.no_progress) as log:
        s = run_demo(args.out, args.data, DemoSettings(n_grid=args.grid, n_eval=args.n, steps=args.steps), log=log,
                     progress=not args.no_progress)
    print()
    for line in verdict_lines(s):
        print(f"  {line}")
    print("\nwrote:")
    for path in s["files"]:
        print(f"  {path}")
    print(f"\n{OWN_DIGIT}:\n  {own_digit_command()}")
    return 0


def own_digit_command() -> str:
    """The shipped model on a user's file: the demo's pointer from its grids to the counterfactual command."""
    import shlex

    from causaldiffae.demo import WEIGHTS

    return f"causaldiffae counterfactual --run {shlex.quote(str(WEIGHTS))} --images FILE --frame --classes DIGIT --do thickness=1.5,4 --out grid.png"
