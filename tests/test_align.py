"""Character-offset alignment between a teacher and a student that tokenise differently (rlt.reward.align)."""

import math

import pytest
from hypothesis import HealthCheck, given, settings

from benchmarks.verify_scored import recompute
from rlt.reward import AlignmentError, RewardConfig, RLTReward
from rlt.reward.align import TokenizedText, align_explanation, sampled_texts, tokenize_texts
from rlt.reward.formats import student_segments, student_text, teacher_prompt
from rlt.testing import LoggedMetrics, tiny_model, tiny_tokenizer
from rlt.train.sft import chat_examples, chat_prompt_completion
from tests.test_reliability import completion_text
from tests.test_reward import ADVERSARIAL, END, QUESTION, SOLUTION, assert_alignment, assert_components

BYTES = 256 + 3  # the byte alphabet and three special tokens


@pytest.fixture(scope="module")
def student_tokenizer():
    return tiny_tokenizer(BYTES)  # no merges at all: every character is its UTF-8 bytes, unlike the teacher's BPE


@pytest.fixture(scope="module")
def mixed(teacher, tokenizer, student_tokenizer):
    """A BPE teacher and a byte-level student: the same ids mean different text on the two sides."""
    student = tiny_model(seed=0, vocab_size=BYTES)
    return RLTReward(student, tokenizer, teacher, RewardConfig(token_budget=4096), student_tokenizer=student_tokenizer)


def test_the_two_tokenizers_really_differ(tokenizer, student_tokenizer):
    text = ADVERSARIAL["plain"]
    assert tokenizer(text)["input_ids"] != student_tokenizer(text)["input_ids"]
    assert len(tokenizer(text)["input_ids"]) < len(student_tokenizer(text)["input_ids"])


@pytest.mark.parametrize("kind", sorted(ADVERSARIAL))
def test_different_tokenizers_recomputed_independently(mixed, teacher, tokenizer, student_tokenizer, kind):
    completion = ADVERSARIAL[kind]
    (breakdown,), (sample,) = mixed.score_texts(
        [{"question": QUESTION, "solution": SOLUTION, "explanation": completion}]
    )
    if kind == "very_long":  # 7,500 bytes: longer than the byte-level student's 4,096 positions
        assert not breakdown.aligned and isinstance(sample, AlignmentError)
        assert breakdown.alignment_error == str(sample) and "exceeds the model's 4096 positions" in str(sample)
        return
    assert breakdown.aligned and breakdown.matched == (END in completion)
    assert_alignment(sample, tokenizer, student_tokenizer, QUESTION, SOLUTION, completion)
    if sample.explanation.strip():
        assert len(sample.kl_chunks), "a non-empty explanation shares at least one chunk"
    if kind in ("plain", "solution_verbatim"):  # English words: the teacher's BPE merges them
        assert any(s1 - s0 > t1 - t0 for (t0, t1), (s0, s1) in sample.kl_chunks)
    values, expected = recompute(sample, mixed.student, teacher, mixed.config)
    assert_components(breakdown, values, expected, atol=1e-4)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(completions=completion_text.map(lambda c: [c]))
def test_invariants_hold_for_any_text(mixed, tokenizer, student_tokenizer, completions):
    (breakdown,), (sample,) = mixed.score_texts(
        [{"question": QUESTION, "solution": SOLUTION, "explanation": c} for c in completions]
    )
    if isinstance(sample, AlignmentError):  # longer than the tiny models' positions
        assert not breakdown.aligned and breakdown.alignment_error == str(sample)
        return
    assert_alignment(sample, tokenizer, student_tokenizer, QUESTION, SOLUTION, completions[0])
    # Dropped = explanation tokens on either side (touching its characters) that no chunk holds.
    chunked = sum(t1 - t0 + s1 - s0 for (t0, t1), (s0, s1) in sample.kl_chunks)
    length = len(sample.explanation)
    teacher_touching = TokenizedText(*_offsets(tokenizer, completions[0])).tokens_touching((0, length))
    prefix = student_segments(student_tokenizer, QUESTION).prefix
    student_text_ = student_text(student_tokenizer, QUESTION, sample.explanation, SOLUTION)
    student_touching = TokenizedText(*_offsets(student_tokenizer, student_text_)).tokens_touching(
        (len(prefix), len(prefix) + length)
    )
    assert breakdown.kl_edge_tokens_dropped == teacher_touching + student_touching - chunked >= 0
    assert math.isfinite(breakdown.reward)


def _offsets(tokenizer, text):
    (tokens,) = tokenize_texts(tokenizer, [text])
    return tokens.ids, tokens.offsets


def test_rewards_do_not_depend_on_the_batch(mixed, teacher, tokenizer, student_tokenizer):
    rows = [{"question": QUESTION + str(i), "solution": SOLUTION, "explanation": c}
            for i, c in enumerate(ADVERSARIAL.values())]  # fmt: skip
    one_by_one = RLTReward(mixed.student, tokenizer, teacher, RewardConfig(token_budget=1),
                           student_tokenizer=student_tokenizer).score_texts(rows)[0]  # fmt: skip
    batched = mixed.score_texts(rows)[0]
    assert [b.reward for b in one_by_one] == pytest.approx([b.reward for b in batched], abs=1e-5)


