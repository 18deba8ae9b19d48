#!/usr/bin/env bash
# benchmarks/countdown_teaching.py on a lent GPU machine (no network, PyTorch but none of our other dependencies),
# in two calls because the embedded model (98 MB) is more than one call carries:
#   bash benchmarks/countdown_gpu.sh setup   # carry .whl and .gpu/a: installs the wheels, times generation
#   bash benchmarks/countdown_gpu.sh run     # carry .gpu/b: rebuilds the model, runs the experiment
# What the calls carry, and how: benchmarks/gpu_carry.sh.
set -u
OUT=${OUT:-benchmarks/results}
source benchmarks/gpu_carry.sh
if [ "${1:-}" = setup ]; then
    python3 -c "import torch, transformers, trl, datasets, peft, math_verify, gguf; print('torch', torch.__version__,
'transformers', transformers.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__)" || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 - <<'PY'
# generation speed of a SmolLM2-135M-shaped model (random weights, forced to full length) with transformers' generate
import time, torch
from transformers import AutoConfig, AutoModelForCausalLM
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained("/tmp/rlt_gpu"), dtype=torch.bfloat16).cuda().eval()
for batch, tokens in ((64, 192), (512, 320)):
    ids = torch.randint(0, 49000, (batch, 150), device="cuda")
    for repeat in range(2):
        torch.cuda.synchronize(); t = time.perf_counter()
        model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.7,
                       max_new_tokens=tokens, min_new_tokens=tokens, pad_token_id=0)
        torch.cuda.synchronize()
        print(f"generate batch {batch} x {tokens} tokens: {time.perf_counter() - t:.2f} s (repeat {repeat})", flush=True)
PY
    exit 0
fi
assemble_model || exit 0
python3 benchmarks/countdown_teaching.py --preset gpu --parallel "${PARALLEL:-8}" --minutes "${MINUTES:-7.5}" \
    --after-rl "${AFTER_RL:-3.3}" --work-dir $S/work --out "$OUT/countdown_teaching_gpu.json" 2>&1 | grep -v "Loading weights"
tar czf "$OUT/countdown_teaching_gpu_work.tgz" --exclude='*.safetensors' --exclude='checkpoint-*' \
    --exclude='*.pt' --exclude='*.bin' --exclude='tokenizer.json' -C $S work 2>/dev/null
ls -la "$OUT"
