"""The memory ``train`` says a step takes, against what two real steps take, on the CPU.

    python benchmarks/train_memory.py --data data/morphomnist
    python benchmarks/train_memory.py --data data/morphomnist --cases morphomnist-paper:8,morphomnist-paper:32

Each case runs in a fresh process: it loads the training split and builds the model, its EMA and
the optimiser as ``train`` does, reads the process's peak resident memory, makes the estimate the
plan line prints (``causaldiffae.training.memory.step_memory``), then runs two optimisation steps
(forward, backward, clipping, AdamW, EMA) and reads the peak again. Printed per case: the
estimate, the measured growth and their ratio; the estimate's ``BACKWARD_FACTOR`` comes from
these ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

DEFAULT_CASES = "morphomnist-cpu:16,morphomnist-cpu:64,morphomnist-cpu:256,morphomnist-paper:8,morphomnist-paper:32,morphomnist-paper:128"


def one_case(preset: str, batch: int, data: str, precision: str, threads: int | None) -> dict[str, float]:
    """The estimate and the measured growth of peak memory over two steps, in this process."""
    import resource
    import tempfile
    from pathlib import Path

    import torch

    from causaldiffae.config import load_config
    from causaldiffae.training.data import load_training_data
    from causaldiffae.training.loop import _build, _OptimisationStep
    from causaldiffae.training.memory import step_memory
    from causaldiffae.training.precision import make_accelerator

    if threads:
        torch.set_num_threads(threads)
    config = load_config(preset, [f"train.batch_size={batch}"])
    accelerator = make_accelerator(precision)
    train_data = load_training_data(data, config, progress=False)
    model, ema, optimizer = _build(config, train_data, accelerator.device, init=None, main=True)
    model, optimizer = accelerator.prepare(model, optimizer)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    estimate = step_memory(model, train_data, batch, accelerator.device, accelerator.autocast)
    with tempfile.TemporaryDirectory() as out:
        step = _OptimisationStep(model, model, optimizer, ema, accelerator, train_data, config.train, batch, Path(out))
        for n in range(2):
            step(n, config.train.lr, 1.0)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"estimate": estimate, "measured": after - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a dataset folder the presets train on (e.g. data/morphomnist)")
    parser.add_argument("--cases", default=DEFAULT_CASES, help="preset:batch, comma-separated")
    parser.add_argument("--mixed-precision", choices=("no", "bf16"), default="no")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, in the child process
    args = parser.parse_args()
    if args.case:
        preset, batch = args.case.split(":")
        print(json.dumps(one_case(preset, int(batch), args.data, args.mixed_precision, args.threads)))
        return
    print(f"{'preset':<20} {'batch':>5} {'estimate':>10} {'measured':>10} {'ratio':>6}")
    for case in args.cases.split(","):
        preset, batch = case.split(":")
        command = [sys.executable, __file__, "--data", args.data, "--case", case, "--mixed-precision", args.mixed_precision]
        if args.threads:
            command += ["--threads", str(args.threads)]
        child = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if child.returncode:
            raise SystemExit(f"{case}: {child.stderr.strip().splitlines()[-1]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{preset:<20} {batch:>5} {result['estimate'] / 1e9:>8.2f} GB {result['measured'] / 1e9:>7.2f} GB "
              f"{result['estimate'] / result['measured']:>6.2f}")


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))
