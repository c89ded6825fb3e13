#!/bin/bash
# Run once on one H200 (2026-12-04), from the repository root, with .whl (diffusers,
# importlib_metadata and mlxtend wheels for the device's Python 3.12) and data/morphomnist carried;
# what it printed is in README.md here.
# The shipped recipe (morphomnist-cpu) trained far longer than the CPU allows, with the whole
# training loop compiled (train.compile=reduce-overhead: CUDA graphs), side by side for a fixed time:
#   A: the recipe unchanged (batch 64, lr 5e-4), compiled;
#   B: batch 256, compiled;
#   C: batch 256, eager (the compiled run's reference: its losses, step for step).
# Then each is scored by benchmarks/preservation_bar.py on all 500 test digits (seed 0, the
# draw `causaldiffae evaluate` makes), the model on the GPU. Each run's weights come back first.
set -u
TL=${TL:-4.2}; N=${N:-500}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
SITE=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE .whl/*.whl || exit 1
export PYTHONPATH=$SITE:$PWD/src
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())" || exit 1
COMMON=(--preset morphomnist-cpu --data data/morphomnist --no-progress --time-limit "$TL" --mixed-precision bf16
        train.steps=1000000 train.log_every=250 train.checkpoint_every=1000000 train.sample_every=1000000 train.keep_checkpoints=1)
variant() {  # name, then its config overrides
  local name=$1; shift
  local run=runs/h200-long-$name
  echo "$(date +%T) $name: training"
  python3 -m causaldiffae train --out $run "${COMMON[@]}" "$@" > "$OUT/$name.log" 2>&1
  echo "$(date +%T) $name: train exit $? ($(tail -1 $run/metrics.jsonl 2>/dev/null))"
  [ -f $run/model.safetensors ] || return
  tar cf "$OUT/$name.tar" -C runs h200-long-$name/model.safetensors h200-long-$name/config.yaml h200-long-$name/metrics.jsonl h200-long-$name/samples
  python3 benchmarks/preservation_bar.py --data data/morphomnist --run $run --n "$N" --device cuda >> "$OUT/$name.log" 2>&1
  echo "$(date +%T) $name: scored, exit $?"
}
variant A train.compile=reduce-overhead &
variant B train.compile=reduce-overhead train.batch_size=256 &
variant C train.batch_size=256 &
wait
for name in A B C; do echo "== $name"; grep -v "it/s]" "$OUT/$name.log" | tail -40; done
