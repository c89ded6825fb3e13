import os
import signal
import stat
from pathlib import Path

import pytest

from causaldiffae.atomic import Output, atomic_dir, atomic_file, check_out_dir
from causaldiffae.signals import signals_held


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask(), "the mode a plain open() gives, not mkstemp's 0600"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_refuses_existing_and_keeps_it(tmp_path):
    target = tmp_path / "ds"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(FileExistsError, match="--force"):
        with atomic_dir(target):
            pass
    with pytest.raises(RuntimeError):
        with atomic_dir(target, force=True) as tmp:
            (tmp / "partial").write_text("y")
            raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["keep"]
    with atomic_dir(target, force=True) as tmp:
        (tmp / "new").write_text("z")
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


PREDICTORS = Output("predictors.json", frozenset({"dataset", "metrics"}), ("predictors.safetensors",), format=None)


def test_force_replaces_only_an_earlier_output_of_the_same_command(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "model.safetensors").write_text("a run's weights")
    with pytest.raises(FileExistsError, match=r"holds files but no predictors.json and predictors.safetensors of this command's, "
                       r"so it is not an earlier output"):
        with atomic_dir(target, force=True, made_by=PREDICTORS):
            pytest.fail("work started")
    assert [p.name for p in target.iterdir()] == ["model.safetensors"]
    (target / "predictors.json").write_text('{"dataset": "x", "metrics": {}}')
    (target / "predictors.safetensors").write_text("weights")
    with atomic_dir(target, force=True, made_by=PREDICTORS) as tmp:
        (tmp / "predictors.json").write_text("new")
    assert [p.name for p in target.iterdir()] == ["predictors.json"]
    with atomic_dir(tmp_path / "fresh", made_by=PREDICTORS) as tmp:  # a new or empty folder needs nothing
        (tmp / "a").write_text("x")


@pytest.mark.parametrize("files", [
    {"predictors.json": '{"dataset": "x", "metrics": {}}'},  # the weights are missing
    {"predictors.json": '{"dataset": "x"}', "predictors.safetensors": ""},  # a field is missing
    {"predictors.json": '["dataset", "metrics"]', "predictors.safetensors": ""},  # not a mapping
    {"predictors.json": '{"dataset": ', "predictors.safetensors": ""},  # not JSON
])
def test_force_refuses_a_folder_that_only_names_the_marker_file(tmp_path, files):
    target = tmp_path / "other"
    target.mkdir()
    for name, text in files.items():
        (target / name).write_text(text)
    with pytest.raises(FileExistsError, match="is not an earlier output"):
        check_out_dir(target, force=True, made_by=PREDICTORS)
    assert sorted(p.name for p in target.iterdir()) == sorted(files)


def test_force_checks_the_format_field(tmp_path):
    pendulum = Output("data.json", format="pendulum")
    target = tmp_path / "ds"
    target.mkdir()
    (target / "data.json").write_text('{"format": "circuit"}')
    with pytest.raises(FileExistsError, match="is not an earlier output"):
        check_out_dir(target, force=True, made_by=pendulum)
    (target / "data.json").write_text('{"format": "pendulum"}')
    check_out_dir(target, force=True, made_by=pendulum)


def test_an_unwritable_parent_or_a_mount_point_is_refused_before_the_work(tmp_path, monkeypatch):
    """The swap's renames would fail after all the work. Writing is tried, as root passes every
    permission bit; a folder refusing it is stubbed, since root could write a chmod-ed one."""
    import os
    import tempfile

    real_mkdtemp = tempfile.mkdtemp

    def refuse_in(folder):
        def mkdtemp(*args, **kwargs):
            if Path(kwargs["dir"]) == folder:
                raise PermissionError(13, "Permission denied")
            return real_mkdtemp(*args, **kwargs)
        return mkdtemp

    monkeypatch.setattr(tempfile, "mkdtemp", refuse_in(tmp_path))
    with pytest.raises(PermissionError, match=f"new/out: cannot write in {tmp_path} \\(permission denied\\)"):
        with atomic_dir(tmp_path / "new" / "out"):
            pytest.fail("work started")
    written_in_place = tmp_path / "demo"
    written_in_place.mkdir()
    monkeypatch.setattr(tempfile, "mkdtemp", refuse_in(written_in_place))
    check_out_dir(written_in_place)  # replaced by a rename: only its parent must take new entries
    with pytest.raises(PermissionError, match=f"cannot write in {written_in_place} "):
        check_out_dir(written_in_place, swap=False)  # written into where it is: the folder itself must
    monkeypatch.setattr(tempfile, "mkdtemp", real_mkdtemp)
    written_in_place.rmdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, so nothing can be written under it"):
        check_out_dir(tmp_path / "file" / "out")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=f"gone is a symbolic link to {tmp_path / 'nowhere'}, which does not exist"):
        check_out_dir(tmp_path / "gone" / "sub" / "out")
    (tmp_path / "gone").unlink()
    mount = tmp_path / "mnt"
    mount.mkdir()
    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path) == mount)
    with pytest.raises(FileExistsError, match="mnt is a mount point, which cannot be replaced in one rename"):
        with atomic_dir(mount):
            pytest.fail("work started")
    check_out_dir(mount, swap=False)  # written in place (the demo): a mount point is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "mnt"]


def test_atomic_dir_refuses_a_file_even_with_force(tmp_path):
    target = tmp_path / "out"
    target.write_text("a user's file")
    for force in (False, True):
        with pytest.raises(FileExistsError, match="is not a folder"):
            with atomic_dir(target, force=force):
                pass
    assert target.read_text() == "a user's file"


