import math

import pytest
import torch

from benchmarks.verify_scored import recompute
from rlt.reward import RewardConfig, RLTReward, rlt_reward
from rlt.reward.align import decode as spell
from rlt.reward.formats import R1, STRATOS, student_text, teacher_prompt
from rlt.testing import LoggedMetrics, tiny_model, tiny_tokenizer

QUESTION = "How many apples does she have left?"
SOLUTION = "She had 7 and ate 3, so 7 - 3 = 4.\nThe answer is 4."
END = STRATOS.explanation[1]

ADVERSARIAL = {
    "plain": "She starts with 7 apples.\n\nEating 3 leaves 7 - 3 = 4.\n\n" + END,
    "solution_verbatim": SOLUTION + "\n\n" + END,
    "tag_fragments": "<|end_of_expl <|begin_of_solution|> <| |> </think>\n\n" + END,
    "unicode": "Ünïcödé → ∑ 7−3=4 🍎🍎🍎🍎 中文\n\n" + END,
    "whitespace": "   \n\n  spaced out  \n\n   " + END + "   ",
    "empty": END,
    "missing_end_tag": "I never close the explanation",
    "two_end_tags": "first part" + END + "second part" + END,
    "trailing_text": "explained" + END + "<|im_end|>\nuser: more text",
    "very_long": "step " * 1500 + END,
}


def assert_components(breakdown, values, reward, atol=1e-5):
    for name, expected in values.items():
        got = getattr(breakdown, name)
        assert (math.isnan(got) and math.isnan(expected)) or abs(got - expected) <= atol, (name, got, expected)
    assert abs(breakdown.reward - reward) <= atol


@pytest.fixture(scope="module")
def reward(student, teacher, tokenizer):
    return RLTReward(student, tokenizer, teacher=teacher)


def assert_alignment(sample, teacher_tokenizer, student_tokenizer, question, solution, completion, sampled=None):
    """The invariants of a scored sample (rlt.reward.align): natural student tokens, spans by the edge rule, chunks."""
    explanation = sample.explanation
    # The student sequence is its own tokenizer's split of the distillation text, whole.
    text = student_text(student_tokenizer, question, explanation, solution)
    assert sample.student_input_ids == student_tokenizer(text, add_special_tokens=False)["input_ids"]
    # The teacher sequence is the prompt, then the completion tokenised once.
    prompt_ids = teacher_tokenizer(teacher_prompt(teacher_tokenizer, question, solution))["input_ids"]
    completion_ids = sampled or teacher_tokenizer(completion, add_special_tokens=False)["input_ids"]
    assert sample.teacher_input_ids == prompt_ids + completion_ids
    assert completion.startswith(explanation)

    # Spans hold whole tokens inside their text: the explanation (both sides) and the solution.
    assert spell(student_tokenizer, sample.student_input_ids[slice(*sample.student_explanation_span)]) in explanation
    assert spell(teacher_tokenizer, sample.teacher_input_ids[slice(*sample.teacher_explanation_span)]) in explanation
    # Both tiny tokenizers split "\n\n" from the text on either side: the solution is scored whole.
    assert spell(student_tokenizer, sample.student_input_ids[slice(*sample.student_solution_span)]) == solution
    # KL chunks: in order, disjoint, inside the spans, and each pair spells the same text.
    previous = (sample.teacher_explanation_span[0], sample.student_explanation_span[0])
    for (t0, t1), (s0, s1) in sample.kl_chunks:
        assert previous[0] <= t0 < t1 <= sample.teacher_explanation_span[1]
        assert previous[1] <= s0 < s1 <= sample.student_explanation_span[1]
        assert spell(teacher_tokenizer, sample.teacher_input_ids[t0:t1]) == spell(
            student_tokenizer, sample.student_input_ids[s0:s1]
        )
        previous = (t1, s1)
    pieces = [spell(student_tokenizer, sample.student_input_ids[s0:s1]) for _, (s0, s1) in sample.kl_chunks]
    assert "".join(pieces) in explanation


