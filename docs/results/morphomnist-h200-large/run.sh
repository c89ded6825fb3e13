#!/bin/bash
# Run once on one H200 (2026-11-30), from the repository root, with .whl (diffusers, mlxtend
# wheels for the device's Python 3.12), .gpu and data/morphomnist carried; what it printed is in
# README.md here.
# A: milliseconds per step of the whole training loop for two source trees, one after the other,
#    alone on the GPU, same config: .gpu/old/src = `git archive 8f9125e src` (main: loss terms read
#    to the host every step, batches copied from the host) and the working tree of that moment, an
#    uncommitted variant that kept the window's sums on the device and the dataset resident. It
#    measured no faster (README.md), so it was not landed; on main today both trees are the same.
# B: two larger decoders on the morphomnist-cpu recipe, trained side by side for a fixed time.
# C: both scored by benchmarks/preservation_bar.py on all 500 test digits (seed 0), model on the GPU.
set -u
A_MIN=${A_MIN:-0.45}; B_MIN=${B_MIN:-4.5}; N=${N:-500}; DEV=${DEV:-cuda}; MP=${MP:-bf16}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
SITE=/tmp/site
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE .whl/*.whl || exit 1
fi
NEW=$SITE:$PWD/src; OLD=$SITE:$PWD/.gpu/old/src
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
PYTHONPATH=$NEW python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())" || exit 1
A=(--data data/morphomnist --no-progress --time-limit "$A_MIN" train.steps=100000 train.batch_size=256
   train.log_every=50 train.checkpoint_every=100000 train.sample_every=100000)
for tree in old new; do
  if [ $tree = old ]; then P=$OLD; else P=$NEW; fi
  rm -rf runs/s9-a-$tree
  PYTHONPATH=$P python3 -m causaldiffae train --preset morphomnist-cpu --out runs/s9-a-$tree "${A[@]}" > "$OUT/a-$tree.log" 2>&1
  PYTHONPATH=$NEW python3 - runs/s9-a-$tree/metrics.jsonl $tree <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:-1]  # first window warms up; last is cut short
print(f"A {sys.argv[2]}: {len(rows)} windows of 50 steps, median {statistics.median(r['sec_per_step'] for r in rows) * 1000:.1f} ms/step, "
      f"{statistics.median(r['images_per_sec'] for r in rows):.0f} images/s")
PY
done
B=(--data data/morphomnist --no-progress --time-limit "$B_MIN" --mixed-precision "$MP" train.steps=100000 train.batch_size=256
   train.lr=0.0002 train.log_every=100 train.checkpoint_every=100000 train.sample_every=100000 train.keep_checkpoints=1)
rm -rf runs/s9-b128 runs/s9-b64l3
PYTHONPATH=$NEW python3 -m causaldiffae train --preset morphomnist-cpu --out runs/s9-b128 "${B[@]}" \
  model.base_channels=128 model.layers_per_block=3 "model.attention_levels=[0]" > "$OUT/b128.log" 2>&1 &
PYTHONPATH=$NEW python3 -m causaldiffae train --preset morphomnist-cpu --out runs/s9-b64l3 "${B[@]}" \
  model.base_channels=64 model.layers_per_block=3 "model.attention_levels=[0]" > "$OUT/b64l3.log" 2>&1 &
wait
for r in runs/s9-b128 runs/s9-b64l3; do echo "$r: $(tail -1 $r/metrics.jsonl 2>/dev/null)"; done
for r in s9-b128 s9-b64l3; do
  PYTHONPATH=$NEW python3 benchmarks/preservation_bar.py --data data/morphomnist --run runs/$r --n "$N" --device "$DEV" > "$OUT/bar-$r.txt" 2>&1 &
done
wait
cat "$OUT"/bar-*.txt
mkdir -p "$OUT/runs"
for r in runs/s9-*; do mkdir -p "$OUT/$r"; cp -r $r/config.yaml $r/metrics.jsonl $r/samples "$OUT/$r/" 2>/dev/null; done
tar cf - runs/s9-b64l3/model.safetensors | split -b 15m - "$OUT/b64l3-weights.tar.part-"
ls -la "$OUT"
