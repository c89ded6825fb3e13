"""Training: ``train`` fits a model to a dataset into a run folder and resumes it exactly.

``loop`` runs it (accelerate for devices, DDP and mixed precision; checkpoints, grids, stops);
``data`` holds the training split as tensors; ``randomness`` makes every draw a function of the
step; ``schedules`` gives the KL weight, learning rate and EMA decay of a step; ``run_folder``
checks what a run folder holds and locks it; ``precision`` picks the autocast precision;
``compiled`` checks ``torch.compile``'s gradients before a compiled run starts.
"""

from causaldiffae.errors import TrainingError
from causaldiffae.training.compiled import check_compiled_gradients
from causaldiffae.training.data import TrainData, configured_graph, labeled_mask, prepare_data
from causaldiffae.training.loop import save_grid, train
from causaldiffae.training.randomness import epoch_order, rng_state, set_rng_state, step_generator, step_indices
from causaldiffae.training.run_folder import RESUMABLE_KEYS, RUN_LOCK, init_weights, resolve_resume
from causaldiffae.training.schedules import ema_decay, kl_scale, learning_rate

__all__ = [
    "RESUMABLE_KEYS", "RUN_LOCK", "TrainData", "TrainingError", "check_compiled_gradients", "configured_graph", "ema_decay",
    "epoch_order", "init_weights", "kl_scale", "labeled_mask", "learning_rate", "prepare_data", "resolve_resume", "rng_state",
    "save_grid", "set_rng_state", "step_generator", "step_indices", "train",
]
