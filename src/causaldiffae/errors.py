"""One base class for bad user input, so the CLI can print it as a single line and exit."""

from __future__ import annotations

from pathlib import Path


class UserError(ValueError):
    """Input that cannot be used; the message names the file, field or value at fault."""


class DivergedError(UserError):
    """A model produced non-finite values (NaN or inf): what it made cannot be measured, so the command stops."""


class TrainingError(UserError):
    """Training stopped: non-finite loss, or a run folder that cannot be started or resumed."""


def require_folder(path: str | Path, kind: str, error: type[UserError] = UserError) -> Path:
    """``path`` as a folder, or ``error`` naming it as a ``kind`` (``"run folder"``): missing, or a
    file given for the folder that holds it. Torch-free, so the CLI checks before the imports."""
    path = Path(path)
    if path.is_file():
        raise error(f"{path} is a file, not a {kind}; pass the folder that holds it ({path.parent})")
    if not path.is_dir():
        raise error(f"{kind} not found: {path}")
    return path
