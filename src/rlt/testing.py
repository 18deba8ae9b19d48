"""Tiny models for tests and benchmarks: a small-vocabulary BPE tokenizer trained on the RLT formats' own text and
randomly initialised Llama-shaped models, built in seconds with no weights on disk (a 49k vocabulary makes a GRPO
step many times slower on a CPU)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@lru_cache(maxsize=4)
def tiny_tokenizer(vocab_size: int = 1024) -> PreTrainedTokenizerBase:
    """A byte-level BPE tokenizer trained on the RLT formats' own text: small vocab, any unicode encodes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from rlt.reward.formats import R1, STRATOS, student_system_prompt, teacher_system_prompt

    # the two long-prompt styles only: the tiny vocabulary (and every test's sampled ids) stays what the tests know
    corpus = [student_system_prompt(s) + teacher_system_prompt(s) + " ".join(s.all_tags) for s in (STRATOS, R1)]
    corpus += ["0123456789 + - * / = ( ) . , ? The answer is 42. How many apples does she have left?"] * 4
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    fast.chat_template = _CHATML
    fast.padding_side = "left"
    return fast


def tiny_model(seed: int = 0, vocab_size: int = 1024, hidden: int = 64, layers: int = 2) -> PreTrainedModel:
    """A randomly initialised Llama-shaped causal LM for tests (seconds to build, no weights on disk)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


def save_tiny(path: str | Path, seed: int = 0, vocab_size: int = 1024) -> Path:
    """Write a tiny model + tokenizer to `path` (safetensors), so CLI tests can load it by path."""
    path = Path(path)
    tiny_model(seed, vocab_size).save_pretrained(path, safe_serialization=True)
    tiny_tokenizer(vocab_size).save_pretrained(path)
    return path


class LoggedMetrics(dict):
    """A reward function's `log_metric`, read as TRL logs it: each name's values averaged (per rank, then over
    ranks by count); a name sent no value is absent (TRL logs None)."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, list[float]] = {}

    def __call__(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)
        self[name] = sum(self.values[name]) / len(self.values[name])
