"""The held-out teaching comparison: averaging over scored samples only, paired differences per judge and variant,
the causal answer-stripping check and the answer's own log-prob, on known values and on real (tiny) scoring."""

import math

import pytest

from rlt.data import Problem
from rlt.measure.teaching import (
    REWARD_STUDENT,
    VARIANTS,
    answer_logprob,
    compare,
    fixed_sources,
    markdown,
    measure,
    stripped_completion,
    verdict,
)
from rlt.reward import RewardConfig, RLTReward
from rlt.testing import tiny_model

PROBLEMS = [Problem(f"Q{i}", f"The answer is {i + 10}.", answer=str(i + 10)) for i in range(6)]


def measured_row(index: int, r_ss: float, stripped_r_ss: float | None = None, sample: int = 0, scored: bool = True,
                 states: bool = False, kl: float = 0.3) -> dict:  # fmt: skip
    """A `measure` row with r_SS (and the answer log-prob) `r_ss` as written and `stripped_r_ss` stripped."""
    stripped_r_ss = r_ss if stripped_r_ss is None else stripped_r_ss
    nan = math.nan

    def variant(value: float) -> dict:
        if not scored:
            return {"scored": False, "r_ss": nan, "answer_logprob": nan, "reward": nan, "kl_mean": nan}
        return {"scored": True, "r_ss": value, "answer_logprob": value / 2, "reward": value - kl, "kl_mean": kl}

    return {"index": index, "sample": sample, "states_answer": states, "closes": True,
            "as written": variant(r_ss), "answer stripped": variant(stripped_r_ss)}  # fmt: skip


def test_a_gain_that_comes_only_from_stating_the_answer_vanishes_when_the_statements_are_stripped():
    """The λ×0.3 demo's RL teacher gained r_SS by restating the answer shown in its prompt. The causal check
    rescored every problem without the statements, instead of picking the problems where no teacher states it."""
    measured = {
        "rl": {REWARD_STUDENT: [measured_row(i, -1.0 + (0.6 if i < 3 else 0.0), -1.0, states=i < 3) for i in range(6)]},
        "warm": {REWARD_STUDENT: [measured_row(i, -1.0) for i in range(6)]},
    }
    result = compare(measured, PROBLEMS, [("rl", "warm")], resamples=300)
    diff = result["paired"]["rl - warm"][REWARD_STUDENT]
    assert diff["as written"]["r_ss"]["mean"] == pytest.approx(0.3) and diff["as written"]["r_ss"]["n"] == 6
    assert diff["answer stripped"]["r_ss"]["mean"] == pytest.approx(0.0) and diff["answer stripped"]["r_ss"]["n"] == 6
    assert result["answer_statements_worth"]["rl"][REWARD_STUDENT]["r_ss"]["mean"] == pytest.approx(0.3)
    assert result["sources"]["rl"]["states_answer"] == 0.5
    text = verdict(result, "rl", "warm")
    assert "Read by the reward student, as written: on r_SS the rl beat the warm: +0.300 [" in text
    assert "Read by the reward student, answer stripped: on r_SS the rl did not separate from the warm" in text
    table = "\n".join(markdown(result))
    assert "| rl - warm (6 problems) | reward student | answer stripped | +0.000 [+0.000, +0.000] |" in table


def test_unscoreable_samples_are_counted_and_never_averaged_in():
    # the review: a row whose solution_logprob_mean was None crashed `compare` after all sampling was done, and
    # the floor reward of an unscoreable sample sat at the warm-up teacher's mean
    rows = [measured_row(0, -1.0), measured_row(0, -9.0, scored=False, sample=1)]
    rows += [measured_row(i, -2.0) for i in range(1, 5)] + [measured_row(5, -9.0, scored=False)]
    rows[-1]["as written"] |= {"r_ss": None, "answer_logprob": None}  # as a JSON row holds them
    measured = {"a": {REWARD_STUDENT: rows, "judge": rows},
                "b": {REWARD_STUDENT: [measured_row(i, -1.5) for i in range(6)],
                      "judge": [measured_row(i, -1.5) for i in range(6)]}}  # fmt: skip
    result = compare(measured, PROBLEMS, [("a", "b")], resamples=200)
    per_problem = result["per_problem"]["a"][REWARD_STUDENT]["as written"]["r_ss"]
    assert per_problem[:5] == [-1.0, -2.0, -2.0, -2.0, -2.0] and math.isnan(per_problem[5])
    source = result["sources"]["a"]
    assert source["unscoreable"] == {REWARD_STUDENT: 2, "judge": 2} and source["samples"] == 7
    summary = source[REWARD_STUDENT]["as written"]["r_ss"]
    assert summary["mean"] == pytest.approx(-1.8) and summary["n"] == 5 and summary["dropped"] == 1
    diff = result["paired"]["a - b"]["judge"]["as written"]["r_ss"]
    assert diff["n"] == 5 and diff["dropped"] == 1 and diff["mean"] == pytest.approx(-0.3)
    assert diff["wins"] == 1
    assert result["judges"] == [REWARD_STUDENT, "judge"]
    assert "| a | judge |" in "\n".join(markdown(result)) and "2 of 7" in "\n".join(markdown(result))


