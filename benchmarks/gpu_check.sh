#!/usr/bin/env bash
# Every GPU path on the embedded model's real weights, for a lent GPU machine (no network; PyTorch and accelerate,
# none of our other dependencies), in two calls (what each carries: benchmarks/gpu_carry.sh):
#   bash benchmarks/gpu_check.sh setup   # carry .whl and .gpu/a: installs the wheels, says what the machine has
#   bash benchmarks/gpu_check.sh run     # carry .gpu/b: rebuilds SmolLM2-135M, runs the checks (~6 min on an H200)
# Results in $OUT (or benchmarks/results): gpu_check.json (every path, benchmarks/gpu_check.py), gpu_smoke.json (the
# bf16 reward against fp32 offline scoring), reward_throughput_gpu.json (the reward against its 2-forward bound,
# alignment included). A CPU rehearsal runs the same in fp32:
#   PATH=.venv/bin:$PATH OUT=/tmp/rehearsal LENGTHS=128 bash benchmarks/gpu_check.sh setup (then run)
set -u
OUT=${OUT:-benchmarks/results}
source benchmarks/gpu_carry.sh
if [ "${1:-}" = setup ]; then
    python3 -c "import torch, transformers, trl, peft, datasets, math_verify, gguf, deepspeed
print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__,
      'deepspeed', deepspeed.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | grep -v "^\[" || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    exit 0
fi
assemble_model || exit 0
read -r DEVICE DTYPE < <(python3 -c "import torch; print(*(('cuda', 'bfloat16') if torch.cuda.is_available() else ('cpu', 'float32')))")
mkdir -p "$OUT"
timeout 330 python3 benchmarks/gpu_check.py --model smollm2-135m --out "$OUT/gpu_check.json" 2>&1 \
    | grep -E '^\{|Error' | tail -20
timeout 90 python3 benchmarks/gpu_smoke.py --model smollm2-135m --out "$OUT/gpu_smoke.json" 2>&1 \
    | grep -E '^\{|Error|error' | tail -20
timeout 120 python3 benchmarks/reward_throughput.py --model smollm2-135m --device $DEVICE --dtype $DTYPE \
    --token-budget 65536 --lengths ${LENGTHS:-128 1024 4096} --batch 16 --repeats 3 --skip-original-above 1024 \
    --data $S/gsm8k.jsonl --out "$OUT/reward_throughput_gpu.json" 2>&1 | grep -v "Loading weights"
ls -la "$OUT"
