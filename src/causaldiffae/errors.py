"""One base class for bad user input, so the CLI can print it as a single line and exit."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable


class UserError(ValueError):
    """Input that cannot be used; the message names the file, field or value at fault."""


class DivergedError(UserError):
    """A model produced non-finite values (NaN or inf): what it made cannot be measured, so the command stops."""


class TrainingError(UserError):
    """Training stopped: non-finite loss, or a run folder that cannot be started or resumed."""


def nearest(name: str, options: Iterable[str]) -> str | None:
    """The one of ``options`` that ``name`` looks like a typo of, if any (difflib's default cutoff)."""
    near = difflib.get_close_matches(name, list(options), n=1)
    return near[0] if near else None


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """ "did you mean 'thickness'? " where ``name`` looks like a typo of one of ``options``, else "": the
    lead of a message's list of the valid names."""
    near = nearest(name, options)
    return f"did you mean {near!r}? " if near else ""


def require_folder(path: str | Path, kind: str, error: type[UserError] = UserError) -> Path:
    """``path`` as a folder, or ``error`` naming it as a ``kind`` (``"run folder"``): missing, or a
    file given for the folder that holds it. Torch-free, so the CLI checks before the imports."""
    path = Path(path)
    if path.is_file():
        raise error(f"{path} is a file, not a {kind}; pass the folder that holds it ({path.parent})")
    if not path.is_dir():
        raise error(f"{kind} not found: {path}")
    return path
