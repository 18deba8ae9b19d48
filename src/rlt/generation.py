"""Batched sampling from a model, for traces and evaluation: transformers' generate on CPU, vLLM on GPUs."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from rlt.logprobs import execution_device


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 256
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 42

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be >= 1")


def vllm_usable(choice: str) -> bool:
    """`auto`: vLLM when it is installed and a GPU is present; `true` insists, `false` never."""
    available = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()
    if choice == "true" and not available:
        raise ValueError("--use_vllm true needs the vllm package and a GPU")
    return choice != "false" and available


def _strip(ids: list[int], pad_id: int, eos_ids: set[int]) -> list[int]:
    """Generated ids up to and including the first eos; padding after it removed."""
    for i, token in enumerate(ids):
        if token in eos_ids:
            return ids[: i + 1]
    while ids and ids[-1] == pad_id:
        ids = ids[:-1]
    return ids


def hf_generate(
    model, tokenizer, prompts: Sequence[list[int]], config: SamplingConfig
) -> Iterator[tuple[int, list[int]]]:
    """Yield (prompt index, completion ids) batch by batch, so callers can save as they go.

    Each batch is seeded from `config.seed` and its position, so the same prompts draw the same samples.
    """
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
        torch.manual_seed(config.seed + start)
        sampling = {"do_sample": True, "temperature": config.temperature, "top_p": config.top_p, "top_k": 0}
        with torch.no_grad():
            out = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=config.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                **(sampling if config.temperature > 0 else {"do_sample": False}),
            )
        for row in range(len(batch)):
            yield start + row, _strip(out[row, width:].tolist(), tokenizer.pad_token_id, eos_ids)


def vllm_generate(model_path: str, prompts: Sequence[list[int]], config: SamplingConfig) -> list[list[int]]:
    """All completions at once with vLLM (GPU); the prompts are token ids, so nothing is re-tokenised."""
    from vllm import LLM, SamplingParams, TokensPrompt

    llm = LLM(model=model_path, seed=config.seed, dtype="auto")
    params = SamplingParams(
        temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_new_tokens, seed=config.seed
    )
    outputs = llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params)
    return [list(o.outputs[0].token_ids) for o in outputs]
