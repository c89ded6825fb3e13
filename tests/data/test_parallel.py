import multiprocessing
import os
import signal
import time

import pytest

from causaldiffae.data.base import DataError
from causaldiffae.data.parallel import map_progress


def _handlers(job: int) -> list:
    return [job, signal.getsignal(signal.SIGINT) is signal.SIG_IGN, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL]


def _square(job: int) -> int:
    return job * job


def test_results_come_in_job_order_whatever_the_workers():
    one = map_progress(_square, range(50), workers=1, total=50, desc="t", progress=False)
    two = map_progress(_square, range(50), workers=2, total=50, desc="t", progress=False)
    assert one == two == [j * j for j in range(50)]


def test_workers_leave_ctrl_c_to_the_parent_and_die_on_sigterm():
    """Forked workers would otherwise inherit the CLI's handlers and each print a traceback."""
    results = map_progress(_handlers, range(4), workers=2, total=4, desc="t", progress=False)
    assert results == [[j, True, True] for j in range(4)]


def _interrupt_the_parent_at_five(job: int) -> int:
    if job == 5:
        os.kill(os.getppid(), signal.SIGINT)
    time.sleep(0.001)
    return job


def test_ctrl_c_kills_the_workers_at_once_before_it_leaves():
    """Not after the 10,000 queued jobs (5 s of work): the old executor waited for every one."""
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        map_progress(_interrupt_the_parent_at_five, range(10_000), workers=2, total=10_000, desc="t", progress=False)
    assert time.monotonic() - started < 2.5
    assert multiprocessing.active_children() == []


def _die_at_three(job: int) -> int:
    if job == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
    return job


def test_a_worker_that_dies_is_an_error_not_a_wait_for_ever():
    with pytest.raises(DataError, match=r"^t: a worker process died \(exit code -9: killed, or out of memory\?\)"):
        map_progress(_die_at_three, range(8), workers=2, total=8, desc="t", progress=False)
    assert multiprocessing.active_children() == []


def test_the_bar_counts_items_as_told(capsys):
    assert map_progress(_square, [3, 4], workers=2, total=2, desc="t", count=lambda result: 1) == [9, 16]  # not 9 + 16 items
    assert "2/2" in capsys.readouterr().err.split("\r")[-1]


def _fail_on_seven(job: int) -> int:
    if job == 7:
        raise ValueError("bad job 7")
    return job


def test_an_error_in_a_job_is_raised_here_and_the_workers_are_gone():
    with pytest.raises(ValueError, match="bad job 7"):
        map_progress(_fail_on_seven, range(100), workers=2, total=100, desc="t", progress=False)
    assert multiprocessing.active_children() == []
    assert map_progress(_square, [], workers=2, total=0, desc="t", progress=False) == []


class _TwoPartError(Exception):
    def __init__(self, part: str, why: str) -> None:
        super().__init__(f"{part}: {why}")


def _fail_oddly(job: int) -> int:
    raise _TwoPartError("chunk 3", "unreadable")


def test_an_error_the_parent_cannot_rebuild_still_arrives_with_its_message():
    with pytest.raises(RuntimeError, match=r"^_TwoPartError: chunk 3: unreadable$"):
        map_progress(_fail_oddly, range(4), workers=2, total=4, desc="t", progress=False)


def test_workers_end_when_their_parent_is_killed_outright():
    """The out-of-memory killer gives no chance to clean up: the workers must see their pipe close."""
    import subprocess
    import sys

    code = ("import os, time\n"
            "from causaldiffae.data.parallel import map_progress\n"
            "def slow(job):\n"
            "    os.write(1, f'{os.getpid()}\\n'.encode())  # one write: the two workers' lines do not interleave\n"
            "    time.sleep(0.05)\n"
            "    return job\n"
            "map_progress(slow, range(10_000), workers=2, total=10_000, desc='t', progress=False)\n")
    workers: set[int] = set()
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:  # waited for, its pipe closed
        while len(workers) < 2:
            workers.add(int(proc.stdout.readline()))
        proc.kill()

    def running(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [pid for pid in workers if running(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == []
