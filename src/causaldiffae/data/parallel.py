"""Chunked work over processes with one progress bar, shared by the dataset generators and loaders.

Each worker has a pipe of its own and nothing shared with the others, so the workers can be killed
at any moment: ``multiprocessing.Pool.terminate`` waits for ever on a queue lock that a worker
killed by a signal (or the out-of-memory killer) still held, and ``ProcessPoolExecutor`` cannot
stop a running job before Python 3.14.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Callable, Iterable, Iterator, Sized, TypeVar

from causaldiffae.data.base import DataError
from causaldiffae.signals import STOP_SIGNALS, signals_held

R = TypeVar("R")


def _serve(fn: Callable, conn: Connection, parent_ends: list[Connection]) -> None:
    """A worker: run jobs from the pipe until it closes. Ctrl-C is left to the parent, which kills
    the workers, and SIGTERM ends one at once (both were blocked across the fork, so the CLI's
    handlers never run here). The parent's ends of the pipes are closed here, so that a parent
    killed outright (the out-of-memory killer) leaves its workers an end of file, not a wait."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    for end in parent_ends:
        end.close()
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        try:
            reply = (True, fn(job))
        except Exception as err:  # re-raised in the parent, like a job run there
            reply = (False, err if _round_trips(err) else RuntimeError(f"{type(err).__name__}: {err}"))
        try:
            conn.send(reply)
        except OSError:  # the parent is gone
            return
        except Exception as err:  # a result that does not pickle
            conn.send((False, RuntimeError(f"{type(err).__name__}: {err}")))


def _round_trips(err: Exception) -> bool:
    """Whether the parent can rebuild this exception (one whose __init__ takes other arguments cannot)."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:
        return False
    return True


def _default_count(result: object) -> int:
    if isinstance(result, int):
        return result
    if isinstance(result, Sized):
        return len(result)
    raise TypeError(f"map_progress cannot count a {type(result).__name__} result; pass count=")


def map_progress(
    fn: Callable[..., R],
    jobs: Iterable,
    *,
    workers: int,
    total: int,
    desc: str,
    unit: str = "img",
    progress: bool = True,
    count: Callable[[R], int] = _default_count,
) -> list[R]:
    """``[fn(job) for job in jobs]``, from ``workers`` forked processes when more than one.

    The bar advances by ``count(result)`` (by default its length, or the result itself when it is
    an int), so ``total`` counts items, not jobs. ``fn`` must be a module-level function. The
    workers live only inside this call: on an error, Ctrl-C or SIGTERM they are killed, not waited
    for, before the exception leaves, and further signals cannot interrupt that. A worker that dies
    (killed, out of memory) is an error, not a wait for a result that will never come.
    """
    from causaldiffae.progress import bar as progress_bar

    with progress_bar(total=total, desc=desc, unit=unit, enabled=progress) as bar:
        if workers <= 1:
            results = []
            for job in jobs:
                results.append(fn(job))
                bar.update(count(results[-1]))
            return results
        return _map_forked(fn, iter(jobs), workers, lambda result: bar.update(count(result)), desc)


def _map_forked(fn: Callable[..., R], jobs: Iterator[object], workers: int, done: Callable[[R], None], desc: str) -> list[R]:
    ctx = multiprocessing.get_context("fork")
    procs: list[BaseProcess] = []
    conns: list[Connection] = []
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # a signal now is delivered once the workers exist
        try:
            for _ in range(workers):
                ours, theirs = ctx.Pipe()
                proc = ctx.Process(target=_serve, args=(fn, theirs, [*conns, ours]), daemon=True)
                proc.start()
                theirs.close()
                procs.append(proc)
                conns.append(ours)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        results: dict[int, R] = {}
        busy: dict[int, int] = {}  # worker -> index of its job
        queued = enumerate(jobs)
        for w in range(workers):
            first = _give(conns[w], queued)
            if first is not None:
                busy[w] = first
        while busy:
            ready = wait([conns[w] for w in busy] + [procs[w].sentinel for w in busy])
            for w in [w for w in busy if conns[w] in ready or procs[w].sentinel in ready]:
                try:
                    ok, value = conns[w].recv()  # a result sent before a death is still read
                except (EOFError, OSError):  # OSError: it died halfway through a large result
                    raise _died(procs[w], desc) from None
                if not ok:
                    raise value
                results[busy[w]] = value
                done(value)
                try:
                    following = _give(conns[w], queued)
                except BrokenPipeError:  # it died right after its reply
                    raise _died(procs[w], desc) from None
                if following is None:
                    del busy[w]
                else:
                    busy[w] = following
        return [results[i] for i in range(len(results))]
    finally:
        with signals_held():
            for worker in procs:
                worker.kill()
            for worker in procs:
                worker.join()
            for conn in conns:
                conn.close()


def _died(proc: BaseProcess, desc: str) -> DataError:
    proc.join()
    return DataError(f"{desc}: a worker process died (exit code {proc.exitcode}: killed, or out of memory?); "
                     "run again, with fewer --workers if memory is short")


def _give(conn: Connection, queued: Iterator[tuple[int, object]]) -> int | None:
    """Send the next job to a worker; its index, or None when there are no more."""
    for index, job in queued:
        conn.send(job)
        return index
    return None
