"""Chunked work over processes with one progress bar, shared by the dataset generators and loaders."""

from __future__ import annotations

import multiprocessing
from typing import Callable, Iterable, Iterator, TypeVar

R = TypeVar("R")


def imap_progress(
    fn: Callable[..., R], jobs: Iterable, *, workers: int, total: int, desc: str, unit: str = "img", progress: bool = True
) -> Iterator[R]:
    """Yield ``fn(job)`` in job order, from ``workers`` forked processes when more than one.

    The bar advances by each result's length (or by the result itself when it is an int), so
    ``total`` counts items, not jobs. ``fn`` must be a module-level function.
    """
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                result = fn(job)
                bar.update(result if isinstance(result, int) else len(result))
                yield result
            return
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for result in pool.imap(fn, jobs):
                bar.update(result if isinstance(result, int) else len(result))
                yield result