@pytest.mark.parametrize("kind", sorted(ADVERSARIAL))
def test_components_recomputed_independently(reward, student, teacher, tokenizer, kind):
    completion = ADVERSARIAL[kind]
    (breakdown,), (sample,) = reward.score_texts(
        [{"question": QUESTION, "solution": SOLUTION, "explanation": completion}]
    )
    assert breakdown.aligned and math.isfinite(breakdown.reward)
    assert breakdown.matched == (END in completion)
    assert sample.explanation == completion.split(END)[0]
    assert_alignment(sample, tokenizer, tokenizer, QUESTION, SOLUTION, completion)
    # One tokenizer: the solution is scored whole, and every chunk is the same ids on both sides: one token, or
    # the byte tokens of one character (the emoji of "unicode").
    assert tokenizer.decode(sample.student_input_ids[slice(*sample.student_solution_span)]) == SOLUTION
    for (t0, t1), (s0, s1) in sample.kl_chunks:
        assert sample.teacher_input_ids[t0:t1] == sample.student_input_ids[s0:s1]
        assert t1 - t0 == 1 or "\ufffd" in tokenizer.decode(sample.student_input_ids[s0 : s0 + 1])
    values, expected = recompute(sample, student, teacher, reward.config)
    assert_components(breakdown, values, expected)


def test_empty_explanation_scores_the_spec_penalty(reward):
    (b,), _ = reward.score_texts([{"question": QUESTION, "solution": SOLUTION, "explanation": END}])
    assert math.isnan(b.kl_mean) and b.matched
    assert b.reward == pytest.approx(b.solution_logprob_mean + 0.01 * b.solution_logprob_min - 3.03, abs=1e-6)


def test_batch_size_invariance(student, teacher, tokenizer):
    rows = [
        {"question": QUESTION + str(i), "solution": SOLUTION, "explanation": c}
        for i, c in enumerate(ADVERSARIAL.values())
    ]
    per_sample = RLTReward(student, tokenizer, teacher, RewardConfig(token_budget=1)).score_texts(rows)[0]
    batched = RLTReward(student, tokenizer, teacher, RewardConfig(token_budget=1 << 20)).score_texts(rows)[0]
    for a, b in zip(per_sample, batched, strict=True):
        assert abs(a.reward - b.reward) <= 1e-5


def test_sampled_ids_are_the_teacher_sequence(reward, teacher, tokenizer):
    """Training path: the teacher sequence holds the ids as sampled; the student reads their text."""
    prompt = teacher_prompt(tokenizer, QUESTION, SOLUTION)
    prompt_ids = tokenizer(prompt)["input_ids"]
    torch.manual_seed(0)
    generated = teacher.generate(torch.tensor([prompt_ids]), max_new_tokens=40, do_sample=True, top_k=0)
    eos = tokenizer.eos_token_id
    sampled = [t for t in generated[0, len(prompt_ids) :].tolist() if t not in tokenizer.all_special_ids]
    assert len(sampled) >= 10
    end_ids = tokenizer(END, add_special_tokens=False)["input_ids"]
    cases = {
        "missing_tag": (sampled, len(sampled)),
        "tag_then_eos": ([*sampled[:10], *end_ids, eos], 10),
        "tag_midway": (sampled[:5] + end_ids + sampled[5:], 5),
        "eos_without_tag": ([*sampled[:8], eos], 8),
    }
    for name, (completion_ids, explanation_tokens) in cases.items():
        sample = reward.align_ids(QUESTION, SOLUTION, prompt_ids, completion_ids)
        assert sample.teacher_input_ids == prompt_ids + completion_ids, name
        assert sample.explanation == tokenizer.decode(completion_ids[:explanation_tokens]), name
        t0, t1 = sample.teacher_explanation_span
        assert sample.teacher_input_ids[t0:t1] == completion_ids[: t1 - t0], name
        assert t1 - t0 <= explanation_tokens and t0 == len(prompt_ids), name
        assert sample.matched == (name in ("tag_then_eos", "tag_midway")), name
        natural = tokenizer(student_text(tokenizer, QUESTION, sample.explanation, SOLUTION), add_special_tokens=False)
        assert sample.student_input_ids == natural["input_ids"], name


