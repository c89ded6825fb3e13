"""Whether samples from pure noise get each image's colour, and where along the noise levels the
decoder settles it, for one or more run folders side by side.

For ``--n`` test images spread over the split, each run encodes the image, decodes its latent from
pure Gaussian noise (DDIM, the run's own steps and spacing; eta 0) and compares the sample's mean
colour per channel with the image's: the colour error is the mean over images and channels of the
absolute difference (pixels in [-1, 1]). The noise is the same for every run. Then, from the test
image forward-noised to each ``--levels`` timestep, the decoder's clean-image estimate
``(x_t - sqrt(1 - a) eps) / sqrt(a)`` is scored the same way: an estimate that misses the colour
at high noise reads it off the noise, and pure noise then hands each sample a random colour
(docs/data.md, CausalCircuit, "A trained model"). ``--zero-mean`` adds samples from the same noise with
each image's noise channel means removed.

    python benchmarks/sample_colour.py --data data/circuit --runs runs/circuit-epsilon,runs/circuit-v_prediction --n 16 --zero-mean
"""

from __future__ import annotations

import argparse
from functools import lru_cache

import numpy as np
import torch

from causaldiffae.checkpoint import load_run
from causaldiffae.counterfactual import abduct
from causaldiffae.data import load_dataset
from causaldiffae.data.base import images_tensor
from causaldiffae.diffusion import ddim_sample, ddim_timesteps, q_sample, x0_from_eps

DEFAULT_LEVELS = "960,900,800,600,300"


def colour_error(images: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over images and channels of |mean colour of the image - that of its reference|."""
    return float((images.float().mean(dim=(2, 3)) - reference.float().mean(dim=(2, 3))).abs().mean())


@torch.no_grad()
def score(run: str, test_at, n: int, seed: int, levels: list[int], zero_mean: bool) -> tuple[dict[str, float | str], torch.Tensor]:
    """The run's colour errors, and the test images they were measured on; ``test_at(resolution)``
    gives the test split at a run's resolution."""
    model, config = load_run(run)
    test = test_at(config.data.resolution)
    index = np.linspace(0, len(test) - 1, min(n, len(test))).round().astype(np.int64)
    x0 = images_tensor(test, index)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))  # the same for every run of one size
    classes = None if test.classes is None else torch.from_numpy(test.classes[index])
    # the stochastic abduction is the cheap one; only its latent is used here
    found = abduct(model, x0, steps=2, abduction="stochastic", labels=test.labels[index], class_labels=classes)
    cond = model.condition(found.z, found.class_labels)
    eps_fn = lambda x, t: model.eps(x, t, cond)  # noqa: E731
    alphas = model.alphas_cumprod
    ts = ddim_timesteps(model.scheduler.config.num_train_timesteps, config.diffusion.sample_steps, spacing=config.diffusion.sample_spacing)
    out: dict[str, float | str] = {"prediction": config.diffusion.prediction_type, "samples": colour_error(ddim_sample(eps_fn, noise, ts, alphas), x0)}
    if zero_mean:
        centred = noise - noise.mean(dim=(2, 3), keepdim=True)
        out["samples, zero-mean noise"] = colour_error(ddim_sample(eps_fn, centred, ts, alphas), x0)
    for level in levels:
        x_t = q_sample(x0, level, alphas, torch.Generator().manual_seed(level)).float()
        t = torch.full((len(x0),), level, dtype=torch.long)
        estimate = x0_from_eps(x_t.double(), eps_fn(x_t, t).double(), alphas[level].double())
        out[f"x0 estimate, t={level}"] = colour_error(estimate, x0)
    return out, x0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the dataset folder the runs were trained on")
    parser.add_argument("--runs", required=True, help="comma-separated run folders")
    parser.add_argument("--n", type=int, default=16, help="test images (default 16)")
    parser.add_argument("--levels", default=DEFAULT_LEVELS, help=f"timesteps for the clean-image estimate (default {DEFAULT_LEVELS})")
    parser.add_argument("--zero-mean", action="store_true", help="also sample from noise with its channel means removed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; 1 on a busy machine)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    levels = [int(v) for v in args.levels.split(",")]
    test_at = lru_cache(lambda resolution: load_dataset(args.data, "test", resolution=resolution))  # one load per resolution
    scored = {run: score(run, test_at, args.n, args.seed, levels, args.zero_mean) for run in args.runs.split(",")}
    rows = {run: row for run, (row, _) in scored.items()}
    x0 = next(iter(scored.values()))[1]
    print(f"{len(x0)} test images of {args.data}; colour error = mean |channel mean - the image's| (pixels in [-1, 1])")
    print(f"their channel means {', '.join(f'{v:.3f}' for v in x0.mean(dim=(0, 2, 3)).tolist())}, "
          f"spread of the image means around them {float(x0.mean(dim=(2, 3)).std(dim=0).mean()):.3f} (sd)")
    names = list(next(iter(rows.values())))
    width = max(len(r) for r in rows)
    print(f"{'run':<{width}}" + "".join(f" | {name:>25}" for name in names))
    for run, row in rows.items():
        print(f"{run:<{width}}" + "".join(f" | {v:>25.3f}" if isinstance(v, float) else f" | {v:>25}" for v in row.values()))


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))