def test_atomic_dir_refuses_a_symlink_and_the_current_folder(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (real / "made.json").write_text("{}")
    link = tmp_path / "alias"
    link.symlink_to(real)
    with pytest.raises(FileExistsError, match=f"alias is a symbolic link; pass the folder it points to \\({real}\\)"):
        with atomic_dir(link, force=True, made_by=Output("made.json")):
            pass
    assert link.is_symlink() and (real / "made.json").is_file()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for out in (".", "..", str(work)):
        with pytest.raises(FileExistsError, match="is the current folder or holds it"):
            with atomic_dir(out):
                pass
    assert work.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["alias", "real", "work"]


def test_atomic_file_gives_usual_permissions_to_files_their_writer_recreated(tmp_path):
    """safetensors (and other writers) may replace the temporary file with their own 0600 one."""
    import torch
    from safetensors.torch import save_file

    target = tmp_path / "w.safetensors"
    with atomic_file(target) as tmp:
        save_file({"a": torch.zeros(2)}, str(tmp))
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def test_atomic_dir_gives_usual_permissions_to_everything_in_it(tmp_path):
    import torch
    from safetensors.torch import save_file

    target = tmp_path / "predictors"
    with atomic_dir(target) as tmp:
        save_file({"a": torch.zeros(2)}, str(tmp / "w.safetensors"))  # created 0600 by safetensors
        (tmp / "sub").mkdir(mode=0o700)
        (tmp / "sub" / "meta.json").write_text("{}")
    modes = {p.relative_to(target).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [target, *target.rglob("*")]}
    file_mode, dir_mode = 0o666 & ~_umask(), 0o777 & ~_umask()
    assert modes == {".": dir_mode, "w.safetensors": file_mode, "sub": dir_mode, "sub/meta.json": file_mode}


def test_written_data_reaches_the_disk_before_the_rename(tmp_path, monkeypatch):
    """A power cut after a rename must not leave a complete-looking checkpoint of empty files."""
    import os

    import causaldiffae.atomic as atomic

    events = []
    sync, replace = atomic._fsync, os.replace
    monkeypatch.setattr(atomic, "_fsync", lambda p: events.append(("sync", Path(p).name)) or sync(p))
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: events.append(("rename", Path(b).name)) or replace(a, b))
    with atomic_dir(tmp_path / "ckpt") as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "w.bin").write_bytes(b"x" * 10)
        (tmp / "state.json").write_text("{}")
    rename = events.index(("rename", "ckpt"))
    assert {("sync", "w.bin"), ("sync", "state.json"), ("sync", "sub")} <= set(events[:rename])
    assert events[rename + 1:] == [("sync", tmp_path.name)]  # and the rename itself
    events.clear()
    with atomic_file(tmp_path / "f.txt") as tmp:
        tmp.write_text("y")
    assert [e[0] for e in events] == ["sync", "rename", "sync"] and events[1] == ("rename", "f.txt")


def test_a_folder_that_cannot_be_opened_for_syncing_does_not_fail_the_write(tmp_path, monkeypatch):
    """Windows cannot open a folder at all; the write must still land."""
    import os

    real_open = os.open

    def no_folders(path, flags, *args):
        if Path(path).is_dir():
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_folders)
    with atomic_file(tmp_path / "f.txt") as tmp:
        tmp.write_text("y")
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "g.txt").write_text("z")
    assert (tmp_path / "f.txt").read_text() == "y" and (tmp_path / "d" / "g.txt").read_text() == "z"


def test_signals_wait_until_a_folder_swap_is_done(tmp_path):
    """Ctrl-C between atomic_dir's two renames would leave neither the old nor the new folder. The
    kernel may hand the signal to any thread (tqdm and torch start some); Python runs it on this one."""
    import threading

    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append("handled"))
    idle = threading.Event()
    other = threading.Thread(target=idle.wait)
    other.start()
    try:
        (tmp_path / "a").write_text("x")
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            os.replace(tmp_path / "a", tmp_path / "b")
            seen.append("block done")
        assert seen == ["block done", "handled"]
    finally:
        idle.set()
        other.join()
        signal.signal(signal.SIGTERM, previous)


def test_a_ctrl_c_during_the_swap_leaves_the_new_folder_and_no_old_one(tmp_path, monkeypatch):
    import causaldiffae.atomic as atomic

    target = tmp_path / "out"
    target.mkdir()
    (target / "made").write_text("{}")  # an earlier output: a JSON mapping
    replace = os.replace

    def interrupted_replace(a, b):
        if not interrupted:
            interrupted.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        replace(a, b)

    interrupted: list[bool] = []
    monkeypatch.setattr(atomic.os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target, force=True, made_by=Output("made")) as tmp:
            (tmp / "made").write_text("new")
    assert (target / "made").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no .out.old-PID, no temporary folder


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_refuses_new_entries_even_to_root_is_refused(tmp_path):
    """/proc takes no new entries whatever the user: os.access said yes there, and the error came after the work."""
    for swap in (True, False):
        with pytest.raises(PermissionError, match="/proc/out: cannot write in /proc \\("):
            check_out_dir(Path("/proc/out"), swap=swap)
    check_out_dir(tmp_path / "new" / "out")
    assert list(tmp_path.iterdir()) == []  # the trial write leaves nothing behind
