"""Chunked work over processes with one progress bar, shared by the dataset generators and loaders."""

from __future__ import annotations

import multiprocessing
import signal
from typing import Callable, Iterable, TypeVar

from causaldiffae.signals import signals_held

R = TypeVar("R")


def _quiet_worker() -> None:
    """Leave Ctrl-C to the parent, which stops the pool, and let SIGTERM end a worker at once:
    forked workers would otherwise run the CLI's handlers and each print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def map_progress(
    fn: Callable[..., R], jobs: Iterable, *, workers: int, total: int, desc: str, unit: str = "img", progress: bool = True
) -> list[R]:
    """``[fn(job) for job in jobs]``, from ``workers`` forked processes when more than one.

    The bar advances by each result's length (or by the result itself when it is an int), so
    ``total`` counts items, not jobs. ``fn`` must be a module-level function. The pool lives only
    inside this call: on an error, Ctrl-C or SIGTERM the workers are killed, not waited for, before
    the exception leaves, and further signals cannot interrupt that.
    """
    from tqdm import tqdm

    results: list[R] = []
    with tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                results.append(fn(job))
                bar.update(results[-1] if isinstance(results[-1], int) else len(results[-1]))
            return results
        pool = multiprocessing.get_context("fork").Pool(workers, initializer=_quiet_worker)
        try:
            for result in pool.imap(fn, jobs):
                results.append(result)
                bar.update(result if isinstance(result, int) else len(result))
            pool.close()
        finally:
            with signals_held():
                pool.terminate()
                pool.join()
    return results
