"""The step memory ``train`` estimates before its first step, and the warning when it will not fit."""

import contextlib
import re

import pytest
import torch

from causaldiffae.models import CausalDiffAE
from causaldiffae.training import prepare_data, train
from causaldiffae.training.memory import (
    BACKWARD_FACTOR,
    GRADIENT_BYTES,
    STATE_BYTES,
    FreeMemory,
    memory_warning,
    saved_bytes,
    step_memory,
)
from training_fixtures import synthetic_dataset, tiny_config


class _Linear(torch.nn.Module):
    """A loss whose saved tensors are known: a linear layer's input (B x 64 floats) and output (B x 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(64, 3)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, batch, kl_scale, generator):
        return {"loss": self.layer(self.drop(batch["image"].flatten(1))).square().mean()}


def _data():
    config = tiny_config()
    return prepare_data(synthetic_dataset(n=16, size=8), config)


def test_the_count_is_what_the_forward_pass_saves_and_the_random_state_is_kept():
    data, model = _data(), _Linear()
    state = torch.get_rng_state()
    counts = [saved_bytes(model, data, n, torch.device("cpu"), _no_autocast) for n in (1, 2, 5)]
    assert torch.equal(torch.get_rng_state(), state)  # dropout drew from a forked state
    # per image: the layer's input (64 floats) for its weight's gradient, its output (3) for the square's
    # (the image needs no gradient, so dropout keeps nothing)
    assert counts == [n * (64 + 3) * 4 for n in (1, 2, 5)]


def test_the_estimate_grows_by_what_an_image_saves_and_counts_the_optimiser():
    data, model = _data(), _Linear()
    cpu = torch.device("cpu")
    params = sum(p.numel() for p in model.parameters())
    small, large = (step_memory(model, data, micro, cpu, _no_autocast) for micro in (2, 10))
    assert large - small == pytest.approx(BACKWARD_FACTOR * 8 * 67 * 4, abs=2)
    assert small == int(BACKWARD_FACTOR * 2 * 67 * 4 + STATE_BYTES * params)
    resumed = step_memory(model, data, 2, cpu, _no_autocast, restored=True)  # AdamW's moments already loaded
    assert resumed == int(BACKWARD_FACTOR * 2 * 67 * 4 + GRADIENT_BYTES * params)


def test_a_real_model_saves_more_per_image_than_its_input():
    config = tiny_config()
    data = prepare_data(synthetic_dataset(n=16, size=8), config)
    model = CausalDiffAE(config.model, data.graph, data.image_shape, data.num_classes, config.diffusion)
    one, two = (saved_bytes(model, data, n, torch.device("cpu"), _no_autocast) for n in (1, 2))
    assert two - one > 10 * 4 * 1 * 8 * 8  # a UNet keeps many feature maps of each image, not just its pixels


@pytest.mark.parametrize(
    "need,free,batch,processes,accum,expected",
    [
        (10**9, FreeMemory(2 * 10**9, "this machine", shared=True), 64, 1, 1, None),
        (10**9, FreeMemory(3 * 10**9, "this machine", shared=True), 64, 4, 1,
         "a training step needs about 4.0 GB of memory and this machine has 3.0 GB free; lower train.batch_size, "
         "or take each batch in parts (train.grad_accum=2 halves it), or train on a GPU"),
        (10**9, FreeMemory(3 * 10**9, "cuda:0", shared=False), 64, 4, 1, None),  # each GPU holds its own process's step
        (5 * 10**8, FreeMemory(4 * 10**8, "cuda:0", shared=False), 6, 1, 2,
         "a training step needs about 500 MB of memory and cuda:0 has 400 MB free; lower train.batch_size"),
        (5 * 10**8, FreeMemory(4 * 10**8, "cuda:1", shared=False), 64, 2, 1,
         "a training step needs about 500 MB of memory and cuda:1 has 400 MB free; lower train.batch_size, "
         "or take each batch in parts (train.grad_accum=2 halves it)"),  # already on a GPU: no GPU to suggest
        (10**9, None, 64, 1, 1, None),
    ],
)
def test_the_warning_says_what_is_short_and_what_to_change(need, free, batch, processes, accum, expected):
    assert memory_warning(need, free, batch, processes, accum) == expected


def test_train_warns_before_its_first_step_and_trains_as_without_the_probe(tmp_path, monkeypatch, capsys):
    config = tiny_config("train.steps=2")
    plain = train(config, synthetic_dataset(n=16), tmp_path / "plain", progress=False)
    need = re.search(r", about (\d+ MB) a step, steps 1\.\.2$", capsys.readouterr().out, re.M)
    assert need is not None
    monkeypatch.setattr("causaldiffae.training.loop.free_memory", lambda device: FreeMemory(10**6, "this machine", shared=True))
    with pytest.warns(UserWarning, match=f"^a training step needs about {need[1]} of memory and this machine has 1 MB free; "):
        short = train(config, synthetic_dataset(n=16), tmp_path / "short", progress=False)
    assert (plain / "model.safetensors").read_bytes() == (short / "model.safetensors").read_bytes()  # the probe changed nothing


def _no_autocast() -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()
