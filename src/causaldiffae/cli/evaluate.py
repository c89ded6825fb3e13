"""``causaldiffae evaluate``: every counterfactual metric of a run, as metrics.json, report.md and figures."""

from __future__ import annotations

import argparse

from causaldiffae.atomic import Output
from causaldiffae.cli.options import (
    THREADS_HELP,
    add_run_options,
    add_sampling_options,
    check_device,
    check_input_folders,
    note_part_trained,
    set_threads,
)

REPORT = Output("metrics.json", frozenset({"dataset", "effectiveness", "settings"}), ("report.md",))  # what --force may replace


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="effectiveness, preservation, composition, reversibility, DCI, realism; report and figures",
        description="Scores a trained run with anti-causal predictors (see 'causaldiffae predictors') on a dataset split.",
    )
    add_run_options(parser)
    parser.add_argument("--predictors", required=True, help="folder made by 'causaldiffae predictors' on the same dataset")
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--split", default="test", help="split whose images are edited and scored (default test; with train, realism and DCI compare "
                        "them with the train images not scored)")
    parser.add_argument("--out", required=True, help="report folder (metrics.json, report.md, figures/)")
    parser.add_argument("--n", type=int, default=None, help="images of --split for effectiveness and realism (default 500; --quick 64)")
    parser.add_argument("--n-small", type=int, default=None,
                        help="images for composition, reversibility, comparisons and sweeps (default 64; --quick 16)")
    parser.add_argument("--seeds", type=int, default=1, metavar="COUNT",
                        help="how many draws of intervention values and abduction noise (not a list of seeds), averaged with their spread (default 1)")
    add_sampling_options(parser)
    parser.add_argument("--sweep-steps", default=None, help="DDIM step counts of the steps sweep (default 10,20,50,100; --quick 10,20)")
    parser.add_argument("--sweep-w", default=None, help="guidance weights of the w sweep (default 0,1,2,3; --quick 1,2)")
    parser.add_argument("--quick", action="store_true", help="every section on few images (a smoke test, minutes on a CPU)")
    parser.add_argument("--batch-size", type=int, default=100, help="images per model call (default 100; lower it if memory runs short)")
    parser.add_argument("--dci", choices=("gbt", "lasso"), default="gbt", help="DCI importance regressor (default gbt)")
    parser.add_argument("--device", default="cpu", help="torch device for the model and predictors (default cpu)")
    parser.add_argument("--force", action="store_true", help="replace an earlier report folder at --out (the whole folder)")
    parser.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (in a log, nor the line saying a long section still runs)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from causaldiffae.atomic import atomic_dir, check_out_dir
    from causaldiffae.data import check_outside, load_dataset
    from causaldiffae.errors import UserError

    out = Path(args.out)
    check_out_dir(out, args.force, made_by=REPORT)
    for option, given in (("--run", args.run), ("--predictors", args.predictors)):
        if Path(given).resolve() == out.resolve() or out.resolve() in Path(given).resolve().parents:
            raise UserError(f"--out {out} holds {option} {given}, which writing the report would replace; choose another --out")
    check_outside(out, args.data)
    check_input_folders(args, "run", "predictors", "data")
    opts = {"seeds": args.seeds, "w": args.w, "guidance": args.guidance, "mode": args.mode, "abduction": args.abduction, "start": args.start,
            "batch_size": args.batch_size, "dci_method": args.dci}
    if args.n is not None:
        opts["n"] = args.n
    if args.n_small is not None:
        opts["n_small"] = args.n_small
    if args.sweep_steps is not None:
        opts["sweep_steps"] = tuple(_numbers(args.sweep_steps, "--sweep-steps", int))
    if args.sweep_w is not None:
        opts["sweep_w"] = tuple(_numbers(args.sweep_w, "--sweep-w", float))

    from causaldiffae.checkpoint import load_run
    from causaldiffae.evaluation.figures import training_curves
    from causaldiffae.evaluation.oracle import sources_or_none
    from causaldiffae.evaluation.pipeline import EvalSettings, check_inputs, evaluate
    from causaldiffae.evaluation.predictors import load_predictors
    from causaldiffae.evaluation.report import render
    from causaldiffae.progress import Heartbeat, bar

    set_threads(args.threads)
    check_device(args.device)
    model, config = load_run(args.run, device=args.device, step=args.step)
    note_part_trained(model, config, args.run, args.step)
    opts["steps"] = config.diffusion.sample_steps if args.steps is None else args.steps
    opts["spacing"] = args.spacing or config.diffusion.sample_spacing
    settings = EvalSettings.quick(**opts) if args.quick else EvalSettings(**opts)
    test = load_dataset(args.data, args.split, resolution=config.data.resolution, progress=not args.no_progress)
    train = load_dataset(args.data, "train", resolution=config.data.resolution, progress=not args.no_progress)
    predictors = load_predictors(args.predictors, test).to(args.device)
    check_inputs(model, predictors, test, settings, source=str(args.predictors))
    sources = sources_or_none(args.data, args.split) if test.name == "morphomnist" and test.image_shape[1:] == (28, 28) else None
    progress = None if args.no_progress else bar
    with atomic_dir(out, force=args.force, made_by=REPORT) as tmp, Heartbeat(enabled=not args.no_progress) as log:
        metrics = evaluate(model, predictors, train, test, settings, tmp, progress=progress, log=log, source=str(args.predictors),
                           sources=sources)
        metrics["run"] = str(args.run)
        if training_curves(Path(args.run) / "metrics.jsonl", tmp / "figures" / "training.png"):
            metrics["figures"]["training"] = "figures/training.png"
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (tmp / "report.md").write_text(render(metrics))
    _summary(metrics)
    print(f"wrote {out / 'report.md'}, {out / 'metrics.json'} and {len(metrics['figures'])} figures")
    return 0


def _numbers(text: str, option: str, kind: type) -> list:
    from causaldiffae.errors import UserError

    try:
        values = [kind(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected comma-separated {kind.__name__} values") from None
    return values


def _summary(metrics: dict) -> None:
    """Each intervention's predictor MAEs and, on MorphoMNIST, the shipped model's bar as the demo prints it."""
    from causaldiffae.evaluation.acceptance import scores_from_metrics, verdict_lines

    for var, entry in metrics["effectiveness"].items():
        parts = [f"{name} {item['mae']:.4g} (null {item['null_mae']:.4g})" for name, item in entry["variables"].items()]
        acc = f", class acc {100 * entry['class_accuracy']:.1f}%" if "class_accuracy" in entry else ""
        print(f"do({var}): MAE " + ", ".join(parts) + acc)
    bar = scores_from_metrics(metrics)
    if bar is not None:
        print("the bar of the shipped MorphoMNIST model (morphometric measurement):")
        for line in verdict_lines(bar):
            print(f"  {line}")
