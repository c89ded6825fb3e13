"""Atomic writes: a file or folder appears complete under its final name, or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Iterator

from causaldiffae.signals import restore_handlers, swap_handlers


def _default_mode(directory: bool) -> int:
    """Permissions a plain ``open``/``mkdir`` would give (mkstemp/mkdtemp use 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's entries to disk, so a rename after it never lands before the data."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder, nor anyone an unreadable one; the rename stays atomic
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Defer SIGINT and SIGTERM to the end of the block: their Python handlers (which run on the main
    thread, whichever thread the kernel picks) only record them, and they are raised again after."""
    caught: list[int] = []
    previous = swap_handlers(lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        restore_handlers(previous)
        for s in dict.fromkeys(caught):
            signal.raise_signal(s)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(_default_mode(directory=False))  # after writing: some writers (safetensors) recreate the file 0600
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_out_dir(path: str | Path, force: bool = False, made_by: str | None = None, *, swap: bool = True) -> None:
    """Refuse an output folder that is a file, or (without ``force``) one that already holds something.

    ``force`` replaces the whole folder, so with ``made_by`` (a file the command always writes) it
    replaces only an earlier output of the same command, never a folder of other work. Commands
    call it before their long work; ``atomic_dir`` calls it again when it starts writing. ``swap``
    (the folder will be replaced by ``atomic_dir``) also refuses a symbolic link and the current
    folder, which the swap would replace instead of the folder meant.
    """
    path = Path(path)
    if swap and path.is_symlink():
        raise FileExistsError(f"{path} is a symbolic link; pass the folder it points to ({path.resolve()})")
    here = Path.cwd().resolve()
    if swap and (path.resolve() == here or path.resolve() in here.parents):
        raise FileExistsError(f"{path} is the current folder or holds it; choose a folder inside it or elsewhere")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    if not (path.exists() and any(path.iterdir())):
        return
    if not force:
        raise FileExistsError(f"{path} already exists and is not empty; pass --force to replace it (everything in it is deleted)")
    if made_by is not None and not (path / made_by).is_file():
        raise FileExistsError(f"{path} holds files but no {made_by}, so it is not an earlier output of this command; "
                              "--force replaces only those: choose another --out or empty it")


@contextlib.contextmanager
def atomic_dir(path: str | Path, force: bool = False, made_by: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` in one rename.

    An existing non-empty ``path`` is refused before any work starts, unless ``force`` (and, with
    ``made_by``, only when it holds that file: see ``check_out_dir``).
    """
    path = Path(path)
    check_out_dir(path, force, made_by)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(_default_mode(directory=True))
    try:
        yield tmp
        _fsync_tree(tmp)  # a power cut after the rename must not leave a complete-looking folder of empty files
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            swapped = False
            try:
                with _signals_held():  # Ctrl-C between the renames would leave neither folder in place
                    os.replace(path, old)
                    os.replace(tmp, path)
                    swapped = True
            finally:  # also when a held signal is raised again: the old folder goes first
                if swapped:
                    shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
