import multiprocessing
import signal

import pytest

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


def _fail_on_seven(job: int) -> int:
    if job == 7:
        raise ValueError("bad job 7")
    return job


def test_an_error_in_a_job_kills_the_workers_before_it_leaves():
    """The pool lives only inside the call, whatever the caller keeps of the traceback."""
    with pytest.raises(ValueError, match="bad job 7"):
        map_progress(_fail_on_seven, range(10_000), workers=2, total=10_000, desc="t", progress=False)
    assert multiprocessing.active_children() == []
