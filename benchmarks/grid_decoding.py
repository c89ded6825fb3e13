"""Counterfactual grid decoding: one decoder call per column against columns decoded together,
at one torch thread and at torch's default, side by side in one run.

    python benchmarks/grid_decoding.py [--run src/causaldiffae/weights/morphomnist] [--data data/morphomnist]
        [--digits 6] [--columns 4] [--steps 20] [--repeats 3]

A grid abducts its digits once and decodes one intervention per column (``do(thickness = v)``
for evenly spaced v). "per column" calls ``decode_intervention`` for each column (what every
grid did before ``decode_interventions``); "together" calls ``decode_interventions`` once. Both
give the same images (the largest pixel difference is printed). Images are the first test digits
of ``--data`` when given, else uniform noise in [-1, 1] (the decoder's cost does not depend on
content). Prints seconds per grid (best of ``--repeats``) and the speed-up of each option.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable
from pathlib import Path

import numpy as np
import torch

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "causaldiffae" / "weights" / "morphomnist"


def best_of(repeats: int, fn: Callable[[], list[torch.Tensor]]) -> tuple[float, list[torch.Tensor]]:
    times: list[float] = []
    out: list[torch.Tensor] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=str(SHIPPED))
    parser.add_argument("--data", default=None, help="dataset folder for real test digits (default: noise images)")
    parser.add_argument("--digits", type=int, default=6, help="digits per grid (the demo's 6)")
    parser.add_argument("--columns", type=int, default=4, help="interventions per grid (the demo's 4)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from causaldiffae.checkpoint import load_run
    from causaldiffae.counterfactual import abduct, check_do, decode_intervention, decode_interventions, label_stats

    model, config = load_run(args.run)
    mean, std = label_stats(model)
    if args.data:
        from causaldiffae.data import load_dataset
        from causaldiffae.data.base import images_tensor

        ds = load_dataset(args.data, "test")
        x = images_tensor(ds, np.arange(args.digits))
        classes = None if ds.classes is None else torch.as_tensor(ds.classes[: args.digits])
    else:
        x = torch.rand((args.digits, *model.image_shape), generator=torch.Generator().manual_seed(0)) * 2 - 1
        classes = torch.arange(args.digits) % model.num_classes if model.num_classes else None
    var = model.graph.variables[0]
    k = model.graph.index(var)
    values = mean[k] + std[k] * np.linspace(-1.5, 1.5, args.columns)
    dos = [check_do(model, {var: v}, args.digits) for v in values]
    abd = abduct(model, x, steps=args.steps, class_labels=classes, spacing=config.diffusion.sample_spacing,
                 generator=torch.Generator().manual_seed(0))

    def per_column():
        return [decode_intervention(model, abd, do, label_mean=mean, label_std=std)[0] for do in dos]

    def together():
        return [images for images, _, _ in decode_interventions(model, abd, dos, label_mean=mean, label_std=std)]

    default_threads = torch.get_num_threads()
    thread_counts = sorted({1, default_threads})
    print(f"{args.run}: grid of {args.digits} digits x {args.columns} columns do({var}), {args.steps} DDIM steps "
          f"({config.diffusion.sample_spacing}), best of {args.repeats}; torch's default is {default_threads} thread(s)")
    print("| threads | per column s/grid | together s/grid | together vs per column |")
    print("|---|---|---|---|")
    results = {}
    for n in thread_counts:
        torch.set_num_threads(n)
        t_col, a = best_of(args.repeats, per_column)
        t_tog, b = best_of(args.repeats, together)
        diff = max(float((p - q).abs().max()) for p, q in zip(a, b))
        results[n] = (t_col, t_tog)
        print(f"| {n} | {t_col:.2f} | {t_tog:.2f} | {t_col / t_tog:.2f}x (max pixel difference {diff:.1e}) |")
    torch.set_num_threads(default_threads)
    if len(thread_counts) > 1:
        (c1, g1), (cd, gd) = results[1], results[default_threads]
        print(f"{default_threads} threads vs 1: per column {c1 / cd:.2f}x, together {g1 / gd:.2f}x faster")
    return 0


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))
