"""``causaldiffae data <dataset>``: build datasets offline, or check a user folder."""

from __future__ import annotations

import argparse
import importlib

# Each module exposes ``add_data_command(subparsers)`` for its own ``data`` subcommand.
DATA_COMMANDS = (
    "causaldiffae.data.morphomnist",
    "causaldiffae.data.pendulum",
    "causaldiffae.data.circuit",
    "causaldiffae.data.folder",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="build a dataset offline or check a dataset folder")
    data_sub = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for module in DATA_COMMANDS:
        importlib.import_module(module).add_data_command(data_sub)
