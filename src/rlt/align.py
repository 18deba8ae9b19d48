"""Where the explanation and the solution sit in each model's tokens, found by character offsets.

The student reads its chat as its own tokenizer splits the whole text, so that is the sequence the reward scores:
the same ids `rlt distill` trains on and `rlt eval` prompts with. The teacher's tokens are the ones it sampled
(or, for free text, the completion tokenised once). Both sides are mapped to the characters of one explanation
string, and every span is a range of characters turned into tokens by one rule:

    Edge rule. A token belongs to a span when all its characters lie inside the span. A token that straddles an
    edge (merged with a tag, a padding or a neighbour) belongs to neither side: it is context, never scored.

The KL compares teacher and student on the same text, which two tokenizations may cut differently. It is taken
over chunks: the coarsest partition of the explanation whose edges are token boundaries on both sides. A chunk's
KL is Σ teacher log-probs − Σ student log-probs of its tokens, the log-prob of the chunk's text under each model.
With one tokenizer and no merges at the edges every chunk is one token: spec §2.6 exactly. Explanation tokens
outside every chunk (edge straddlers, and one side's tokens past the last boundary both share) are counted as
`kl_edge_tokens_dropped`.

A boundary is a character position where one token ends and the next starts. Byte-level tokenizers can split one
character over several tokens; their offsets overlap and no boundary is placed inside that character.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rlt.errors import UsageError

Span = tuple[int, int]  # [start, end): token indices into a sequence, or characters into a text


@dataclass(frozen=True)
class TokenizedText:
    """Token ids and the [start, end) characters each covers in the text they came from."""

    ids: list[int]
    offsets: list[Span]

    @cached_property
    def _starts_ends(self) -> tuple[np.ndarray, np.ndarray]:
        table = np.asarray(self.offsets, dtype=np.int64).reshape(-1, 2)
        return table[:, 0], table[:, 1]

    def tokens_within(self, chars: Span) -> Span:
        """The tokens inside `chars` by the edge rule, as a token range (empty at the first token after `chars`)."""
        (lo, hi), (starts, ends) = chars, self._starts_ends
        inside = np.flatnonzero((starts >= lo) & (starts < hi) & (ends <= hi))
        if len(inside):
            return int(inside[0]), int(inside[-1]) + 1
        after = np.flatnonzero(starts >= hi)
        return (int(after[0]),) * 2 if len(after) else (len(self.ids),) * 2

    def tokens_touching(self, chars: Span) -> int:
        (lo, hi), (starts, ends) = chars, self._starts_ends
        return int(((starts < hi) & (ends > lo)).sum())

    def boundaries(self, tokens: Span) -> tuple[np.ndarray, np.ndarray]:
        """(character positions, token indices) of the clean boundaries of a non-empty token range, ends included,
        in order, one per position (the last index where zero-width tokens share one).

        Boundary i lies before token i (i == end: after the last); it is clean unless tokens i − 1 and i overlap.
        """
        (start, end), (starts, ends) = tokens, self._starts_ends
        index = np.arange(start, end + 1)
        has_left, has_right = index > 0, index < len(self.ids)
        left_end = ends[np.maximum(index - 1, 0)]
        right_start = starts[np.minimum(index, len(self.ids) - 1)]
        clean = ~(has_left & has_right & (right_start < left_end))  # a character split over two tokens otherwise
        position, index = np.where(index < end, right_start, left_end)[clean], index[clean]
        last = np.append(position[1:] != position[:-1], True)
        return position[last], index[last]


_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _untrimmed_backend(tokenizer):
    """A copy of the tokenizer's Rust backend with offset trimming, padding and truncation off (made once each).

    Byte-level post-processors trim whitespace off offsets by default (" She" would cover only "She"), which
    would move a token's leading space outside it. Padding and truncation are whatever the last padded call left
    on the backend (a left-padded batch would put pad tokens before every shorter text): texts are encoded whole.
    """
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UsageError(
            f"{type(tokenizer).__name__} is a slow tokenizer without character offsets; rlt aligns teacher and "
            "student tokens by offsets and needs a fast (Rust) tokenizer, e.g. AutoTokenizer(..., use_fast=True)"
        )
    if tokenizer not in _BACKENDS:
        config = json.loads(backend.to_str())

        def untrim(node) -> None:
            if isinstance(node, dict):
                if "trim_offsets" in node:
                    node["trim_offsets"] = False
                for value in node.values():
                    untrim(value)
            elif isinstance(node, list):
                for value in node:
                    untrim(value)

        untrim(config.get("post_processor"))
        config["padding"] = config["truncation"] = None
        _BACKENDS[tokenizer] = Tokenizer.from_str(json.dumps(config))
    return _BACKENDS[tokenizer]


def tokenize_texts(tokenizer, texts: Sequence[str]) -> list[TokenizedText]:
    """Texts tokenised whole, adding no special tokens (a chat text carries its own), with character offsets.

    The ids are exactly `tokenizer(text, add_special_tokens=False)["input_ids"]`.
    """
    if not texts:
        return []
    encodings = _untrimmed_backend(tokenizer).encode_batch(list(texts), add_special_tokens=False)
    return [TokenizedText(list(e.ids), [tuple(o) for o in e.offsets]) for e in encodings]


def encode(tokenizer, text: str) -> list[int]:
    """The ids of a rendered chat text, as every stage tokenises it: whole, adding no special tokens. A chat
    template writes its own BOS; a tokenizer that also adds one (Llama's) would otherwise give two."""
    return tokenize_texts(tokenizer, [text])[0].ids


def decode(tokenizer, ids: Sequence[int]) -> str:
    """The exact characters token ids spell: special tokens kept, no clean-up of spaces."""
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


#: Left context, in tokens, for decoding a token of a non-canonical split; the last entry decodes whole prefixes,
#: exact but quadratic, and only for completions up to EXACT_DECODE_LIMIT tokens.
DECODE_CONTEXTS = (4, 32, None)
EXACT_DECODE_LIMIT = 2048


def sampled_texts(tokenizer, ids: Sequence[Sequence[int]]) -> list[tuple[str, TokenizedText] | None]:
    """The text of each list of sampled ids, with each token's characters in it; None where they cannot be placed.

    Sampled ids are nearly always the tokenizer's own split of their text, whose offsets are then used (one batched
    call). When a model sampled another split (say "\\n", "\\n" where the tokenizer writes "\\n\\n"), each token's
    characters come from decoding it after some tokens of left context, widened until the pieces spell the text.
    """
    ids = [list(i) for i in ids]
    texts = [decode(tokenizer, i) for i in ids]
    results: list[tuple[str, TokenizedText] | None] = []
    for sampled, text, natural in zip(ids, texts, tokenize_texts(tokenizer, texts), strict=True):
        if natural.ids != sampled:
            natural = None
            for context in DECODE_CONTEXTS:
                if context is None and len(sampled) > EXACT_DECODE_LIMIT:
                    break
                offsets = _offsets_by_decoding(tokenizer, sampled, context)
                if offsets is not None and (offsets[-1][1] if offsets else 0) == len(text):
                    natural = TokenizedText(sampled, offsets)
                    break
        results.append(None if natural is None else (text, natural))
    return results


def _offsets_by_decoding(tokenizer, ids: list[int], context: int | None) -> list[Span] | None:
    """Offsets from incremental decoding; tokens ending inside a character share its span. None if inconsistent."""
    offsets: list[Span] = []
    position, clean = 0, 0  # characters placed so far; first token after the last clean boundary
    for k in range(len(ids)):
        first = 0 if context is None else max(0, clean - context)
        before, through = decode(tokenizer, ids[first:clean]), decode(tokenizer, ids[first : k + 1])
        if through.endswith("\ufffd") and k + 1 < len(ids):
            continue  # token k ends inside a character: wait for the rest of it
        if not through.startswith(before):
            return None  # the context changed how earlier text decodes; the caller retries with more of it
        length = len(through) - len(before)
        offsets += [(position, position + length)] * (k + 1 - clean)
        position, clean = position + length, k + 1
    return offsets


@dataclass(frozen=True)
class ExplanationAlignment:
    """The explanation's tokens on both sides and the KL chunks pairing them."""

    teacher_span: Span
    student_span: Span
    chunks: np.ndarray  # [n, 2, 2]: (teacher token range, student token range) per chunk, in order
    dropped_tokens: int  # explanation tokens (teacher + student) in no chunk


def align_explanation(
    teacher: TokenizedText, teacher_chars: Span, student: TokenizedText, student_chars: Span
) -> ExplanationAlignment:
    """Tokens of the explanation (the same string at `teacher_chars` and `student_chars`) and its KL chunks."""
    if teacher_chars[1] - teacher_chars[0] != student_chars[1] - student_chars[0]:
        raise ValueError("the explanation must be the same text on both sides")
    teacher_span, student_span = teacher.tokens_within(teacher_chars), student.tokens_within(student_chars)
    chunks = np.zeros((0, 2, 2), dtype=np.int64)
    if teacher_span[0] < teacher_span[1] and student_span[0] < student_span[1]:
        t_positions, t_index = teacher.boundaries(teacher_span)
        s_positions, s_index = student.boundaries(student_span)
        # Boundaries both sides share, as positions within the explanation; consecutive ones delimit a chunk.
        _, t_shared, s_shared = np.intersect1d(
            t_positions - teacher_chars[0], s_positions - student_chars[0], assume_unique=True, return_indices=True
        )
        t_edges, s_edges = t_index[t_shared], s_index[s_shared]
        chunks = np.stack([np.stack([t_edges[:-1], t_edges[1:]], 1), np.stack([s_edges[:-1], s_edges[1:]], 1)], 1)
    in_chunks = int((chunks[:, :, 1] - chunks[:, :, 0]).sum())
    touching = teacher.tokens_touching(teacher_chars) + student.tokens_touching(student_chars)
    return ExplanationAlignment(teacher_span, student_span, chunks, touching - in_chunks)
