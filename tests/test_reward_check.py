"""`rlt check-reward`: the ranking logic, the KL-scale sweep, the leakage count and the command end to end."""

import json
import math

import pytest

from rlt.cli import main
from rlt.data import Problem, frame
from rlt.measure.reward_check import (
    CheckRewardArguments,
    derangement,
    explanation_rows,
    ranking,
    references,
    rescored,
    summarize_sources,
)
from rlt.reward import RewardBreakdown, RewardConfig
from rlt.testing import save_tiny


def breakdown(lp: float, kl: float) -> RewardBreakdown:
    """A scored explanation with every solution log-prob `lp` and every chunk KL `kl` (NaN: empty explanation)."""
    reward = 1.01 * lp - (3.03 if math.isnan(kl) else 3.03 * kl)  # default coefficients; empty KL penalised
    return RewardBreakdown(reward, lp, lp, kl, kl, True)


def test_ranking_holds_only_when_both_paired_intervals_are_above_zero():
    good = {"reference": [3.0, 3.1, 2.9, 3.2], "shuffled": [2.0, 2.1, 1.9, 2.2], "none": [1.0, 1.1, 0.9, 1.2]}
    assert ranking(good, 200, 0)["holds"]
    tied = {**good, "shuffled": [1.0, 1.1, 0.9, 1.2]}  # shuffled no better than none
    result = ranking(tied, 200, 0)
    assert not result["holds"] and result["paired"]["shuffled - none"]["mean"] == 0
    assert result["paired"]["reference - shuffled"]["wins"] == 4


def test_the_kl_sweep_rescores_from_components():
    config = RewardConfig()
    # Reference helps the student most but pays a large KL; none pays the fixed empty-explanation penalty.
    scored = {
        "reference": [breakdown(-0.2, 1.5) for _ in range(6)],
        "shuffled": [breakdown(-1.0, 0.6) for _ in range(6)],
        "none": [breakdown(-1.5, math.nan) for _ in range(6)],
        "restated": [breakdown(0.0, 1.7) for _ in range(6)],  # the student's best guess, at a higher KL
    }
    at_one = rescored(scored["reference"], config, 1.0)
    assert at_one == pytest.approx([b.reward for b in scored["reference"]])
    assert rescored(scored["reference"], config, 0.0) == pytest.approx([-0.2 * 1.01] * 6)
    assert rescored(scored["none"], config, 0.0) == pytest.approx([-1.5 * 1.01] * 6)  # empty KL costs nothing at 0
    args = CheckRewardArguments(kl_scales=[0.0, 0.5, 1.0], resamples=200)
    explanations = {name: ["x"] * 6 for name in scored}
    report = summarize_sources(scored, scored, explanations, ["7"] * 6, config, args)
    # Without the KL: -0.202 > -1.01 > -1.515, the ranking holds. At scale 0.5: reference -2.47, shuffled -1.92.
    assert report["ranking_holds_at_kl_scales"] == [0.0]
    assert not report["ranking"]["holds"] and report["ranking_r_ss"]["holds"]
    # reference - restated = -0.202 + 3.03 * 0.2 * scale: below 0 at scale 0 (restating wins), 0.101 at 0.5, 0.404 at 1
    margin = {scale: report["kl_scale_sweep"][scale]["reference - restated"]["mean"] for scale in ("0.0", "0.5", "1.0")}
    assert margin == pytest.approx({"0.0": -0.202, "0.5": 0.101, "1.0": 0.404})
    assert report["restating_not_worse_at_kl_scales"] == [0.0]