def test_stripped_completion_keeps_what_follows_the_explanation():
    row = {"explanation": "Add them. So the answer is 12.", "completion": "Add them. So the answer is 12.\n\n</e>"}
    assert stripped_completion(row, "12") == "Add them. \n\n</e>"
    unclosed = {"explanation": "The answer is 12", "completion": "The answer is 12"}
    assert stripped_completion(unclosed, "12") == ""
    lost = {"explanation": "The answer is 12.", "completion": "garbled text"}  # explanation not in the completion
    assert stripped_completion(lost, "12") == "garbled text"


def test_answer_logprob_reads_only_the_answer_tokens():
    per_token = {"solution_tokens": ["The", " answer", " is", " 1", "2", "."],
                 "solution_token_logprobs": [-0.1, -0.1, -0.1, -3.0, -1.0, -0.2]}  # fmt: skip
    assert answer_logprob(per_token, "12") == pytest.approx(-2.0)
    assert math.isnan(answer_logprob(per_token, "7")) and math.isnan(answer_logprob(per_token, None))


def test_measure_rescores_real_samples_and_strips_the_answer(tokenizer, student, teacher):
    reward = RLTReward(student, tokenizer, teacher, RewardConfig())
    problems = [
        Problem("What is 5 + 7?", "The answer is 12.", answer="12"),
        Problem("What is 2 + 2?", "The answer is 4.", answer="4", reasoning_trace="Add two and two."),
    ]
    sources = fixed_sources(problems, "<|end_of_explanation|>")
    sources["reference"][0] |= {"explanation": "5 + 7 = 12. So 12.",
                                "completion": "5 + 7 = 12. So 12.\n\n<|end_of_explanation|>"}  # fmt: skip
    rows = measure(sources["reference"], problems, reward)
    assert [r["states_answer"] for r in rows] == [True, False]
    first = rows[0]
    assert first["as written"]["scored"] and first["answer stripped"]["scored"]
    # stripping changed what the student read (only "So 12." is left), so its numbers changed too
    assert first["as written"]["r_ss"] != pytest.approx(first["answer stripped"]["r_ss"])
    for variant in VARIANTS:
        assert first[variant]["answer_logprob"] < 0
    # the KL and reward of an edited text would measure the edit, not the teacher: kept only as written
    assert math.isfinite(first["as written"]["kl_mean"]) and math.isnan(first["answer stripped"]["kl_mean"])
    assert math.isnan(first["answer stripped"]["reward"])
    # nothing to strip: the two variants are the same text, scored once
    for metric in ("r_ss", "answer_logprob"):
        assert rows[1]["as written"][metric] == rows[1]["answer stripped"][metric]
    rescored = reward.score_texts([{"question": problems[0].question, "solution": problems[0].solution,
                                    "explanation": sources["reference"][0]["completion"]}])[0][0]  # fmt: skip
    assert first["as written"]["reward"] == pytest.approx(rescored.reward)


def test_measure_leaves_out_a_sample_the_student_cannot_read(tokenizer, teacher):
    short = tiny_model(seed=3)
    short.config.max_position_embeddings = 400  # a long question no longer fits the student
    reward = RLTReward(short, tokenizer, teacher, RewardConfig())
    problems = [Problem("What is 1 + 1?", "The answer is 2.", answer="2"),
                Problem("What is " + " + ".join(["1"] * 300) + "?", "The answer is 300.", answer="300")]  # fmt: skip
    rows = measure(fixed_sources(problems, "<|end_of_explanation|>")["none"], problems, reward)
    assert rows[0]["as written"]["scored"] and not rows[1]["as written"]["scored"]
    assert math.isnan(rows[1]["as written"]["reward"]) and math.isnan(rows[1]["as written"]["r_ss"])
