"""Wall time of ``causaldiffae demo`` as a user meets it, against the 3-minute target of issue 6.

    python benchmarks/demo_time.py [--runs 2] [--threads N] [--keep DIR]

Each run is a fresh ``python -m causaldiffae demo --no-progress`` process into a new folder, so the
time includes starting Python, importing torch and diffusers, loading the shipped model and
building the embedded test digits it uses (the demo builds them in memory on every run, as on a
fresh install). The demo's own log lines are timestamped on arrival, which splits a run into its stages:
start-up, test digits, grids, scoring. Prints the CPU's bf16 support (it decides how fast the
machine is, not the demo's settings, which use fp32), each run's stages, and the slowest run
against the 180 s target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 180.0
STAGES = (("building", "start-up"), ("drawing", "test digits"), ("scoring", "grids"))


def cpu_summary() -> str:
    """The CPU model, its cores and whether it computes bf16 natively, by the check ``train`` warns with."""
    from causaldiffae.training.precision import cpu_bf16

    model = "unknown CPU"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    bf16 = {True: "native bf16 (avx512_bf16 / amx_bf16)", False: "no avx512_bf16 / amx_bf16", None: "bf16 support unknown"}
    return f"{model}, {len(os.sched_getaffinity(0))} cores, {bf16[cpu_bf16()]}"


def one_run(out: Path, threads: int | None) -> tuple[float, dict[str, float]]:
    """Seconds for the whole run and for each stage, read from when the demo's log lines arrive."""
    cmd = [sys.executable, "-u", "-m", "causaldiffae", "demo", "--out", str(out), "--no-progress"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    marks: dict[str, float] = {}  # when each stage's log line arrived
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None  # stdout=PIPE
        for line in proc.stdout:
            for key, _ in STAGES:
                if line.startswith(key):
                    marks.setdefault(key, time.perf_counter() - start)
        code = proc.wait()
    total = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"demo exited with {code}: {' '.join(cmd)}")
    missing = [key for key, _ in STAGES if key not in marks]
    if missing:
        raise SystemExit(f"the demo printed no line starting {missing[0]!r}; its log changed, so the stages cannot be split")
    stages, last = {}, 0.0
    for key, name in STAGES:
        stages[name] = marks[key] - last
        last = marks[key]
    stages["scoring"] = total - last
    return total, stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="the demo's --threads (default: its own, all cores)")
    parser.add_argument("--keep", default=None, help="write the last run's output here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    print(f"CPU: {cpu_summary()}; demo --threads {args.threads if args.threads is not None else 'default'}")
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.runs):
            out = Path(args.keep) if args.keep and k == args.runs - 1 else Path(tmp) / f"run{k}"
            total, stages = one_run(out, args.threads)
            totals.append(total)
            print(f"run {k + 1}: {total:6.1f} s  (" + ", ".join(f"{name} {s:.1f}" for name, s in stages.items()) + ")")
    worst = max(totals)
    verdict = "pass" if worst <= TARGET_S else "FAIL"
    print(f"slowest of {len(totals)}: {worst:.1f} s, fastest {min(totals):.1f} s; target <= {TARGET_S:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))
