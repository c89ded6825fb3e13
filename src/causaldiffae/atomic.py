"""Atomic writes: a file or folder appears complete under its final name, or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from causaldiffae.signals import signals_held


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


def _settle_tree(root: Path) -> None:
    """Give every file and folder the permissions a plain ``open``/``mkdir`` would (some writers,
    safetensors among them, create files 0600), then flush them all to disk."""
    file_mode, dir_mode = _default_mode(directory=False), _default_mode(directory=True)
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(file_mode)
            _fsync(path)
        Path(folder).chmod(dir_mode)
        _fsync(Path(folder))


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
        with signals_held():
            tmp_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Output:
    """What a command always writes into its --out folder, so that --force can tell an earlier output
    of the same command (which it may replace) from a folder of other work (which it must not)."""

    marker: str  # a JSON file holding a mapping
    keys: frozenset[str] = frozenset()  # fields that mapping always has
    files: tuple[str, ...] = ()  # files always written beside it
    format: str | None = None  # the mapping's "format" field, where it has one

    def made(self, folder: Path) -> bool:
        if not all((folder / name).is_file() for name in self.files):
            return False
        try:
            meta = json.loads((folder / self.marker).read_text())
        except (OSError, ValueError):
            return False
        return isinstance(meta, dict) and self.keys <= set(meta) and (self.format is None or meta.get("format") == self.format)

    def __str__(self) -> str:
        return " and ".join((self.marker, *self.files))


def check_writable_parent(path: Path, *, in_place: bool = False) -> None:
    """Refuse an output (file or folder) whose final rename would fail, before the work: a broken
    link or a file among its parents, a parent nothing can be created in, or a mount point (its
    parent's entry cannot be replaced). ``in_place``: the output is a folder written into where it
    is (the demo, a training run), so it must itself take new entries where it exists.

    Writability is tried, not read off permission bits: root passes ``os.access`` everywhere, yet
    cannot create anything on a read-only file system or in ``/proc``.
    """
    here = path.absolute()
    ancestors = ((here,) if in_place else ()) + (here.parent, *here.parents)
    broken = next((p for p in ancestors if p.is_symlink() and not p.exists()), None)
    if broken is not None:  # mkdir would fail on it after the work
        raise FileNotFoundError(f"{path}: {broken} is a symbolic link to {os.readlink(broken)}, which does not exist")
    parent = next(p for p in ancestors if p.exists())
    if not parent.is_dir():
        raise NotADirectoryError(f"{path}: {parent} is a file, so nothing can be written under it")
    try:  # named as the writers name their temporaries, so remove_leftovers takes one a kill -9 left
        os.rmdir(tempfile.mkdtemp(prefix=".write-check.", suffix=".tmp", dir=parent))
    except OSError as e:
        raise PermissionError(f"{path}: cannot write in {parent} ({(e.strerror or str(e)).lower()})") from None
    if not in_place and path.is_dir() and os.path.ismount(path):
        raise FileExistsError(f"{path} is a mount point, which cannot be replaced in one rename; choose a folder inside it")


def check_out_dir(path: str | Path, force: bool = False, made_by: Output | None = None, *, swap: bool = True) -> None:
    """Refuse an output folder that cannot be written, or (without ``force``) one that already holds something.

    ``force`` replaces the whole folder, so with ``made_by`` it replaces only an earlier output of
    the same command, never a folder of other work. Commands call it before their long work;
    ``atomic_dir`` calls it again when it starts writing. ``swap`` (the folder will be replaced by
    ``atomic_dir``) also refuses a symbolic link, a mount point and the current folder, which the
    swap would replace instead of the folder meant, or could not replace.
    """
    path = Path(path)
    if swap and path.is_symlink():
        raise FileExistsError(f"{path} is a symbolic link; pass the folder it points to ({path.resolve()})")
    here = Path.cwd().resolve()
    if swap and (path.resolve() == here or path.resolve() in here.parents):
        raise FileExistsError(f"{path} is the current folder or holds it; choose a folder inside it or elsewhere")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    check_writable_parent(path, in_place=not swap)
    if not (path.exists() and any(path.iterdir())):
        return
    if not force:
        raise FileExistsError(f"{path} already exists and is not empty; pass --force to replace it (everything in it is deleted)")
    if made_by is not None and not made_by.made(path):
        raise FileExistsError(f"{path} holds files but no {made_by} of this command's, so it is not an earlier output of it; "
                              "--force replaces only those: choose another --out or empty it")


@contextlib.contextmanager
def atomic_dir(path: str | Path, force: bool = False, made_by: Output | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` in one rename.

    An existing non-empty ``path`` is refused before any work starts, unless ``force`` (and, with
    ``made_by``, only when it holds an earlier output of the same command: see ``check_out_dir``).
    """
    path = Path(path)
    check_out_dir(path, force, made_by)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _settle_tree(tmp)  # a power cut after the rename must not leave a complete-looking folder of empty files
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            swapped = False
            try:
                with signals_held():  # Ctrl-C between the renames would leave neither folder in place
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
        with signals_held():  # a second Ctrl-C must not stop the cleanup halfway and leave the temporary folder
            shutil.rmtree(tmp, ignore_errors=True)


_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # what atomic_file and atomic_dir name their temporaries


def remove_leftovers(folder: str | Path) -> int:
    """Delete the temporary files and folders that a killed writer (kill -9, a power cut) left in
    ``folder``, and return how many: they are never a complete output. Only call it when nothing
    else is writing there."""
    entries = [p for p in Path(folder).iterdir() if _TEMPORARY.fullmatch(p.name)] if Path(folder).is_dir() else []
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return len(entries)