def test_a_split_the_tokenizer_would_not_make(reward, student, teacher, tokenizer):
    """A policy may sample a non-canonical split (character by character here, and an emoji byte by byte): the
    teacher keeps its ids, the student reads the same characters tokenised its own way, and chunks bridge them."""
    prompt_ids = tokenizer(teacher_prompt(tokenizer, QUESTION, SOLUTION))["input_ids"]
    text = "The answer 🍎 minus three.\n\n"
    vocab = tokenizer.get_vocab()
    by_char = [vocab[tokenizer.convert_ids_to_tokens(tokenizer(c, add_special_tokens=False)["input_ids"])[0]]
               for c in "The answer "]  # fmt: skip
    emoji_bytes = tokenizer("🍎", add_special_tokens=False)["input_ids"]
    rest = tokenizer(" minus three.\n\n" + END, add_special_tokens=False)["input_ids"]
    completion_ids = [*by_char, *emoji_bytes, *rest, tokenizer.eos_token_id]
    assert tokenizer.decode(completion_ids).startswith(text)
    sample = reward.align_ids(QUESTION, SOLUTION, prompt_ids, completion_ids)
    assert sample.explanation == text and sample.matched
    assert sample.teacher_input_ids == prompt_ids + completion_ids
    completion = tokenizer.decode(completion_ids)
    t0, t1 = sample.teacher_explanation_span
    assert (t0, t1) == (len(prompt_ids), len(prompt_ids) + len(completion_ids) - 1 - len(END_IDS(tokenizer)))
    assert completion.startswith(sample.explanation)
    # Where the student's tokens are coarser than the teacher's character-wise ones, a chunk spans several.
    assert any(t1 - t0 > s1 - s0 for (t0, t1), (s0, s1) in sample.kl_chunks)
    assert_alignment(sample, tokenizer, tokenizer, QUESTION, SOLUTION, completion, completion_ids)
    (breakdown,) = reward.score([sample])
    values, expected = recompute(sample, student, teacher, reward.config)
    assert_components(breakdown, values, expected, atol=1e-4)


def test_tokens_merged_with_the_closing_tag_are_dropped_and_counted(reward, tokenizer):
    """ "four." + closing tag: "." merges with "<" on both sides, so that token is in no chunk, on either side."""
    (b,), (sample,) = reward.score_texts(
        [{"question": QUESTION, "solution": SOLUTION, "explanation": "Seven minus three is four." + END}]
    )
    merged = [tokenizer.convert_ids_to_tokens(i) for i in tokenizer(".<", add_special_tokens=False)["input_ids"]]
    assert merged == [".<"]  # the premise: the tokenizer merges them
    assert b.kl_edge_tokens_dropped == sample.kl_edge_tokens_dropped == 2  # teacher ".<" and student ".<"
    assert (
        spell(tokenizer, sample.student_input_ids[slice(*sample.student_explanation_span)])
        == "Seven minus three is four"
    )
    assert "".join(spell(tokenizer, sample.student_input_ids[s0:s1]) for _, (s0, s1) in sample.kl_chunks) == (
        "Seven minus three is four"
    )


def test_the_teacher_turn_ends_at_any_special_token():
    """An added token flagged special (Llama 3's <|eot_id|> style) ends the turn even if not a named special."""
    from tokenizers import AddedToken

    tokenizer = tiny_tokenizer.__wrapped__()  # a fresh copy: this test adds a token
    tokenizer.add_tokens([AddedToken("<|eot|>", special=True)])
    teacher = tiny_model(1)
    teacher.resize_token_embeddings(len(tokenizer))
    reward = RLTReward(tiny_model(0), tokenizer, teacher)
    prompt_ids = tokenizer(teacher_prompt(tokenizer, QUESTION, SOLUTION))["input_ids"]
    ids = tokenizer("Seven minus three<|eot|>junk after the turn", add_special_tokens=False)["input_ids"]
    assert reward.explanation_of(ids) == "Seven minus three"
    assert not reward.align_ids(QUESTION, SOLUTION, prompt_ids, ids).matched


def END_IDS(tokenizer):
    return tokenizer(END, add_special_tokens=False)["input_ids"]


def test_end_tag_inside_a_merged_token(reward, tokenizer):
    # A token that straddles the explanation and the closing tag is left out of the explanation, never split.
    prompt_ids = tokenizer(teacher_prompt(tokenizer, QUESTION, SOLUTION))["input_ids"]
    ids = tokenizer("abc" + END, add_special_tokens=False)["input_ids"]
    sample = reward.align_ids(QUESTION, SOLUTION, prompt_ids, ids)
    explanation = tokenizer.decode(sample.student_input_ids[slice(*sample.student_explanation_span)])
    assert "abc".startswith(explanation) and sample.matched and sample.explanation == "abc"


