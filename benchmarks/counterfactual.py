"""Counterfactual speed and effectiveness against the number of DDIM steps.

    python benchmarks/counterfactual.py --run runs/morphomnist-cpu --data data/morphomnist \
        [--predictors runs/predictors] [--n 64] [--steps 250,50,20] [--spacing quadratic]

For each step count: counterfactual images per second (abduction once per image, shared by the
interventions as in a grid, plus one decoding per intervention; batched) and
the effectiveness, i.e. the MAE in natural units between the intervened variable read off the
counterfactual and its requested value, averaged over the variables (one intervention per
variable, values a shuffled copy of the test labels). The reading is done by the anti-causal
predictors when given, else by Morpho-MNIST measurement. The recommended default is the fastest
step count whose MAE is within 5% of the largest step count's; the script says whether
``causaldiffae.counterfactual.DEFAULT_STEPS`` is that one.

The steps sit on the noise levels as the run's config says (``diffusion.sample_spacing``, as
``counterfactual`` and ``evaluate`` place them) unless ``--spacing`` says otherwise.

``--compare`` instead scores every abduction x mode combination at ``--steps`` (one value)
against the SCM's true counterfactuals: MAE of the intervened variable, of its descendants and
of its non-descendants (preservation), and the reconstruction L1 of the null intervention.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from causaldiffae.checkpoint import load_run
from causaldiffae.config import ABDUCTIONS, DEFAULT_ABDUCTION, DEFAULT_GUIDANCE, DEFAULT_MODE, DEFAULT_STEPS, DEFAULT_W, MODES, SPACINGS
from causaldiffae.counterfactual import check_options
from causaldiffae.data import load_dataset
from causaldiffae.data.base import images_tensor
from causaldiffae.errors import UserError
from causaldiffae.evaluation.metrics import Reader, effectiveness, model_counterfactual_fn, morphometric_reader
from causaldiffae.evaluation.predictors import load_predictors
from causaldiffae.evaluation.realism import l1_pixels


def step_counts(text: str) -> list[int]:
    """``--steps``: comma-separated integers, largest first."""
    try:
        return sorted({int(s) for s in text.split(",")}, reverse=True)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--predictors", default=None, help="predictors folder; default: morphometric measurement")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--steps", type=step_counts, default="250,50,20", help="comma-separated step counts")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--spacing", choices=SPACINGS, default=None, help="where the steps sit (default: the run's diffusion.sample_spacing)")
    parser.add_argument("--mode", default=None)
    parser.add_argument("--abduction", default=None)
    parser.add_argument("--w", type=float, default=None, help="guidance weight (default: the library's)")
    parser.add_argument("--guidance", default=None, help="guidance reference, null or factual (default: the library's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="compare every abduction x set/shift instead")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; 1 on a busy machine)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    steps_list = args.steps
    if args.compare and len(steps_list) > 1:
        raise UserError(f"--compare scores one step count; got --steps {', '.join(map(str, steps_list))}")
    model, config = load_run(args.run)
    args.spacing = args.spacing or config.diffusion.sample_spacing
    mode, abduction = args.mode or DEFAULT_MODE, args.abduction or DEFAULT_ABDUCTION
    args.w = DEFAULT_W if args.w is None else args.w
    args.guidance = args.guidance or DEFAULT_GUIDANCE
    for s in steps_list:
        check_options(model, steps=s, w=args.w, mode=mode, abduction=abduction, guidance=args.guidance, spacing=args.spacing)
    ds = load_dataset(args.data, args.split, resolution=config.data.resolution)
    read: Reader | None
    if args.predictors:
        read = load_predictors(args.predictors, ds).predict
        instrument = f"predictors {args.predictors}"
    else:
        read = morphometric_reader(ds.graph)
        instrument = "morphometric measurement"
        if read is None:
            raise UserError(f"{ds.name}: no morphometrics for its variables; pass --predictors")

    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.permutation(len(ds))[: args.n])
    x, labels = images_tensor(ds, idx), ds.labels[idx]
    classes = None if ds.classes is None else ds.classes[idx]
    values = ds.labels[rng.permutation(len(ds))][idx]
    variables = [v for v in ds.graph.variables if args.predictors or v in read(x[:1])]
    if args.compare:
        return compare(model, ds, read, x, labels, classes, values, steps_list[0], args)
    print(f"{ds.name}/{args.split}: {len(idx)} images, {mode}/{abduction}, w={args.w:g} ({args.guidance}), "
          f"{args.spacing} spacing, effectiveness read by {instrument}")
    print(f"{'steps':>6} {'cf images/s':>12} " + " ".join(f"{'MAE ' + v:>16}" for v in variables))
    rows = {}
    for steps in steps_list:
        fn = model_counterfactual_fn(model, steps=steps, mode=mode, abduction=abduction, w=args.w, guidance=args.guidance,
                                     spacing=args.spacing, batch_size=args.batch_size, seed=args.seed)
        maes, seconds = [], 0.0
        for v in variables:
            k = ds.graph.index(v)
            t0 = time.perf_counter()
            out, _ = fn(x, {v: values[:, k]}, labels, classes)
            seconds += time.perf_counter() - t0
            maes.append(float(np.mean(np.abs(read(out)[v] - values[:, k]))))
        rate = len(idx) * len(variables) / seconds
        rows[steps] = (rate, maes)
        print(f"{steps:>6} {rate:>12.2f} " + " ".join(f"{m:>16.4f}" for m in maes), flush=True)
    ref = rows[steps_list[0]][1]
    ok = [s for s in steps_list if all(m <= 1.05 * r for m, r in zip(rows[s][1], ref))]
    best = min(ok)
    print(f"fastest with every variable's MAE within 5% of the {steps_list[0]}-step MAE: {best} steps; "
          f"DEFAULT_STEPS = {DEFAULT_STEPS} ({'matches' if best == DEFAULT_STEPS else 'differs'})")
    return 0


def compare(model, ds, read, x, labels, classes, values, steps, args) -> int:
    """Effectiveness and preservation of every abduction x mode combination, against the SCM."""
    if ds.scm is None:
        raise UserError(f"{ds.name} has no known SCM to compare against")
    print(f"{len(x)} images, {steps} steps, {args.spacing} spacing; MAE vs the SCM's true counterfactuals (null: the unedited image)")
    for abduction in ABDUCTIONS:
        for mode in MODES:
            fn = model_counterfactual_fn(model, steps=steps, mode=mode, abduction=abduction, w=args.w, guidance=args.guidance,
                                         spacing=args.spacing, batch_size=args.batch_size, seed=args.seed)
            t0 = time.perf_counter()
            res, _ = effectiveness(fn, read, x, labels, values, ds.graph, scm=ds.scm, classes=classes)
            rec, _ = fn(x, {}, labels, classes)
            parts = []
            for var, entry in res.items():
                for name, item in entry["variables"].items():
                    parts.append(f"do({var}) {name}[{item['role'][:4]}] {item['mae']:.3f} (null {item['null_mae']:.3f})")
                if "class_accuracy" in entry:
                    parts.append(f"do({var}) class acc {entry['class_accuracy']:.3f}")
            rec_l1 = float(l1_pixels(rec.numpy(), x.numpy()).mean())
            print(f"{abduction}/{mode}: " + "; ".join(parts) + f"; recon L1 {rec_l1:.4f}; {time.perf_counter() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    torch.set_grad_enabled(False)
    raise SystemExit(guarded(main))
