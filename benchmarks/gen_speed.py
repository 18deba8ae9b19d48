"""What transformers/torch offer to make sampling from the teacher faster on a CPU, against plain `generate`.

The setting is one teacher-RL step's generation: 8 completions (2 distinct prompts of about 150 tokens, each
repeated 4x, left padded), sampling at temperature 0.7, top_p 1.0, top_k 0 (TRL's defaults), KV cache, and
`min_new_tokens == max_new_tokens` so that every variant generates the same number of tokens. Each variant is
timed against the baseline in the same run, interleaved (A B A B ...), `--repeats` times; medians, the ratio of
each variant's median to the baseline's median, and every raw timing are written as JSON. Only variants that
sample from the same distribution are counted (no quantization, no bf16).

    python benchmarks/gen_speed.py --repeats 3 --out benchmarks/results/gen_speed.json
    python benchmarks/gen_speed.py --variants static inference_mode --repeats 3   # a subset
    python benchmarks/gen_speed.py --check   # do the variants produce the same tokens/logits as the baseline?
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, CompileConfig, GenerationConfig

from rlt.data.countdown import generate
from rlt.models import load_model, resolve


def prompts() -> list[str]:
    """Two teacher prompts of the countdown setting: question and worked solution, asked for an explanation."""
    rows = generate(2, (4, 4), seed=0)
    return [f"{r['question']} Solution: {r['solution']} Explain how to find this solution." for r in rows]


def make_inputs(tokenizer, prompt_tokens: int, repeat: int) -> dict[str, torch.Tensor]:
    """2 chat prompts cut to about `prompt_tokens` tokens (the second 10 shorter, so there is left padding)."""
    texts = []
    for i, prompt in enumerate(prompts()):
        chat = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt * 3}], tokenize=False, add_generation_prompt=False
        )
        ids = tokenizer(chat, add_special_tokens=False)["input_ids"][: prompt_tokens - 10 * i]
        texts.append(tokenizer.decode(ids) + "<|im_end|>\n<|im_start|>assistant\n")
    batch = [t for t in texts for _ in range(repeat)]
    return tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)


def generation_config(tokenizer, new_tokens: int, **overrides) -> GenerationConfig:
    """What TRL 1.16's GRPOTrainer builds for transformers generation, plus min_new_tokens."""
    kwargs = {
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
        "do_sample": True,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "temperature": 0.7,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": None,
        "repetition_penalty": 1.0,
        "cache_implementation": None,
        "disable_compile": True,
    }
    kwargs.update(overrides)
    return GenerationConfig(**kwargs)


@contextlib.contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def mkldnn_off():
    with torch.backends.mkldnn.flags(enabled=False):
        yield


def build_variants(model, eager_model, tokenizer, args) -> dict[str, Callable[[], None]]:
    """name -> one `generate` call of that variant."""
    inputs = make_inputs(tokenizer, args.prompt_tokens, args.repeat)
    base = generation_config(tokenizer, args.new_tokens)

    def generate(m, config, grad_context=torch.no_grad, thread_count=None, extra=contextlib.nullcontext):
        def call():
            with threads(thread_count or args.threads), grad_context(), extra():
                m.generate(**inputs, generation_config=config)

        return call

    static = generation_config(tokenizer, args.new_tokens, cache_implementation="static")
    compile_config = CompileConfig(fullgraph=False, dynamic=False, mode="default")
    compile_config._compile_all_devices = True  # transformers compiles only on GPUs unless told
    static_compiled = generation_config(
        tokenizer, args.new_tokens, cache_implementation="static", disable_compile=False, compile_config=compile_config
    )
    variants = {
        "baseline": generate(model, base),
        "static": generate(model, static),
        "static_compile": generate(model, static_compiled),
        "threads_1": generate(model, base, thread_count=1),
        "inference_mode": generate(model, base, grad_context=torch.inference_mode),
        "mkldnn_off": generate(model, base, extra=mkldnn_off),
        "eager_attention": generate(eager_model, base) if eager_model is not None else None,
    }
    return {name: call for name, call in variants.items() if call is not None}