def test_trl_interface_logs_every_component(reward, tokenizer):
    prompt = teacher_prompt(tokenizer, QUESTION, SOLUTION)
    completions = [ADVERSARIAL["plain"], ADVERSARIAL["missing_end_tag"]]
    ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in completions]
    logged = LoggedMetrics()
    rewards = reward(
        prompts=[prompt] * 2,
        completions=completions,
        completion_ids=ids,
        question=[QUESTION] * 2,
        solution=[SOLUTION] * 2,
        log_metric=logged,
        answer=["4", "4"],
    )
    offline, _ = reward.score_texts(
        [{"question": QUESTION, "solution": SOLUTION, "explanation": c} for c in completions]
    )
    assert rewards == pytest.approx([b.reward for b in offline], abs=1e-5)
    assert set(logged) == {
        "rlt/reward",
        "rlt/solution_logprob_mean",
        "rlt/solution_logprob_min",
        "rlt/kl_mean",
        "rlt/kl_max",
        "rlt/match_rate",
        "rlt/alignment_failures",
        "rlt/kl_edge_tokens_dropped",
    }
    assert logged["rlt/match_rate"] == 0.5 and logged["rlt/alignment_failures"] == 0


def test_too_long_is_an_alignment_failure_not_an_exception(student, teacher, tokenizer):
    reward = RLTReward(student, tokenizer, teacher)
    long = "step " * (student.config.max_position_embeddings + 10) + END
    logged = LoggedMetrics()
    prompt = teacher_prompt(tokenizer, QUESTION, SOLUTION)
    rewards = reward(
        [prompt],
        [long],
        [tokenizer(long, add_special_tokens=False)["input_ids"]],
        [QUESTION],
        [SOLUTION],
        log_metric=logged,
    )
    # TRL's "no reward" (the trainer ranks it below its group), never the floor as if it were a score
    assert rewards == [None]
    assert logged["rlt/alignment_failures"] == 1 and "rlt/reward" not in logged  # no mean of nothing
    (floor,) = reward.score([None])
    assert floor.reward == pytest.approx(-1.01 - 3.03 - 1) and not floor.aligned


def test_options_schulman_and_no_teacher_entropy(student, teacher, tokenizer):
    row = {"question": QUESTION, "solution": SOLUTION, "explanation": ADVERSARIAL["plain"]}
    (base,), (sample,) = RLTReward(student, tokenizer, teacher).score_texts([row])
    for config in (RewardConfig(schulman_kl=True), RewardConfig(teacher_entropy=False)):
        (b,), _ = RLTReward(student, tokenizer, None if not config.teacher_entropy else teacher, config).score_texts(
            [row]
        )
        values, expected = recompute(sample, student, teacher, config)
        assert_components(b, values, expected)
        assert b.kl_mean >= 0  # k3 is non-negative; so is a cross-entropy
        assert b.solution_logprob_mean == pytest.approx(base.solution_logprob_mean, abs=1e-6)
    assert base.kl_mean != pytest.approx(values["kl_mean"], abs=1e-3)


def test_rlt_reward_formula_by_hand():
    config = RewardConfig()
    b = rlt_reward(torch.tensor([-1.0, -3.0]), torch.tensor([-0.5, -0.1]), torch.tensor([-1.0, -0.2]), True, config)
    # r_SS = -2 + 0.01 * -3 ; KL = [0.5, 0.1] -> mean 0.3, max 0.5
    assert b.reward == pytest.approx(-2 - 0.03 - 3 * 0.3 - 0.03 * 0.5)
    b = rlt_reward(torch.zeros(0), torch.zeros(0), torch.zeros(0), False, config)
    assert b.reward == pytest.approx(-1.01 - 3.03 - 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"solution_coeffs": (-1.0, 0.01)}, "solution_coeffs"),
        ({"kl_coeffs": (3.0,)}, "kl_coeffs"),
        ({"student_temperature": 0.0}, "student_temperature"),
        ({"teacher_temperature": -1.0}, "teacher_temperature"),
        ({"missing_end_tag_penalty": 1.0}, "missing_end_tag_penalty"),
        ({"token_budget": 0}, "token_budget"),
    ],
)
def test_invalid_config_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RewardConfig(**kwargs)


def test_r1_style(student, teacher, tokenizer):
    reward = RLTReward(student, tokenizer, teacher, style=R1)
    (b,), (sample,) = reward.score_texts(
        [{"question": QUESTION, "solution": SOLUTION, "explanation": "why</explanation>"}]
    )
    assert b.matched and tokenizer.decode(sample.student_input_ids[slice(*sample.student_explanation_span)]) == "why"
    assert "<think>" in tokenizer.decode(sample.student_input_ids)


def test_student_is_frozen(reward):
    assert not any(p.requires_grad for p in reward.student.parameters())
    assert not reward.student.training
    assert tiny_model is not None
