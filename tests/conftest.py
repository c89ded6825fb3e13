import os
import signal

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _ctrl_c_raises():
    """Run every test with Python's own Ctrl-C handler: a suite started with ``&`` from a script
    inherits SIGINT ignored, which would silence the tests that interrupt themselves."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class RecordedBars:
    """A tqdm stand-in that records each bar as ``(desc, item count, leave)``."""

    def __init__(self) -> None:
        self.bars: list[tuple[str, int, bool]] = []

    def __call__(self, items, desc, leave):
        items = list(items)
        self.bars.append((desc, len(items), leave))
        return items


@pytest.fixture
def progress_bars() -> RecordedBars:
    return RecordedBars()
