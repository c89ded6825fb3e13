"""Swapping the SIGINT / SIGTERM handlers, shared by the training loop's graceful stop, atomic
folder swaps and the CLI, so all three agree on which handlers they may replace."""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Any, Callable, Iterable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers
"""What ``signal.signal`` takes: a function of (signal number, frame), ``SIG_DFL`` or ``SIG_IGN``."""


def swap_handlers(handler: Handler, signals: Iterable[int] = STOP_SIGNALS) -> dict[int, Any]:
    """Install ``handler`` for each of ``signals`` and return the handlers it replaced.

    An ignored signal stays ignored (a background job's Ctrl-C), a handler installed outside
    Python (read as None) is left alone since it could not be put back, and off the main thread,
    where Python cannot install handlers, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in signals if signal.getsignal(s) not in (signal.SIG_IGN, None)}


def restore_handlers(previous: dict[int, Any]) -> None:
    """Put back what ``swap_handlers`` replaced."""
    for s, handler in previous.items():
        signal.signal(s, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
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
