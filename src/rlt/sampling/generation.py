"""Batched sampling from a model, for traces and evaluation: transformers' generate on CPU, vLLM on GPUs."""

from __future__ import annotations

import gc
import hashlib
import importlib.util
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from rlt.errors import UsageError
from rlt.reward.logprobs import execution_device


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 256
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 42

    def __post_init__(self):
        if self.temperature < 0:
            raise UsageError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise UsageError("max_new_tokens and batch_size must be >= 1")


def vllm_usable(choice: str, device: str = "auto") -> bool:
    """`auto`: vLLM when it is installed and a GPU is present (and --device is not cpu); `true` insists, `false`
    never."""
    if choice not in ("auto", "true", "false"):
        raise UsageError(f"--use_vllm must be auto, true or false, got {choice!r}")
    if choice == "true" and device == "cpu":
        raise UsageError("--use_vllm true samples on a GPU; it contradicts --device cpu")
    available = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available() and device != "cpu"
    if choice == "true" and not available:
        raise UsageError("--use_vllm true needs the vllm package (pip install -e '.[vllm]') and a CUDA GPU")
    return choice != "false" and available


#: A KV cache holds two tensors per layer (keys and values), each layers × KV heads × head dim per token.
KV_PER_ELEMENT = 2


def kv_cache_bytes(config, batch: int, tokens: int, dtype: torch.dtype) -> int:
    """Bytes of KV cache that transformers' generate holds for `batch` sequences of `tokens` tokens (prompt +
    completion): 2 × layers × key-value heads × head dim × bytes per element, per token."""
    config = config.get_text_config()
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    per_token = KV_PER_ELEMENT * config.num_hidden_layers * heads * head_dim * torch.finfo(dtype).bits // 8
    return per_token * batch * tokens


def free_memory(device: torch.device) -> int:
    """Bytes that can still be allocated on `device` (the GPU's free memory; the CPU's available memory)."""
    if device.type == "cuda":  # memory PyTorch holds in its cache but has not allocated is free to it too
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return torch.cuda.mem_get_info(device)[0] + cached
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["MemAvailable"].split()[0]) * 1024


def check_generation_fits(model, batch: int, tokens: int) -> None:
    """Refuse a generate() whose KV cache alone would not fit where the model runs (32k tokens × 64 sequences
    of a 7B model is ~120 GB): better now than an out-of-memory error an hour in."""
    device = execution_device(model)
    need, free = kv_cache_bytes(model.config, batch, tokens, model.dtype), free_memory(device)
    if need > free:
        raise UsageError(
            f"generating {batch} sequences of up to {tokens} tokens needs {need / 2**30:.1f} GiB of KV cache on "
            f"{device}, which has {free / 2**30:.1f} GiB free: lower --batch_size or --max_new_tokens, or use vLLM "
            "(--use_vllm true), which pages its cache"
        )


def _strip(ids: list[int], pad_id: int, eos_ids: set[int]) -> list[int]:
    """Generated ids up to and including the first eos; padding after it removed."""
    for i, token in enumerate(ids):
        if token in eos_ids:
            return ids[: i + 1]
    while ids and ids[-1] == pad_id:
        ids = ids[:-1]
    return ids


#: Something that samples completions for token-id prompts: (prompt index, completion ids), in batches or at once.
#: Called as `sampler(prompts, config, seeds)`: `seeds`, when given, one per prompt, say what to draw for it.
Sampler = Callable[..., Iterator[tuple[int, list[int]]]]


def prompt_seeds(config: SamplingConfig, names: Sequence[object]) -> list[int]:
    """A seed per prompt from `config.seed` and what the prompt is (e.g. its question's key and sample number), not
    from its place in a list: a resumed run, whose list lacks what was done, draws what the first run would have."""
    return [int.from_bytes(hashlib.sha256(f"{config.seed}/{name}".encode()).digest()[:4], "big") for name in names]


STATIC_CACHE_BATCH = 64


def hf_generate(
    model, tokenizer, prompts: Sequence[list[int]], config: SamplingConfig, seeds: Sequence[int] | None = None
) -> Iterator[tuple[int, list[int]]]:
    """Yield (prompt index, completion ids) batch by batch, so callers can save as they go.

    A batch samples in one random stream, seeded with its first prompt's seed (`seeds`, else `config.seed` and the
    batch's position): the same batches draw the same samples, also when a resumed run starts at a batch boundary,
    as it does after a kill (rows are saved per batch). torch's CPU random state and the model's device's are left
    as they were.
    """
    if prompts:
        check_generation_fits(model, min(config.batch_size, len(prompts)),
                              max(map(len, prompts)) + config.max_new_tokens)  # fmt: skip
    device = execution_device(model)
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    for start in range(0, len(prompts), config.batch_size):
        batch = prompts[start : start + config.batch_size]
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, prompt in enumerate(batch):  # left padding: every prompt ends where generation starts
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        sampling = {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p, "top_k": 0}
        # A large batch of a small model spends most of a step copying its growing cache: a cache allocated once at
        # full length halves the time of 128 micro-world answers on a CPU (BENCHMARKS §12d).
        cache = {"cache_implementation": "static"} if len(batch) >= STATIC_CACHE_BATCH else {}
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
            torch.manual_seed(seeds[start] if seeds is not None else config.seed + start)
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=config.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                **cache,
                **(sampling if config.temperature > 0 else {"do_sample": False}),
            )
        for row in range(len(batch)):
            yield start + row, _strip(out[row, width:].tolist(), tokenizer.pad_token_id, eos_ids)


def hf_sampler(model, tokenizer) -> Sampler:
    return lambda prompts, config, seeds=None: hf_generate(model, tokenizer, prompts, config, seeds)


class VLLMSampler:
    """A vLLM engine (GPU) for every sampling of a run; `close()` releases it. Prompts are token ids, so nothing is
    re-tokenised; each request has its own seed (its entry in `seeds`, else `config.seed` + its index), so the copies
    of one prompt differ and a rerun draws the same samples. vLLM takes `memory_share` of the GPU's memory, by
    default 90 % of what is free when it starts (the models rlt scores with are loaded by then)."""

    def __init__(self, model_path: str, dtype: str = "auto", memory_share: float | None = None):
        from vllm import LLM

        if memory_share is None:
            free, total = torch.cuda.mem_get_info()
            memory_share = 0.9 * free / total
        self.llm = LLM(model=model_path, dtype=dtype, gpu_memory_utilization=memory_share, seed=0)

    def __call__(
        self, prompts: Sequence[list[int]], config: SamplingConfig, seeds: Sequence[int] | None = None
    ) -> Iterator[tuple[int, list[int]]]:
        from vllm import SamplingParams, TokensPrompt

        seeds = seeds if seeds is not None else [config.seed + i for i in range(len(prompts))]
        params = [SamplingParams(temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_new_tokens,
                                 seed=seed) for seed in seeds]  # fmt: skip
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params)
        yield from ((i, list(o.outputs[0].token_ids)) for i, o in enumerate(outputs))

    def close(self) -> None:
        self.llm = None  # shuts the engine down and returns its memory to the models that score
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def sampler_for(use_vllm: bool, model: str, dtype: str):
    """A context holding a vLLM engine for `model` (closed when done), or None: transformers' generate on the
    loaded model."""
    from contextlib import closing, nullcontext

    from rlt.models import resolve

    return closing(VLLMSampler(resolve(model), dtype)) if use_vllm else nullcontext(None)
