"""The KL, learning-rate and EMA schedules, alone and as a trained run logs them."""

import pytest

from causaldiffae.training import ema_decay, kl_scale, learning_rate, train
from training_fixtures import read_metrics, synthetic_dataset, tiny_config


def test_kl_schedule_is_linear_then_flat():
    assert kl_scale(0, 100) == 0.0
    assert kl_scale(50, 100) == 0.5
    assert kl_scale(100, 100) == 1.0 and kl_scale(5000, 100) == 1.0
    assert kl_scale(0, 0) == 1.0
    assert learning_rate(0, 1e-3, 10) == pytest.approx(1e-4) and learning_rate(20, 1e-3, 10) == 1e-3


def test_ema_decay_warms_up_then_caps():
    assert ema_decay(0, 0.9) == pytest.approx(0.1) and ema_decay(1000, 0.9) == 0.9


def test_warmup_rises_linearly_then_holds(tmp_path):
    run = train(tiny_config("train.steps=6", "train.warmup_steps=4"), synthetic_dataset(n=16), tmp_path / "run", progress=False)
    logged = read_metrics(run)
    assert [m["lr"] for m in logged] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert [m["kl_scale"] for m in logged] == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])
