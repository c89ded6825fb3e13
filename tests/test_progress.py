"""Progress display: bars where someone watches, a few plain lines in a log file."""

import io
import sys
import time

import pytest

from causaldiffae.progress import Heartbeat, LogLines, bar, format_duration, on_terminal, training_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def stderr(monkeypatch):
    """Puts a stream in place of stderr; called in the test itself, as pytest's capture replaces
    stderr again between a fixture's set-up and the test."""
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)

    def put(stream: io.StringIO) -> io.StringIO:
        monkeypatch.setattr(sys, "stderr", stream)
        return stream

    return put


def test_a_terminal_or_a_notebook_kernel_is_watched_live_and_a_log_file_is_not(monkeypatch, stderr):
    stderr(io.StringIO())
    assert not on_terminal()
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # any module object: a kernel is loaded
    assert on_terminal()
    monkeypatch.delitem(sys.modules, "ipykernel")
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert on_terminal()
    monkeypatch.setattr(sys, "stderr", None)  # pythonw, a daemon: no stream at all
    assert not on_terminal()


def test_on_a_terminal_transient_bars_draw_and_vanish(stderr):
    terminal = stderr(Terminal())
    assert list(bar(range(3), desc="ddim", leave=False)) == [0, 1, 2]
    assert "ddim:" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r")  # cleared, not left on the screen


def test_in_a_log_transient_bars_write_nothing_and_lasting_ones_few_frames(stderr):
    log_file = stderr(io.StringIO())
    assert list(bar(range(1000), desc="ddpm", leave=False)) == list(range(1000))
    assert log_file.getvalue() == ""
    assert list(bar(range(1000), desc="digits")) == list(range(1000))
    frames = [f for f in log_file.getvalue().split("\r") if f.strip()]
    assert len(frames) <= 3 and "1000/1000" in frames[-1], frames  # first, (maybe one after a minute,) last
    assert bar(range(2), desc="x", enabled=False).disable


def test_durations_are_rounded_to_what_a_time_left_is_known_to():
    assert [format_duration(s) for s in (0.4, 42, 89.6, 90, 3599, 5400, 7500)] == ["0 s", "42 s", "90 s", "2 min", "60 min", "1 h 30 min", "2 h 05 min"]


def test_log_lines_say_step_figures_speed_and_time_left_at_most_once_an_interval_and_always_at_the_end():
    now = [100.0]
    lines: list[str] = []
    with LogLines(10, initial=2, interval=60, clock=lambda: now[0], write=lines.append, first_step=False) as log:
        for step in range(3, 11):
            now[0] += 20.0  # 20 s a step
            log.update(1)
            if step % 2 == 0:  # the run's logged steps
                log.set_postfix(loss="0.5000")
    assert lines == [
        "train: step 2/10, starting; a line about every 60 s follows",  # on entering
        "train: step 4/10 (40%), loss 0.5000, 20.00 s/step, 2 min left",  # the first figures
        "train: step 8/10 (80%), loss 0.5000, 20.00 s/step, 40 s left",  # 80 s after the first line
        "train: step 10/10 (100%), loss 0.5000, 20.00 s/step",  # the end, although only 40 s later
    ]
    lines.clear()
    with LogLines(10, interval=60, clock=lambda: now[0], write=lines.append, first_step=False) as log:
        for step in range(1, 6):  # stopped after step 5 (Ctrl-C, a time limit), its figures logged at 4
            now[0] += 20.0
            log.update(1)
            if step % 2 == 0:
                log.set_postfix(loss=f"{1 / step:.4f}")
    assert lines[1:] == ["train: step 2/10 (20%), loss 0.5000, 20.00 s/step, 3 min left",
                     "train: step 5/10 (50%), loss 0.2500, 20.00 s/step, 2 min left"]  # where it stopped, said on closing


