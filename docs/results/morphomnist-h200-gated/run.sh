#!/bin/bash
# Run once on one H200, from the repository root, with .whl (diffusers, importlib_metadata and
# mlxtend wheels for the device's Python 3.12) and data/morphomnist carried.
# The shipped recipe (morphomnist-cpu, 7,000 steps, batch 64, bf16) with the latent entering the
# decoder as a DiffAE-style gate (gated.py here), two runs side by side, eager:
#   G: z only through the gates;   H: the shipped additive path and the gates.
# Then each is scored by benchmarks/preservation_bar.py on all 500 test digits (seed 0, the draw
# `causaldiffae evaluate` makes), the model on the GPU. Each run's weights come back first.
set -u
TL=${TL:-4.5}; N=${N:-500}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
SITE=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE .whl/*.whl || exit 1
export PYTHONPATH=$SITE:$PWD/src
HERE=docs/results/morphomnist-h200-gated
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())" || exit 1
variant() {  # name, GATED mode
  local name=$1 mode=$2 run=runs/h200-gated-$1
  echo "$(date +%T) $name ($mode): training"
  GATED=$mode python3 $HERE/gated.py train --preset morphomnist-cpu --data data/morphomnist --out $run --no-progress \
    --time-limit "$TL" --mixed-precision bf16 train.log_every=250 train.sample_every=1000000 > "$OUT/$name.log" 2>&1
  echo "$(date +%T) $name: train exit $? ($(tail -1 $run/metrics.jsonl 2>/dev/null))"
  [ -f $run/model.safetensors ] || return
  tar cf "$OUT/$name.tar" -C runs h200-gated-$name/model.safetensors h200-gated-$name/config.yaml h200-gated-$name/metrics.jsonl
  GATED=$mode python3 $HERE/gated.py bench --data data/morphomnist --run $run --n "$N" --device cuda --abductions ddpm,inversion >> "$OUT/$name.log" 2>&1
  echo "$(date +%T) $name: scored, exit $?"
}
variant G gate &
variant H hybrid &
wait
for name in G H; do echo "== $name"; grep -v "it/s]" "$OUT/$name.log" | tail -30; done
