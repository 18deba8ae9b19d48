#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (no network) with PyTorch but without our other dependencies:
# wheels in .whl/ (trl, transformers, accelerate, peft, datasets, math-verify and their small dependencies; a
# DeepSpeed wheel for the ZeRO-3 checks; vLLM only if the machine has it: its wheel is far over what a call can
# carry), SmolLM2's config and tokenizer in .gpu/smollm2-135m/, GSM8K test rows in .gpu/gsm8k/.
# Results go to $OUT (or benchmarks/results): gpu_check.json (every GPU path, benchmarks/gpu_check.py),
# gpu_smoke.json (bf16 vs fp32 reward parity), reward_throughput_gpu.json.
set -u
OUT=${OUT:-benchmarks/results}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 1500 python3 benchmarks/gpu_check.py --out "$OUT/gpu_check.json" 2>&1 | grep -E '^\{|Error' | tail -20
timeout 150 python3 benchmarks/gpu_smoke.py --out "$OUT/gpu_smoke.json" 2>&1 | grep -E '^\{|Error|error' | tail -20
timeout 330 python3 benchmarks/reward_throughput.py --model .gpu/smollm2-135m --random-init --device cuda \
    --dtype bfloat16 --token-budget 65536 --lengths 128 1024 4096 --batch 16 --repeats 3 \
    --data .gpu/gsm8k/test.jsonl --out "$OUT/reward_throughput_gpu.json" 2>&1 | grep -v "Loading weights"
