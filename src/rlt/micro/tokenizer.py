"""The micro-world's tokenizer: one token per whole number and per word, a character (then a byte) for the rest.

Arithmetic is what a tiny model from scratch learns last when numbers are spelt digit by digit (a probe at 1.9M
parameters: "21 - 4 = 11" after 7 minutes); with one token a number, a fact "a op b = c" is five tokens and the
facts a problem range needs are a small table. The vocabulary is fixed by construction, not trained:

    integers 0..MAX_INTEGER, words of the generator's and rlt's own texts   with and without one leading space
    printable ASCII and newline                                             one token each, also after a space
    byte tokens <0x00>..<0xFF>                                              whatever else (any unicode encodes)

Text is first cut into pieces (a tag, a number or a word with its leading space, a punctuation mark with its
leading space, a run of newlines or spaces); a piece in the vocabulary is one token, any other piece is spelt one
character a token. It is a `tokenizers` BPE with no merges and `ignore_merges`, wrapped as a transformers fast
tokenizer, so character offsets (which the reward's alignment reads) come for free and decoding is concatenation.
"""

from __future__ import annotations

import re
import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

MAX_INTEGER = 999  # larger numbers are spelt digit by digit
EOS, PAD = "<|end|>", "<pad>"
ROLES = ("system", "user", "assistant")

# A plain chat: a role marker, the content verbatim, the end of turn. The assistant's think section is the tagged
# part of its content (`rlt.reward.formats`), so any tag style works.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# leftmost-first: tags, numbers and words (each with one leading space), other characters (likewise), line breaks,
# runs of spaces
_PIECES = r"<\|?/?[a-z_]+\|?>| ?\d+| ?[A-Za-z]+| ?[^\sA-Za-z\d]|\n+| +|\s"


def _corpus_words() -> set[str]:
    """The words the micro-world's texts use: the countdown generator's (questions, worked solutions, search
    traces) and rlt's own system prompts and tags, so that none of them is spelt out letter by letter."""
    from rlt.data import countdown
    from rlt.reward.formats import STYLES, student_system_prompt, teacher_system_prompt

    rows = countdown.generate(50, (3, 4), seed=0, max_number=10)
    texts = [row[key] for row in rows for key in ("question", "solution", "reasoning_trace")]
    texts += [prompt(style) for style in STYLES.values() for prompt in (student_system_prompt, teacher_system_prompt)]
    texts += ["The answer is", "Answer", "Thus", "So", "Yes", "No", "From"]
    return set(re.findall(r"[A-Za-z]+", " ".join(texts)))


def vocabulary() -> list[str]:
    """Every token, in id order: specials, tags, single characters, bytes, numbers, words."""
    from rlt.reward.formats import STYLES

    specials = [PAD, EOS, *(f"<|{role}|>" for role in ROLES)]
    tags = sorted({tag for style in STYLES.values() for tag in style.all_tags})
    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    spaced = [" " + c for c in chars if not c.isspace()]
    runs = ["\n" * n for n in range(2, 5)] + [" " * n for n in range(2, 9)]
    numbers = [str(n) for n in range(MAX_INTEGER + 1)]
    words = sorted(_corpus_words())
    wholes = [w for w in numbers + words if len(w) > 1]
    pieces = [*specials, *tags, *chars, *spaced, *runs, *wholes, *(" " + w for w in numbers + words if len(w) > 1)]
    pieces += [f"<0x{b:02X}>" for b in range(256)]
    seen: dict[str, None] = dict.fromkeys(pieces)  # ordered, without repeats
    return list(seen)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The micro-world's fast tokenizer, with its chat template; the same ids on every machine."""
    vocab = {piece: i for i, piece in enumerate(vocabulary())}
    model = models.BPE(vocab=vocab, merges=[], byte_fallback=True, ignore_merges=True, unk_token=None)
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECES), behavior="isolated")
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD)
    fast.add_special_tokens({"additional_special_tokens": [f"<|{role}|>" for role in ROLES]})
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast
