"""The ``causaldiffae`` command: one entry point, a subcommand per job.

Each ``causaldiffae.cli.<name>`` module exposes ``register(subparsers)``; heavy libraries are
imported inside the handlers, after the checks of their input folders, so ``causaldiffae --help``
and a mistyped path answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings
from types import FrameType
from typing import Any, Callable, TextIO

from causaldiffae.errors import UserError
from causaldiffae.signals import restore_handlers, swap_handlers

COMMANDS = ("data", "train", "predictors", "counterfactual", "evaluate", "demo")


class Parser(argparse.ArgumentParser):
    """No abbreviated options: `evaluate --seed 3` would silently read as --seeds 3. Subcommand
    parsers are made of the parent's class, so this holds at every level."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def set_defaults(self, **kwargs: Any) -> None:
        """A parser that sets a command's handler is that command's: it reports the command's errors."""
        if "handler" in kwargs:
            kwargs["command_parser"] = self
        super().set_defaults(**kwargs)


DESCRIPTION = (
    "Causal counterfactual image generation with diffusion autoencoders: train on images, labels and a causal graph, "
    "then ask what an image would look like under do(variable = value). New here: 'causaldiffae demo' shows the shipped "
    "MorphoMNIST model's counterfactuals, offline and without training."
)


def build_parser() -> argparse.ArgumentParser:
    from causaldiffae import __version__

    parser = Parser(prog="causaldiffae", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"causaldiffae {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"causaldiffae.cli.{name}").register(subparsers)
    return parser


def _one_line_warning(command: str) -> Callable[..., None]:
    """Warnings as the errors are printed: one line naming the command, without Python's source echo."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        print(f"causaldiffae {command}: warning: {message}", file=sys.stderr)

    return show


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides may sit between options, not only in one run
        if not hasattr(args, "overrides") or any(e.startswith("-") for e in extra):
            args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parsed: list[argparse.Namespace] = []

    def run() -> int | None:
        parsed.append(_parse(argv))  # inside the guard: a Ctrl-C while the parser is built is one line too
        args = parsed[0]
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return args.handler(args)

    return guarded(run, lambda: f"causaldiffae {parsed[0].command}" if parsed else "causaldiffae")


def _script_name() -> str:
    return os.path.basename(sys.argv[0])


def guarded(body: Callable[[], int | None], name: Callable[[], str] = _script_name) -> int:
    """Run ``body`` as every command runs: bad input or a file that cannot be read or written is one
    line naming ``name()`` (by default the running script's file name; status 2), and Ctrl-C or
    SIGTERM unwind, removing temporary outputs, and say so (130 / 143). The benchmark scripts run
    their ``main`` through it too."""
    previous = swap_handlers(_terminate, [signal.SIGTERM])  # SIGTERM unwinds like Ctrl-C: temporary outputs are removed
    try:
        return int(body() or 0)
    except (UserError, OSError) as err:  # OSError: a file or folder the user named cannot be read or written
        print(f"{name()}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _stopped(previous, "interrupted", 128 + signal.SIGINT)
    except _Terminated:
        return _stopped(previous, "terminated", 128 + signal.SIGTERM)
    finally:
        restore_handlers(previous)


def _stopped(previous: dict, word: str, status: int) -> int:
    """Say why the command stopped. A further signal from here on ends the process by that signal
    (a shell reads the same status) instead of printing a traceback from the way out."""
    previous.update({s: h for s, h in swap_handlers(signal.SIG_DFL).items() if s not in previous})
    print(word, file=sys.stderr)
    return status


class _Terminated(BaseException):  # like KeyboardInterrupt: no `except Exception` swallows it
    """SIGTERM as an exception, so that temporary outputs are removed on the way out, as on Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


if __name__ == "__main__":
    sys.exit(main())