def test_trl_interface_with_different_tokenizers(mixed, tokenizer):
    prompt = teacher_prompt(tokenizer, QUESTION, SOLUTION)
    completions = [ADVERSARIAL["plain"], ADVERSARIAL["unicode"], ADVERSARIAL["missing_end_tag"]]
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in completions]
    logged = LoggedMetrics()
    rewards = mixed(prompts=[prompt] * 3, completions=completions, completion_ids=ids, question=[QUESTION] * 3,
                    solution=[SOLUTION] * 3, log_metric=logged)  # fmt: skip
    offline, _ = mixed.score_texts(
        [{"question": QUESTION, "solution": SOLUTION, "explanation": c} for c in completions]
    )
    assert rewards == pytest.approx([b.reward for b in offline], abs=1e-5)
    assert logged["rlt/match_rate"] == pytest.approx(2 / 3) and logged["rlt/alignment_failures"] == 0
    assert logged["rlt/kl_edge_tokens_dropped"] >= 0


def test_one_tokenizer_and_clean_edges_is_the_per_token_kl(tokenizer):
    """With one tokenizer every chunk is one token and nothing is dropped when the edges do not merge."""
    (teacher,) = tokenize_texts(tokenizer, ["Seven minus three is four.\n\n"])
    student_text_ = "<|im_start|>assistant\n" + "Seven minus three is four.\n\n" + "<|im_end|>"
    (student,) = tokenize_texts(tokenizer, [student_text_])
    start = len("<|im_start|>assistant\n")
    aligned = align_explanation(teacher, (0, 28), student, (start, start + 28))
    assert aligned.dropped_tokens == 0
    assert aligned.chunks[:, 0].tolist() == [[i, i + 1] for i in range(len(teacher.ids))]
    assert [student.ids[s0] for s0, _ in aligned.chunks[:, 1].tolist()] == teacher.ids


def test_sampled_text_places_every_token(tokenizer):
    emoji = tokenizer("🍎", add_special_tokens=False)["input_ids"]
    by_char = [tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in "answer"]
    assert len(emoji) > 1 and tokenizer("answer", add_special_tokens=False)["input_ids"] != by_char  # not canonical
    ((text, tokens),) = sampled_texts(tokenizer, [emoji + by_char])
    assert text == "🍎answer"
    # The emoji's byte tokens share its one character; no boundary falls inside it.
    assert tokens.offsets == [(0, 1)] * len(emoji) + [(i, i + 1) for i in range(1, 7)]


def test_reward_distillation_and_eval_read_the_same_student_tokens(tokenizer):
    """The reward scores the ids `rlt distill` trains on, and `rlt eval` prompts with their prefix."""
    from rlt.reward.formats import student_messages, student_prompt

    reward = RLTReward(tiny_model(0), tokenizer, tiny_model(1))
    (_,), (sample,) = reward.score_texts(
        [{"question": QUESTION, "solution": SOLUTION, "explanation": ADVERSARIAL["plain"]}]
    )
    messages = student_messages(QUESTION, sample.explanation, SOLUTION)
    ((example,), dropped) = chat_examples([chat_prompt_completion(tokenizer, messages)], tokenizer, None)
    assert dropped == 0 and example["input_ids"] == sample.student_input_ids
    first_trained = example["completion_mask"].index(1)
    assert first_trained <= sample.student_explanation_span[0]
    (prompt,) = tokenize_texts(tokenizer, [student_prompt(tokenizer, QUESTION)])
    assert prompt.ids == sample.student_input_ids[:first_trained]
    assert student_text(tokenizer, QUESTION, sample.explanation, SOLUTION) == "".join(
        chat_prompt_completion(tokenizer, messages)
    )


def test_offsets_ignore_padding_left_on_the_backend(tokenizer):
    """A padded call (TRL pads prompts, left) leaves padding enabled on the Rust backend; a batch encoded with that
    state would start shorter texts with pad tokens."""
    from rlt.testing import tiny_tokenizer

    padded = tiny_tokenizer.__wrapped__()  # a fresh tokenizer, not the shared cached one
    padded.backend_tokenizer.enable_padding(direction="left", pad_id=padded.pad_token_id, pad_token="<|endoftext|>")
    short, long = tokenize_texts(padded, ["a b", "a much longer text"])
    assert short.ids == tokenizer("a b", add_special_tokens=False)["input_ids"]
    assert long.ids == tokenizer("a much longer text", add_special_tokens=False)["input_ids"]


def test_distillation_drops_a_chat_whose_answer_starts_past_max_length(tokenizer):
    from rlt.reward.formats import student_messages

    pair = chat_prompt_completion(tokenizer, student_messages(QUESTION, "Because.", SOLUTION))
    (tokens,) = tokenize_texts(tokenizer, ["".join(pair)])
    first_answer_token = tokens.tokens_within((len(pair[0]), len(pair[0]) + len(pair[1])))[0]
    kept, dropped = chat_examples([pair], tokenizer, max_length=first_answer_token + 1)
    assert dropped == 0 and len(kept) == 1 and kept[0]["completion_mask"][first_answer_token] == 1
    assert chat_examples([pair], tokenizer, max_length=first_answer_token) == ([], 1)