def test_log_lines_of_slow_steps_come_between_far_apart_figures():
    now = [0.0]
    lines: list[str] = []
    with LogLines(200, log_every=50, interval=60, clock=lambda: now[0], write=lines.append, first_step=False) as log:
        for step in range(1, 56):
            now[0] += 100.0 if step <= 3 else 10.0  # a paper-sized model: minutes a step at first, then faster
            log.update(1)
            if step % 50 == 0:
                log.set_postfix(loss="0.5000")
    assert lines == [
        "train: step 0/200, starting; a line about every 60 s follows",
        "train: step 1/200 (0%), 100.00 s/step, 5 h 32 min left",  # figures 49 steps away: said at once
        "train: step 2/200 (1%), 100.00 s/step, 5 h 30 min left",
        "train: step 3/200 (2%), 100.00 s/step, 5 h 28 min left",
        "train: step 9/200 (4%), 40.00 s/step, 2 h 07 min left",  # at 10 s a step, once a minute
        "train: step 15/200 (8%), 28.00 s/step, 86 min left",
        "train: step 21/200 (10%), 22.86 s/step, 68 min left",
        "train: step 27/200 (14%), 20.00 s/step, 58 min left",
        "train: step 33/200 (16%), 18.18 s/step, 51 min left",
        "train: step 39/200 (20%), 16.92 s/step, 45 min left",  # at step 45 the figures are 50 s away: it waits for them
        "train: step 50/200 (25%), loss 0.5000, 15.40 s/step, 38 min left",
        "train: step 55/200 (28%), loss 0.5000, 14.91 s/step, 36 min left",  # where it stopped, said on closing
    ]


def test_log_lines_say_how_long_a_first_step_runs_until_it_ends(stderr):
    stderr(io.StringIO())
    lines: list[str] = []
    with LogLines(100, log_every=50, interval=0.02, write=lines.append) as log:
        deadline = time.monotonic() + 10
        while len(lines) < 3 and time.monotonic() < deadline:  # a first step of minutes: the heartbeat speaks
            time.sleep(0.005)
        beating = log.heartbeat.thread
        log.update(1)
        beats = len(lines)
        time.sleep(0.1)  # five intervals after the first step: quiet until the step's own line is due
        assert beating is not None and not beating.is_alive()
        assert log.heartbeat.thread is None  # joined once: later steps' close has no thread to join
    assert lines[0] == "train: step 0/100, starting; a line about every 0 s follows"
    assert all(line.startswith("  ... ") and line.endswith(" since the line above") for line in lines[1:beats - 1])
    assert lines[beats - 1].startswith("train: step 1/100 (1%), ")  # the step's own line, its losses 49 steps away
    assert beats >= 3 and not any(line.startswith("  ... ") for line in lines[beats:])


def test_training_shows_a_bar_on_a_terminal_lines_in_a_log_and_nothing_when_off(stderr):
    stderr(Terminal())
    shown = training_progress(5, 0, enabled=True)
    assert not isinstance(shown, LogLines) and not shown.disable
    shown.close()
    assert training_progress(5, 0, enabled=False).disable
    stderr(io.StringIO())
    assert isinstance(training_progress(5, 0, enabled=True), LogLines)
    assert training_progress(5, 0, enabled=False).disable


def test_a_heartbeat_says_how_long_a_silence_lasts_once_an_interval_and_a_line_resets_it(stderr):
    stderr(io.StringIO())
    now, lines = [0.0], []
    log = Heartbeat(interval=60, clock=lambda: now[0], write=lines.append)
    log("realism: Frechet distance")
    now[0] = 59.0
    log.tick()
    assert lines == ["realism: Frechet distance"]  # less than an interval of silence
    now[0] = 61.0
    log.tick()
    now[0] = 100.0
    log.tick()  # said 39 s ago: quiet
    now[0] = 125.0
    log.tick()
    assert lines[1:] == ["  ... 61 s since the line above", "  ... 2 min since the line above"]
    log("composition")
    now[0] = 150.0
    log.tick()  # 25 s after the new line
    assert lines[-1] == "composition"


def test_a_heartbeat_only_passes_lines_on_on_a_terminal_or_when_off(stderr):
    for stream, enabled in ((Terminal(), True), (io.StringIO(), False)):
        stderr(stream)
        lines: list[str] = []
        with Heartbeat(enabled=enabled, interval=0.01, write=lines.append) as log:
            log("figures")
            assert log.thread is None
        assert lines == ["figures"]


def test_a_heartbeat_in_a_log_beats_on_its_own_and_stops_on_exit(stderr):
    stderr(io.StringIO())
    lines: list[str] = []
    with Heartbeat(interval=0.02, write=lines.append) as log:
        beating = log.thread
        deadline = time.monotonic() + 10
        while len(lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert beating is not None and not beating.is_alive() and log.thread is None
    assert len(lines) >= 2 and all(line.endswith("since the line above") for line in lines)
    count = len(lines)
    time.sleep(0.1)
    assert len(lines) == count
