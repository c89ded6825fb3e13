#!/bin/bash
# One H200 (2026-11-30), from the repository root, with .whl (the diffusers 0.42.1 wheel) carried:
# eager against torch.compile for the training step (benchmarks/train_step.py). Output: train_step-output.txt.
set -u
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers, triton; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'triton', triton.__version__, 'cuda', torch.cuda.is_available())" || exit 1
T0=$(date +%s)
b() {  # label, timeout, args...
  local label=$1 limit=$2; shift 2
  echo "=== $label (t=$(( $(date +%s) - T0 )) s)"
  timeout "$limit" python3 benchmarks/train_step.py --device cuda --warmup 5 --steps 30 "$@" > "$OUT/$label.log" 2>&1
  echo "rc=$?"; grep -E "^(params|warm-up|sec/step)" "$OUT/$label.log"; grep -iE "error|skipping cudagraph|recompil" "$OUT/$label.log" | head -3
}
C=(--preset morphomnist-cpu --batch 256)
b cpu-eager-fp32 60 "${C[@]}"
b cpu-eager-bf16 60 "${C[@]}" --mixed-precision bf16
b cpu-unet-bf16 150 "${C[@]}" --mixed-precision bf16 --compile unet
b cpu-model-bf16 150 "${C[@]}" --mixed-precision bf16 --compile model
b cpu-model-ro-bf16 150 "${C[@]}" --mixed-precision bf16 --compile model --compile-mode reduce-overhead
P=(--preset morphomnist-paper --batch 64 --mixed-precision bf16)
b paper-eager-bf16 60 "${P[@]}"
b paper-unet-bf16 180 "${P[@]}" --compile unet
b cpu-unet-fp32 150 "${C[@]}" --compile unet
echo "total $(( $(date +%s) - T0 )) s"
# Then, in a second call on the same warm machine (same install lines first):
#   timeout 190 python3 benchmarks/train_step.py --device cuda --warmup 5 --steps 30 --preset morphomnist-paper \
#     --batch 64 --mixed-precision bf16 --compile model --compile-mode reduce-overhead
