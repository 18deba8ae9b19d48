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

import itertools
import json
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from rlt.errors import UsageError
from rlt.reward.formats import TagStyle, parse_explanation, student_segments, teacher_prompt

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


# -------------------------------------------------------------------------------- samples: both sequences of one


@dataclass
class AlignedSample:
    """Token ids of both sequences and what the reward reads in them (the `--details` columns).

    Spans are [start, end) token indices, and the log-prob of token i comes from the logits at i − 1. `kl_chunks`
    pairs a teacher token range with a student token range that cover the same explanation characters, in order.
    """

    teacher_input_ids: list[int]
    teacher_explanation_span: Span
    student_input_ids: list[int]
    student_explanation_span: Span
    student_solution_span: Span
    kl_chunks: np.ndarray  # [n, 2, 2], or the same as nested lists when read back from JSON
    matched: bool
    kl_edge_tokens_dropped: int = 0
    explanation: str = field(default="", repr=False)  # the text both models read as the explanation

    def to_dict(self) -> dict:
        details = asdict(self)
        del details["explanation"]  # a scored row already holds the completion it came from
        details["kl_chunks"] = np.asarray(self.kl_chunks).tolist()
        return details


class AlignmentError(ValueError):
    """Why a sample cannot be scored."""


@dataclass(frozen=True)
class _Completion:
    text: str
    tokens: TokenizedText  # the teacher's completion tokens and their characters in `text`


class SampleAligner:
    """Both sequences of a sample and what the reward reads in them, for one teacher tokenizer and one student's:
    where the teacher's turn and its explanation end, the student's chat around the explanation and the solution,
    the spans and KL chunks (`align_explanation`), and whether the models can read them (`check_fits`)."""

    def __init__(self, tokenizer, student_tokenizer, style: TagStyle):
        if getattr(student_tokenizer, "chat_template", None) is None:
            raise UsageError("the student's tokenizer has no chat template; the student reads the explanation in one")
        self.tokenizer, self.student_tokenizer, self.style = tokenizer, student_tokenizer, style
        # Where the teacher's turn ends: its special tokens, including added ones flagged special (e.g. <|eot_id|>).
        added = getattr(tokenizer, "added_tokens_decoder", {})
        self._special_ids = set(tokenizer.all_special_ids) | {i for i, token in added.items() if token.special}
        self._student_turn = lru_cache(maxsize=4096)(self._student_turn_uncached)
        self.encoded_prompt = lru_cache(maxsize=4096)(self._encode_prompt)

    def _encode_prompt(self, prompt: str) -> tuple[int, ...]:
        return tuple(encode(self.tokenizer, prompt))  # as the trainer does (`RLTGRPOTrainer._tokenize_prompts`)

    def _student_turn_uncached(self, question: str) -> tuple[str, str, str]:
        segments = student_segments(self.student_tokenizer, question, self.style)
        return segments.prefix, segments.middle, segments.suffix

    def explanation_end(self, completion: _Completion) -> tuple[int, bool]:
        """How many leading characters of the completion are the explanation, and whether its closing tag was found.

        The teacher's turn ends at its first special token (eos, padding); the explanation ends at the first
        closing tag within the turn, or with the turn when there is none.
        """
        tokens = completion.tokens
        turn_end = next(
            (start for t, (start, _) in zip(tokens.ids, tokens.offsets, strict=True) if t in self._special_ids),
            len(completion.text),
        )
        parsed = parse_explanation(completion.text[:turn_end], self.style)
        return parsed.end, parsed.matched

    def _align(
        self,
        questions: Sequence[str],
        solutions: Sequence[str],
        prompt_ids: Sequence[Sequence[int]],
        completions: Sequence[_Completion | None],
        models: tuple,
    ) -> list[AlignedSample | AlignmentError]:
        """Both sequences of every sample, the student chats tokenised in one call; an error where one fails."""
        layouts, texts = [], []
        for question, solution, completion in zip(questions, solutions, completions, strict=True):
            end, matched = self.explanation_end(completion) if completion else (0, False)
            explanation = completion.text[:end] if completion else ""
            prefix, middle, suffix = self._student_turn(question)
            texts.append(prefix + explanation + middle + solution + suffix)
            solution_start = len(prefix) + end + len(middle)
            layouts.append((explanation, matched, len(prefix), (solution_start, solution_start + len(solution))))
        samples: list[AlignedSample | AlignmentError] = []
        students = tokenize_texts(self.student_tokenizer, texts)
        for prompt, completion, student, layout in zip(prompt_ids, completions, students, layouts, strict=True):
            try:
                if completion is None:
                    raise AlignmentError("the sampled ids could not be placed in their decoded text")
                samples.append(self._sample(list(prompt), completion, student, *layout, models))
            except AlignmentError as e:
                samples.append(e)
        return samples

    def _sample(
        self,
        prompt_ids: list[int],
        completion: _Completion,
        student: TokenizedText,
        explanation: str,
        matched: bool,
        student_start: int,
        solution_chars: Span,
        models: tuple,
    ) -> AlignedSample:
        aligned = align_explanation(
            completion.tokens, (0, len(explanation)), student, (student_start, student_start + len(explanation))
        )
        n = len(prompt_ids)  # the teacher's completion tokens follow its prompt
        sample = AlignedSample(
            teacher_input_ids=prompt_ids + completion.tokens.ids,
            teacher_explanation_span=(aligned.teacher_span[0] + n, aligned.teacher_span[1] + n),
            student_input_ids=student.ids,
            student_explanation_span=aligned.student_span,
            student_solution_span=student.tokens_within(solution_chars),
            kl_chunks=aligned.chunks + np.array([[n, n], [0, 0]]),
            matched=matched,
            kl_edge_tokens_dropped=aligned.dropped_tokens,
            explanation=explanation,
        )
        check_fits(sample, *models)
        return sample

    def _located(self, completion_ids: Sequence[Sequence[int]]) -> list[_Completion | None]:
        return [_Completion(*found) if found else None for found in sampled_texts(self.tokenizer, completion_ids)]

    def align_sampled(
        self,
        questions: Sequence[str],
        solutions: Sequence[str],
        prompt_ids: Sequence[Sequence[int]],
        completion_ids: Sequence[Sequence[int]],
        models: tuple = (None, None),
    ) -> list[AlignedSample | AlignmentError]:
        """Align sampled completions (the teacher's own ids); the AlignmentError where a sample cannot be scored.
        `models` (student, teacher) are checked to fit each sample."""
        return self._align(questions, solutions, prompt_ids, self._located(completion_ids), models)

    def align_texts(self, rows: Sequence[dict], models: tuple = (None, None)) -> list[AlignedSample | AlignmentError]:
        """Align free-text rows (`question`, `solution`, `explanation` = the raw completion), each tokenised once."""
        texts = [r["explanation"] for r in rows]
        completions = [_Completion(*pair) for pair in zip(texts, tokenize_texts(self.tokenizer, texts), strict=True)]
        prompts = [self.encoded_prompt(teacher_prompt(self.tokenizer, r["question"], r["solution"], self.style))
                   for r in rows]  # fmt: skip
        return self._align([r["question"] for r in rows], [r["solution"] for r in rows], prompts, completions, models)

    def explanation_of(self, completion_ids: Sequence[int]) -> str:
        """The explanation text of sampled ids, as the student reads it (whether or not the sample can be scored):
        up to the closing tag, within the teacher's turn (its first special token, eos included, ends it)."""
        (completion,) = self._located([completion_ids])
        if completion is None:  # ids whose characters cannot be placed: the turn's text, decoded as a whole
            turn = list(itertools.takewhile(lambda t: t not in self._special_ids, completion_ids))
            return parse_explanation(decode(self.tokenizer, turn), self.style).text
        return completion.text[: self.explanation_end(completion)[0]]


