"""The data order, a function of seed and epoch."""

import torch

from causaldiffae.training import step_indices


def test_data_order_is_a_function_of_seed_and_epoch():
    a = [step_indices(20, 8, seed=1, step=s) for s in range(4)]
    assert torch.equal(a[0], step_indices(20, 8, seed=1, step=0))
    assert len(set(torch.cat(a[:2]).tolist())) == 16  # one epoch (2 steps) never repeats a sample
    assert not torch.equal(a[0], a[2])  # a new permutation in epoch 1
    assert not torch.equal(a[0], step_indices(20, 8, seed=2, step=0))
