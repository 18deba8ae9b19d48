"""The held-out teaching comparison: per-problem averaging, paired differences and the verdict, on known values."""

import math

import pytest

from rlt.data import Problem
from rlt.reward import RewardConfig
from rlt.teaching import compare, markdown, verdict

CONFIG = RewardConfig(solution_coeffs=(1.0, 0.5), kl_coeffs=(1.0, 0.0))
PROBLEMS = [Problem(f"Q{i}", f"The answer is {i}.", answer=str(i)) for i in range(4)]


def row(index: int, lp: float, kl: float | None, explanation: str = "some steps", sample: int = 0) -> dict:
    reward = lp + 0.5 * lp - (kl or 0.0)
    return {"index": index, "sample": sample, "explanation": explanation, "reward": reward,
            "solution_logprob_mean": lp, "solution_logprob_min": lp, "kl_mean": kl, "kl_max": kl,
            "matched": True, "aligned": True}  # fmt: skip


def test_paired_differences_average_samples_and_skip_missing_kl():
    sources = {
        # two samples per problem: the per-problem value is their mean
        "teacher": [row(i, lp, 0.2, sample=k) for i in range(4) for k, lp in enumerate((-1.0 - i, -2.0 - i))],
        "none": [row(i, -3.0 - i, None, explanation="") for i in range(4)],
        "leaky": [row(i, -0.5, 0.4, explanation=f"so it is {i}") for i in range(4)],
    }
    result = compare(sources, PROBLEMS, CONFIG, [("teacher", "none"), ("leaky", "teacher")], resamples=200)
    assert result["per_problem"]["teacher"]["solution_logprob_mean"] == [-1.5, -2.5, -3.5, -4.5]
    assert result["per_problem"]["teacher"]["r_ss"] == pytest.approx([-2.25, -3.75, -5.25, -6.75])
    diff = result["paired"]["teacher - none"]
    # every problem: teacher r_SS (-1.5 - i) * 1.5 against none (-3 - i) * 1.5, a constant +2.25
    assert diff["r_ss"]["mean"] == pytest.approx(2.25) and diff["r_ss"]["low"] == pytest.approx(2.25)
    assert diff["r_ss"]["wins"] == 4 and diff["r_ss"]["n"] == 4
    assert diff["kl_mean"] is None  # none has no explanation, hence no KL to pair
    assert math.isnan(result["per_problem"]["none"]["kl_mean"][0])
    leaky_kl = result["paired"]["leaky - teacher"]["kl_mean"]
    assert leaky_kl["mean"] == pytest.approx(0.2) and leaky_kl["wins"] == 0  # higher KL loses
    assert result["sources"]["leaky"]["leakage_rate"] == 1.0 and result["sources"]["teacher"]["leakage_rate"] == 0.0
    assert "teacher beat the none: +2.250" in verdict(result, "teacher", "none")
    assert "better on 4 of 4 problems" in verdict(result, "teacher", "none")
    table = "\n".join(markdown(result))
    assert "| teacher - none | 2.250 [2.250, 2.250] |" in table and "| leaky |" in table


def test_verdict_says_when_intervals_straddle_zero():
    sources = {"a": [row(i, -1.0 + (0.5 if i % 2 else -0.5), 0.1) for i in range(4)],
               "b": [row(i, -1.0, 0.1) for i in range(4)]}  # fmt: skip
    result = compare(sources, PROBLEMS, CONFIG, [("a", "b")], resamples=500)
    assert "the a did not separate from the b" in verdict(result, "a", "b")


def test_a_gain_that_comes_only_from_stating_the_answer_is_shown_as_such():
    """The RL teacher of the λ×0.3 demo gained r_SS only where it restated the answer shown in its prompt."""
    problems = [Problem(f"Q{i}", f"The answer is {i}.", answer=str(i + 10)) for i in range(6)]
    sources = {  # problems 0-2: "rl" states the answer and gains 1.0; problems 3-5: it does not, and is even
        "rl": [row(i, -1.0, 0.3, f"so it is {i + 10}" if i < 3 else "steps") for i in range(6)],
        "warm": [row(i, -1.0 - (2 / 3 if i < 3 else 0.0), 0.3) for i in range(6)],
    }
    result = compare(sources, problems, CONFIG, [("rl", "warm")], resamples=300)
    assert result["paired"]["rl - warm"]["r_ss"]["mean"] == pytest.approx(0.5)  # 1.5 * 2/3 on half the problems
    clean = result["paired_without_answer"]["rl - warm"]["r_ss"]
    assert clean["n"] == 3 and clean["mean"] == pytest.approx(0.0) and clean["wins"] == 0
    text = verdict(result, "rl", "warm")
    assert "on r_SS the rl beat the warm: +0.500" in text
    assert "On the 3 problems where neither states the final answer, on r_SS the rl did not separate" in text
    assert "| rl - warm, neither states the answer (3) | 0.000 [0.000, 0.000] |" in "\n".join(markdown(result))
