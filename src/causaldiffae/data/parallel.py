"""Chunked work over processes with one progress bar, shared by the dataset generators and loaders."""

from __future__ import annotations

import multiprocessing
import signal
from typing import Callable, Iterable, TypeVar

from causaldiffae.data.base import DataError
from causaldiffae.signals import signals_held

R = TypeVar("R")


def _quiet_worker() -> None:
    """Leave Ctrl-C to the parent, which stops the pool, and let SIGTERM end a worker at once:
    forked workers would otherwise run the CLI's handlers and each print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _default_count(result: object) -> int:
    return result if isinstance(result, int) else len(result)


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
    an int), so ``total`` counts items, not jobs. ``fn`` must be a module-level function. The pool
    lives only inside this call: on an error, Ctrl-C or SIGTERM the workers are killed, not waited
    for, before the exception leaves, and further signals cannot interrupt that. A worker that dies
    (killed, out of memory) is an error, not a wait for a result that will never come.
    """
    from tqdm import tqdm

    results: list[R] = []
    with tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                results.append(fn(job))
                bar.update(count(results[-1]))
            return results
        before = set(multiprocessing.active_children())
        pool = multiprocessing.get_context("fork").Pool(workers, initializer=_quiet_worker)
        try:
            started = [p for p in multiprocessing.active_children() if p not in before]
            pending = pool.imap(fn, jobs)
            while True:
                try:
                    result = pending.next(timeout=0.5)
                except StopIteration:
                    break
                except multiprocessing.TimeoutError:
                    dead = next((p for p in started if p.exitcode is not None), None)
                    if dead is not None:  # the pool starts a new worker, but the dead one's chunk is lost
                        raise DataError(f"{desc}: a worker process died (exit code {dead.exitcode}: killed, or out of memory?); "
                                        "run again, with fewer --workers if memory is short") from None
                    continue
                results.append(result)
                bar.update(count(result))
            pool.close()
        finally:
            with signals_held():
                pool.terminate()
                pool.join()
    return results