def test_an_unscoreable_sample_is_left_out_not_ranked_by_its_floor():
    """The review: the floor (r_SS -1.010, reward -2.919 at the demo's coefficients) sat at a teacher's mean and above
    "none", so a failure looked like a middling explanation in every mean and ranking."""
    config = RewardConfig()
    floor = RewardBreakdown(-2.919, math.nan, math.nan, math.nan, math.nan, False, aligned=False)
    scored = {
        "reference": [breakdown(-1.0, 0.1) for _ in range(4)] + [floor],
        "shuffled": [breakdown(-2.0, 0.1) for _ in range(5)],
        "none": [breakdown(-3.0, math.nan) for _ in range(5)],
        "restated": [breakdown(-1.0, 0.2) for _ in range(5)],
    }
    args = CheckRewardArguments(kl_scales=[1.0], resamples=100)
    report = summarize_sources(scored, scored, {n: ["x"] * 5 for n in scored}, ["7"] * 5, config, args)
    reference = report["sources"]["reference"]
    assert reference["alignment_failures"] == 1 and reference["r_ss"]["n"] == 4 and reference["r_ss"]["dropped"] == 1
    assert reference["r_ss"]["mean"] == pytest.approx(-1.01) and reference["reward"]["mean"] == pytest.approx(-1.313)
    assert reference["closing_tag_rate"] == 1.0
    assert report["ranking"]["paired"]["reference - shuffled"]["n"] == 4
    assert rescored(scored["reference"], config, 1.0)[4] != rescored(scored["reference"], config, 1.0)[4]  # NaN


def test_the_causal_check_reports_what_the_answer_statements_were_worth():
    config = RewardConfig()
    scored = {n: [breakdown(-1.0, 0.1) for _ in range(4)] for n in ("reference", "shuffled", "none", "restated")}
    stripped = {**scored, "restated": [breakdown(-2.5, 0.1) for _ in range(4)]}
    args = CheckRewardArguments(kl_scales=[1.0], resamples=100)
    report = summarize_sources(scored, stripped, {n: ["x"] * 4 for n in scored}, ["7"] * 4, config, args)
    worth = report["sources"]["restated"]["answer_statements_worth_r_ss"]
    assert worth["mean"] == pytest.approx(1.5 * 1.01) and worth["wins"] == 4
    assert report["sources"]["restated"]["r_ss_answer_stripped"]["mean"] == pytest.approx(-2.525)
    assert report["sources"]["reference"]["answer_statements_worth_r_ss"]["mean"] == 0


def test_sources_of_framed_problems():
    problems = frame([Problem(f"Q{i}?", f"Work {i}.\nThe answer is {i}.", answer=str(i)) for i in range(5)])
    pairs = references(problems)
    assert pairs[2][0].solution == "The answer is 2." and pairs[2][1] == "Work 2.\nThe answer is 2."
    rows = explanation_rows(pairs, "</e>", seed=3)
    assert [r["explanation"] for r in rows["none"]] == ["</e>"] * 5
    assert rows["reference"][1]["explanation"] == "Work 1.\nThe answer is 1.\n\n</e>"
    assert rows["restated"][1]["explanation"] == "The answer is 1.\n\n</e>"
    shuffled = [r["explanation"] for r in rows["shuffled"]]
    assert all(s != r["explanation"] for s, r in zip(shuffled, rows["reference"], strict=True))
    assert sorted(shuffled) == sorted(r["explanation"] for r in rows["reference"])  # a permutation
    assert sorted(derangement(7, 1)) == list(range(7)) and all(i != j for i, j in enumerate(derangement(7, 1)))


def test_check_reward_command_end_to_end(tmp_path):
    model = save_tiny(tmp_path / "tiny")
    rows = [{"question": f"What is {i} + {i}?", "solution": f"{i} + {i} = {2 * i}.", "answer": str(2 * i)}
            for i in range(6)]  # fmt: skip
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "check.json"
    assert main(["check-reward", "--dataset", str(tmp_path / "rows.jsonl"), "--teacher", str(model), "--student",
                 str(model), "--out", str(out), "--resamples", "100", "--sample_teacher", "true",
                 "--max_new_tokens", "8"]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert set(report["sources"]) == {"reference", "shuffled", "none", "restated", "teacher"}
    assert report["problems"] == 6 and report["framing"] == "auto"
    assert report["sources"]["restated"]["leakage_rate"] == 1  # auto frames these rows as "The answer is 2i."
    assert report["sources"]["none"]["kl_mean"] is None and report["sources"]["none"]["leakage_rate"] == 0
    assert report["sources"]["reference"]["leakage_rate"] == 1  # "i + i = 2i." states the answer
    assert set(report["kl_scale_sweep"]) == {"0.0", "0.1", "0.3", "0.5", "1.0", "2.0"}
    assert report["sources"]["restated"]["r_ss_answer_stripped"] is not None
    assert "ranking_r_ss_answer_stripped" in report
    assert "reference > shuffled > none" in out.with_suffix(".md").read_text()