def check(model, tokenizer, args) -> dict:
    """Greedy tokens and per-step logits of the static cache against the dynamic one, on the padded batch."""
    inputs = make_inputs(tokenizer, args.prompt_tokens, args.repeat)
    out = {}
    results = {}
    for name, cache in (("dynamic", None), ("static", "static")):
        config = generation_config(
            tokenizer, args.check_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
            cache_implementation=cache, output_logits=True, return_dict_in_generate=True,
        )  # fmt: skip
        with torch.no_grad():
            results[name] = model.generate(**inputs, generation_config=config)
    a, b = results["dynamic"], results["static"]
    out["greedy_tokens_identical"] = bool(torch.equal(a.sequences, b.sequences))
    out["greedy_token_mismatches"] = int((a.sequences != b.sequences).sum())
    out["max_abs_logit_diff"] = max(float((x - y).abs().max()) for x, y in zip(a.logits, b.logits, strict=True))
    # Same seed, sampling: do the two caches draw the same tokens?
    sampled = {}
    for name, cache in (("dynamic", None), ("static", "static")):
        torch.manual_seed(0)
        with torch.no_grad():
            config = generation_config(tokenizer, args.check_tokens, cache_implementation=cache)
            sampled[name] = model.generate(**inputs, generation_config=config)
    out["sampled_tokens_identical_same_seed"] = bool(torch.equal(sampled["dynamic"], sampled["static"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--variants", nargs="*", default=None, help="Default: all.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=4, help="Copies of each of the 2 prompts in the batch.")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--check", action="store_true", help="Only compare static and dynamic cache outputs.")
    parser.add_argument("--check-tokens", type=int, default=48)
    parser.add_argument("--out", default="benchmarks/results/gen_speed.json")
    args = parser.parse_args()

    model, tokenizer = load_model(args.model)
    model.eval()
    if args.check:
        print(json.dumps(check(model, tokenizer, args), indent=2))
        return
    eager_model = None
    if args.variants is None or "eager_attention" in args.variants:
        eager_model = AutoModelForCausalLM.from_pretrained(
            resolve(args.model), dtype=torch.float32, attn_implementation="eager", use_safetensors=True
        ).eval()
        eager_model.generation_config.pad_token_id = tokenizer.pad_token_id
    variants = build_variants(model, eager_model, tokenizer, args)
    names = [n for n in variants if n != "baseline" and (args.variants is None or n in args.variants)]

    setup_seconds = {}
    for name in ["baseline", *[n for n in names if "compile" in n]]:  # one untimed call: warm-up, compilation
        start = time.perf_counter()
        variants[name]()
        setup_seconds[name] = time.perf_counter() - start
        print(f"first call {name}: {setup_seconds[name]:.1f}s", flush=True)

    raw: dict[str, list[float]] = {name: [] for name in ["baseline", *names]}
    # CPU seconds of this process per wall second during each call: well under the thread count means the cores
    # were shared with another process (or the threads waited on each other), i.e. a contaminated timing.
    cpu_per_wall: dict[str, list[float]] = {name: [] for name in raw}
    for repeat in range(args.repeats):
        for name in names:
            for which in ("baseline", name):  # A B A B ...: every variant is paired with a baseline right next to it
                start, cpu = time.perf_counter(), time.process_time()
                variants[which]()
                raw[which].append(time.perf_counter() - start)
                cpu_per_wall[which].append((time.process_time() - cpu) / raw[which][-1])
                print(f"repeat {repeat} {which}: {raw[which][-1]:.2f}s, cpu/wall {cpu_per_wall[which][-1]:.2f}, "
                      f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip

    medians = {name: statistics.median(times) for name, times in raw.items()}
    result = {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "machine": {"cpus": os.cpu_count(), "threads": args.threads, "processor": platform.processor()},
        "setting": {
            "model": args.model,
            "batch": 2 * args.repeat,
            "prompt_tokens": args.prompt_tokens,
            "new_tokens": args.new_tokens,
            "temperature": 0.7,
            "top_p": 1.0,
            "top_k": 0,
        },
        "median_seconds": medians,
        "ratio_to_baseline": {name: medians[name] / medians["baseline"] for name in medians},
        "first_call_seconds": setup_seconds,
        "raw_seconds": raw,
        "raw_cpu_per_wall": cpu_per_wall,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("median_seconds", "ratio_to_baseline", "first_call_seconds")}, indent=2))


if __name__ == "__main__":
    main()