def check_fits(sample: AlignedSample, student, teacher) -> None:
    """Raise AlignmentError for what the models cannot score: too long, or ids outside their vocabulary (a model
    that is None, the teacher during RL, is not checked)."""
    for name, model, ids in (
        ("student", student, sample.student_input_ids),
        ("teacher", teacher, sample.teacher_input_ids),
    ):
        # through a DeepSpeed engine (a sharded student), whose own `config` is DeepSpeed's
        config = getattr(getattr(model, "module", model), "config", None)
        limit = getattr(config, "max_position_embeddings", None)
        if limit is not None and len(ids) > limit:
            raise AlignmentError(f"{name} sequence of {len(ids)} tokens exceeds the model's {limit} positions")
        vocab = getattr(config, "vocab_size", None)
        if vocab is not None and ids and not 0 <= min(ids) <= max(ids) < vocab:
            raise AlignmentError(f"{name} sequence holds token ids outside the model's vocabulary of {vocab}")
    if not sample.student_explanation_span[0] >= 1 or not sample.teacher_explanation_span[0] >= 1:
        raise AlignmentError("an explanation span starts at token 0 and has no context to be scored from")


def token_texts(tokenizer, ids: Sequence[int]) -> list[str]:
    """Each token's text: what it adds to the decoded sequence, decoded incrementally. A character split over
    byte-level tokens appears whole at the token that completes it (the ones before add ""), not as replacement
    characters in each."""
    pieces, prefix, read = [], 0, 0
    for i in range(len(ids)):
        before = tokenizer.decode(ids[prefix:read])
        after = tokenizer.decode(ids[prefix : i + 1])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            pieces.append(after[len(before) :])
            prefix, read = read, i + 1
        else:
            pieces.append("")
    return pieces
