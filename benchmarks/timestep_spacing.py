"""Where the DDIM steps sit on the noise levels: ``uniform`` against ``quadratic``, scored as ``evaluate`` scores.

    python benchmarks/timestep_spacing.py --data data/morphomnist --n 500 --seeds 0,1,2

For each seed and spacing: ``causaldiffae evaluate``'s draw of test digits and intervention values
(seed 0 is its default draw), one abduction per spacing shared by do(thickness) and do(intensity)
as in ``evaluate``, morphometric MAE against the SCM's counterfactual labels, and digit accuracy by
the shipped classifier. ``quadratic`` keeps the top noise level and puts most steps near the clean
image, where the edit's stroke edges are drawn (``causaldiffae.diffusion.ddim_timesteps``). About
4.5 minutes per spacing and seed for 500 digits on a quiet 2-core CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from evaluate_draw import load_morphomnist

from causaldiffae.checkpoint import load_run
from causaldiffae.config import SPACINGS
from causaldiffae.data.base import images_tensor
from causaldiffae.demo import WEIGHTS
from causaldiffae.evaluation.metrics import draw_indices, effectiveness, marginal_values, model_counterfactual_fn
from causaldiffae.evaluation.predictors import load_predictors


def m(entry: dict, name: str) -> float:
    """The morphometric MAE of ``name`` in one intervention's ``effectiveness`` entry."""
    return entry["variables"][name]["measured_mae"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a MorphoMNIST folder (causaldiffae data morphomnist)")
    parser.add_argument("--run", default=str(WEIGHTS), help="run folder (default: the shipped model)")
    parser.add_argument("--predictors", default=str(WEIGHTS / "predictors"))
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the run's sample_steps)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, one draw each")
    parser.add_argument("--spacings", default=",".join(SPACINGS), help=f"comma-separated, of {', '.join(SPACINGS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; 1 on a busy machine)")
    args = parser.parse_args()
    spacings = args.spacings.split(",")
    unknown = [s for s in spacings if s not in SPACINGS]
    if unknown:
        parser.error(f"--spacings: unknown {', '.join(unknown)} (use {' or '.join(SPACINGS)})")
    if args.threads:
        torch.set_num_threads(args.threads)

    model, config = load_run(args.run)
    steps = args.steps or config.diffusion.sample_steps
    morpho = load_morphomnist(args.data, "test")
    test, measure = morpho.data, morpho.measure
    predictors = load_predictors(args.predictors, test)
    print(f"{min(args.n, len(test))} test digits, {steps} DDIM steps, ddpm abduction; morphometric MAE, digit accuracy")
    print("seed | spacing | do(thickness): thickness | intensity (descendant) | digits | do(intensity): intensity | thickness kept | digits | s")
    for seed in (int(s) for s in args.seeds.split(",")):
        idx = draw_indices(np.random.default_rng(seed), len(test), args.n)
        x, labels, classes = images_tensor(test, idx), test.labels[idx], morpho.classes[idx]
        values = marginal_values(test.labels, idx, seed)
        for spacing in spacings:
            t0 = time.perf_counter()
            cf_fn = model_counterfactual_fn(model, steps=steps, spacing=spacing, seed=seed)
            eff, _ = effectiveness(cf_fn, predictors.predict, x, labels, values, test.graph, scm=morpho.scm, classes=classes, measure=measure)
            th, it = eff["thickness"], eff["intensity"]
            print(
                f"{seed} | {spacing} | {m(th, 'thickness'):.4f} | {m(th, 'intensity'):.2f} | {th['class_accuracy']:.3f} | "
                f"{m(it, 'intensity'):.2f} | {m(it, 'thickness'):.4f} | {it['class_accuracy']:.3f} | {time.perf_counter() - t0:.0f}",
                flush=True,
            )


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))
