"""Progress display: tqdm bars where someone watches, a few plain lines in a log.

tqdm redraws its bar with a carriage return several times a second. A terminal or a notebook
overwrites the frames; a log file (a batch job's, a pipe's) keeps every one, so an hour of
training leaves megabytes on one line. Off a terminal, bars that vanish when done (sampler steps,
batches) are not drawn, lasting bars are redrawn at most every ``LOG_INTERVAL`` seconds, and
training prints a line with its losses and the time left instead of a bar; a command whose long
steps have no lasting bar (``evaluate``, ``counterfactual``, ``demo``) says once an interval that it still runs.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

LOG_INTERVAL = 60.0  # seconds between a lasting bar's frames, or training's lines, in a log


def _print_line(line: str) -> None:
    """Where plain progress lines go by default: stdout, flushed, so a log shows them as they come."""
    print(line, flush=True)


def on_terminal() -> bool:
    """Whether progress is watched live: stderr (tqdm's stream) is a terminal, or a notebook kernel runs us."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) or "ipykernel" in sys.modules


def bar(items: Iterable | None = None, *, desc: str, total: int | None = None, leave: bool = True, enabled: bool = True,
        **kwargs: Any) -> tqdm:
    """A tqdm bar; off a terminal a transient one (``leave=False``) is off and a lasting one redraws
    every ``LOG_INTERVAL`` seconds. Also a bar maker for the evaluation's ``progress`` arguments."""
    live = on_terminal()
    off = not enabled or (not live and not leave)
    return tqdm(items, desc=desc, total=total, leave=leave, disable=off, mininterval=0.1 if live else LOG_INTERVAL, **kwargs)


def format_duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2 h 05 min``: the precision a time left is known to."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60:02d} min"


class LogLines:
    """Training progress as plain lines, for a log: ``tqdm``'s ``update``/``set_postfix``/``close``.

    A line is printed when new figures arrive (``set_postfix``, at the run's logged steps, every
    ``log_every``) and ``interval`` seconds have passed since the last, and at the last step, so a
    line's figures are always the latest logged ones. Where the next figures are more than an interval
    away (a paper-sized model on a CPU, minutes a step), a step's end prints the step, speed and time
    left at once, so the log does not fall silent for hours. Closing early (a stop, a time limit)
    prints where it stopped. Entering says where it starts, as the first figures may be minutes away;
    until the first step ends a ``Heartbeat`` (``first_step``) says how long it has run.
    """

    def __init__(self, total: int, initial: int = 0, *, log_every: int = 1, desc: str = "train", interval: float = LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, write: Callable[[str], None] | None = None,
                 first_step: bool = True) -> None:
        self.total, self.n, self.log_every, self.desc, self.interval, self.clock = total, initial, log_every, desc, interval, clock
        self.write = write or _print_line
        self.heartbeat = Heartbeat(enabled=first_step, interval=interval, clock=clock, write=self.write)
        self.first, self.started = initial, clock()
        self.stepped = self.last_line = self.started  # when the latest step ended, and when the last line was printed
        self.last_figures: float | None = None
        self.last_step = initial
        self.postfix: dict[str, object] = {}

    def update(self, n: int = 1) -> None:
        self.heartbeat.close()
        now = self.clock()
        step_time, self.stepped = (now - self.stepped) / n, now
        self.n += n
        to_figures = -self.n % self.log_every  # steps until the next logged step; 0: this one, whose set_postfix follows
        if (self.n < self.total and to_figures and now - self.last_line >= self.interval
                and to_figures * step_time > self.interval):
            self.say(now)

    def set_postfix(self, **values: object) -> None:
        self.postfix = values
        now = self.clock()
        if self.n >= self.total or self.last_figures is None or now - self.last_figures >= self.interval:
            self.say(now)
            self.last_figures = now

    def say(self, now: float) -> None:
        self.write(self.line(now))
        self.last_line, self.last_step = now, self.n

    def line(self, now: float) -> str:
        done = self.n - self.first
        parts = [f"{self.desc}: step {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%)"]
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        if done > 0:
            per_step = (now - self.started) / done  # averaged since the display opened
            parts.append(f"{per_step:.2f} s/step")
            if self.n < self.total:
                parts.append(f"{format_duration(per_step * (self.total - self.n))} left")
        return ", ".join(parts)

    def close(self) -> None:
        """Stop the first-step heartbeat and, if figures came after the last line, say where it stopped."""
        self.heartbeat.close()
        if self.n > self.last_step and self.postfix:
            self.say(self.clock())

    def __enter__(self) -> LogLines:
        self.heartbeat(f"{self.desc}: step {self.n}/{self.total}, starting; a line about every {format_duration(self.interval)} follows")
        self.heartbeat.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def training_progress(total: int, initial: int, enabled: bool, log_every: int = 1) -> tqdm | LogLines:
    """The training loop's display: a bar on a terminal, plain lines in a log (figures every ``log_every`` steps), or nothing."""
    if enabled and not on_terminal():
        return LogLines(total, initial, log_every=log_every)
    return bar(total=total, initial=initial, desc="train", enabled=enabled, dynamic_ncols=True)


class Heartbeat:
    """Log lines that say, off a terminal, when a step has run ``interval`` seconds without one.

    ``evaluate`` announces each section with a line and then runs minutes of sampling whose bars
    vanish when done, so a log would fall silent. Used as ``log`` (a callable taking a line), this
    passes every line on and, while entered, adds ``... 2 min since the line above`` after each
    ``interval`` seconds of silence, so a batch job's log shows the run is alive and how long the
    step has taken. On a terminal, or when ``enabled`` is false, it only passes lines on.
    """

    def __init__(self, *, enabled: bool = True, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic,
                 write: Callable[[str], None] | None = None) -> None:
        self.enabled, self.interval, self.clock = enabled and not on_terminal(), interval, clock
        self.write = write or _print_line
        self.since = self.said = clock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __call__(self, line: str) -> None:
        self.write(line)
        self.since = self.said = self.clock()

    def tick(self) -> None:
        """Say how long the silence has lasted, if a whole interval has passed since anything was said."""
        now = self.clock()
        if now - self.said >= self.interval:
            self.write(f"  ... {format_duration(now - self.since)} since the line above")
            self.said = now

    def _beat(self) -> None:
        """Wake when the silence is due to reach an interval (a line said meanwhile puts that off), not on a poll."""
        while not self.stop.wait(max(self.said + self.interval - self.clock(), 0.01)):
            self.tick()

    def start(self) -> None:
        """Beat on a thread of its own, where enabled."""
        if self.enabled:
            self.thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
            self.thread.start()

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def close(self) -> None:
        """Stop beating (again: a no-op)."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def __exit__(self, *exc: object) -> None:
        self.close()
