"""Per-token log-probabilities at a temperature, computed only where they are needed.

The reward needs log p(token) on a few spans of each sequence (explanation, solution), not on the whole
sequence. So we run the decoder trunk once per micro-batch, gather the hidden states just before the wanted
tokens, and apply the LM head to those rows only, in chunks. Full-vocabulary logits never exist for a whole
batch: at 16 × 384 tokens and a 49k vocabulary that alone is 1.2 GB, and ~10 GB per 16k-token sequence at 150k.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from rlt.reward.align import Span

#: Largest number of logits (rows × vocab) materialised at once: 32M floats = 128 MB in fp32 on a CPU, where a
#: small chunk keeps memory low at no cost in speed; 256M floats = 1 GB on a GPU, where fewer, larger kernels win.
LOGIT_BUDGET = {"cpu": 32 * 2**20, "cuda": 256 * 2**20}


def micro_batches(lengths: list[int], token_budget: int) -> list[list[int]]:
    """Group sequence indices, longest first, so that rows × padded length stays within the token budget."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= token_budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def pad_right(sequences: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask (right padding keeps positions 0..n-1 for every row)."""
    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model with dropout off for the block (a reward must not be noisy), back in its own mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def execution_device(model: nn.Module) -> torch.device:
    """Where a model computes. Usually its parameters' device; a model whose weights accelerate offloads
    (`cpu_offload`) keeps them on `meta` and computes where its hooks stream them to."""
    for module in model.modules():
        hook = getattr(module, "_hf_hook", None)
        for h in getattr(hook, "hooks", [hook]):  # a SequentialHook holds several
            if getattr(h, "execution_device", None) is not None:
                return torch.device(h.execution_device)
    return next(model.parameters()).device


def logit_scale(model: nn.Module) -> float:
    """The factor an architecture multiplies its LM-head output by (1 for most), in the order TRL's fused head reads
    it: Cohere's `logit_scale`, `output_multiplier`, Falcon-H1's `lm_head_multiplier`, then `logits_scaling`, which
    Granite and MiniCPM3 divide by and HyperCLOVA X multiplies by."""
    config = model.config.get_text_config()
    for name in ("logit_scale", "output_multiplier", "lm_head_multiplier"):
        if getattr(config, name, None) is not None:
            return float(getattr(config, name))
    scaling = getattr(config, "logits_scaling", None)
    if scaling is None:
        return 1.0
    return float(scaling) if config.model_type == "hyperclovax" else 1.0 / scaling


def _head_logprobs(model: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(scale · head(hidden) / T)[target] in fp32, chunked over rows so the logits stay within
    LOGIT_BUDGET; `scale` is the architecture's own (`logit_scale`), softcapping applied as the model does.

    For a plain linear head the scale and temperature are folded into its input, head(h · s / T) = head(h) · s / T,
    and the log-softmax upcasts to fp32 inside its kernel: no fp32 copy of the logits, no extra pass over them.
    """
    head = model.get_output_embeddings()
    softcap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    linear = not softcap and getattr(head, "bias", None) is None
    budget = LOGIT_BUDGET["cuda" if hidden.is_cuda else "cpu"]
    # The vocabulary size from the head's declared shape: under ZeRO-3 its weight is an empty placeholder.
    vocab = getattr(head, "out_features", None) or model.config.get_text_config().vocab_size
    rows = max(1, budget // vocab)
    scale = logit_scale(model)
    out = []
    for start in range(0, hidden.shape[0], rows):
        chunk, chunk_targets = hidden[start : start + rows], targets[start : start + rows, None]
        if linear:
            logits = head(chunk * (scale / temperature))
        else:
            logits = head(chunk).float() * scale
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            logits = logits / temperature
        out.append(torch.log_softmax(logits, dim=-1, dtype=torch.float32).gather(-1, chunk_targets).squeeze(-1))
    return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)


@torch.no_grad()
def span_logprobs(
    model: nn.Module,
    sequences: list[list[int]],
    spans: list[list[Span]],
    temperature: float = 1.0,
    token_budget: int = 8192,
) -> list[list[torch.Tensor]]:
    """For each sequence and each of its spans, the log-probs of the span's tokens given everything before them.

    The log-prob of the token at position i comes from the logits at position i - 1, so every span must start at
    index >= 1. Sequences are right-padded into micro-batches of at most `token_budget` padded tokens; results do
    not depend on how they were batched (up to float rounding). Returned tensors are fp32 on the CPU.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    for seq, seq_spans in zip(sequences, spans, strict=True):
        for start, end in seq_spans:
            if not 1 <= start <= end <= len(seq):
                raise ValueError(f"span [{start}, {end}) out of range for a sequence of {len(seq)} tokens")
    decoder = model.get_decoder()
    device = execution_device(model)
    results: list[list[torch.Tensor]] = [[] for _ in sequences]
    with eval_mode(model):
        for batch in micro_batches([len(s) for s in sequences], token_budget):
            ids, mask = pad_right([sequences[i] for i in batch])
            hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            # Hidden state at i - 1 predicts the token at i: gather the rows before every span token.
            pieces = [(row, start, end) for row, i in enumerate(batch) for start, end in spans[i]]
            if not pieces:
                continue
            lengths = torch.tensor([end - start for _, start, end in pieces], dtype=torch.long)
            rows_t = torch.repeat_interleave(torch.tensor([row for row, _, _ in pieces], dtype=torch.long), lengths)
            cols_t = torch.cat([torch.arange(start - 1, end - 1) for _, start, end in pieces])
            targets = ids[rows_t, cols_t + 1].to(device)
            logp = _head_logprobs(model, hidden[rows_t.to(device), cols_t.to(device)], targets, temperature).cpu()
            offset = 0
            for i in batch:
                for start, end in spans[i]:
                    results[i].append(logp[offset : offset + end - start])
                    offset += end - start
    return results
