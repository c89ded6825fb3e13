"""``causaldiffae predictors``: train the anti-causal predictors used to score counterfactuals."""

from __future__ import annotations

import argparse
import sys

from causaldiffae.cli.options import TRAINING_THREADS_HELP, check_input_folders, set_threads


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predictors",
        help="train a CNN regressor per variable (and a class classifier) to read attributes off images",
        description="Train on the train split, report test MAE per variable (natural units) and class accuracy, "
        "save safetensors + JSON.",
    )
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--out", required=True, help="output folder (e.g. runs/predictors)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the train split (default 6, which met the MorphoMNIST targets in 2 min on one "
                        "thread, or as many as make 400 steps where six make fewer: under about 4,200 train images at batch 64)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule (default 2e-3)")
    parser.add_argument("--width", type=int, default=16, help="channels of the first conv stage (default 16)")
    parser.add_argument("--resolution", type=int, default=None, help="resize images (must match the model's)")
    parser.add_argument("--test-split", default="test", help="split the predictors are scored on (default test; they train on train)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and batch order (default 0)")
    parser.add_argument("--force", action="store_true", help="replace an earlier predictors folder at --out (the whole folder)")
    parser.add_argument("--threads", type=int, default=None, help=TRAINING_THREADS_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from causaldiffae.atomic import check_out_dir
    from causaldiffae.data import check_outside, load_dataset
    from causaldiffae.errors import UserError

    for name, least in (("epochs", 1), ("batch_size", 2), ("width", 1)):  # BatchNorm needs two images a batch
        if getattr(args, name) is not None and getattr(args, name) < least:
            raise UserError(f"--{name.replace('_', '-')} must be at least {least}, got {getattr(args, name)}")
    if not args.lr > 0:
        raise UserError(f"--lr must be positive, got {args.lr:g}")
    if not 0 <= args.seed < 2**63:
        raise UserError(f"--seed must lie in 0..2**63-1, got {args.seed}")
    check_input_folders(args, "data")

    from causaldiffae.evaluation.predictors import DEFAULT_EPOCHS, MIN_STEPS, OUTPUT, default_epochs, save_predictors, train_predictors
    from causaldiffae.progress import bar

    out = Path(args.out)
    check_out_dir(out, args.force, made_by=OUTPUT)
    check_outside(out, args.data)
    set_threads(args.threads)
    train = load_dataset(args.data, "train", resolution=args.resolution, progress=not args.no_progress)
    test = load_dataset(args.data, args.test_split, resolution=args.resolution, progress=not args.no_progress)
    print(f"{train.name}: {len(train)} train / {len(test)} {test.split} images, variables {', '.join(train.variables)}")
    if args.epochs is None and (epochs := default_epochs(len(train), args.batch_size)) > DEFAULT_EPOCHS:  # train_predictors' default
        print(f"{epochs} epochs, so that {len(train)} train images make at least {MIN_STEPS} steps (--epochs to change)")
    model = train_predictors(
        train, test, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, width=args.width, seed=args.seed,
        progress=None if args.no_progress else bar,
    )
    m = model.meta.metrics
    coarse = []
    for v in model.variables:
        k = train.variables.index(v)
        guess = float(np.abs(test.labels[:, k] - train.labels[:, k].mean()).mean())  # what knowing nothing scores
        print(f"{test.split} MAE {v}: {m['mae'][v]:.4g} (predicting the train mean: {guess:.4g})")
        if m["mae"][v] > 0.5 * guess:
            coarse.append(v)
    if "accuracy" in m and test.classes is not None:
        majority = float(np.bincount(test.classes).max() / len(test.classes))
        print(f"{test.split} class accuracy: {100 * m['accuracy']:.2f}% (the most common class: {100 * majority:.2f}%)")
    if coarse:
        print(f"note: {', '.join(coarse)}: not even twice as good as predicting the mean, so effectiveness read by "
              "these predictors is coarse; train longer (--epochs) or wider (--width)", file=sys.stderr)
    save_predictors(model, out, force=args.force)
    print(f"saved {out}")
    return 0
