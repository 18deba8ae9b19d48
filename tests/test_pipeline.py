"""Traces, distillation, evaluation and the demo wiring, on tiny models."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from rlt.cli import main
from rlt.data import Problem
from rlt.measure.evaluate import check_answer, final_answer, pass_at_k
from rlt.records import recover_jsonl
from rlt.reward import RLTReward
from rlt.sampling.generation import SamplingConfig
from rlt.sampling.traces import best_and_worst, collect_traces, select_best
from rlt.testing import save_tiny, tiny_model, tiny_tokenizer

PROBLEMS = [
    Problem(f"What is {i} times 2?", f"{i} * 2 = {2 * i}. The answer is {2 * i}.", str(2 * i)) for i in range(4)
]
FAST = ["--report_to", "none", "--activation_checkpointing", "false", "--logging_steps", "1"]


@pytest.fixture(scope="module")
def reward():
    return RLTReward(tiny_model(0), tiny_tokenizer(), tiny_model(1))


def _keys(rows):
    return sorted((r["index"], r["sample"]) for r in rows)


def test_traces_resume_after_a_torn_write(reward, tmp_path):
    out = tmp_path / "traces.jsonl"
    sampling = SamplingConfig(max_new_tokens=8, batch_size=3)
    full = collect_traces(PROBLEMS, reward.teacher, reward, out, sampling, num_samples=2)
    assert _keys(full) == [(i, k) for i in range(4) for k in range(2)]
    # An interrupted run: three complete rows and half of a fourth.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    resumed = collect_traces(PROBLEMS, reward.teacher, reward, out, sampling, num_samples=2)
    on_disk = [json.loads(line) for line in out.read_text().splitlines()]
    assert _keys(resumed) == _keys(on_disk) == _keys(full)
    row = on_disk[-1]
    assert row["messages"][2]["content"].startswith("<|begin_of_thought|>\n\n" + row["explanation"])
    assert row["messages"][2]["content"].endswith(row["solution"] + "\n\n<|end_of_solution|>")
    assert isinstance(row["reward"], float)
    # A second rerun has nothing left to do.
    assert _keys(collect_traces(PROBLEMS, reward.teacher, reward, out, sampling, num_samples=2)) == _keys(full)
    assert len(out.read_text().splitlines()) == 8


def test_corrupt_middle_line_is_refused(tmp_path):
    out = tmp_path / "traces.jsonl"
    out.write_text('{"index": 0, "sample": 0}\n{oops\n{"index": 1, "sample": 0}\n')
    with pytest.raises(ValueError, match=r"traces\.jsonl:2: not valid JSON"):
        recover_jsonl(out)


def test_best_of_k_picks_the_highest_reward(reward, tmp_path):
    rows = collect_traces(PROBLEMS[:2], reward.teacher, reward, tmp_path / "t.jsonl",
                          SamplingConfig(max_new_tokens=8, temperature=1.0), num_samples=3)  # fmt: skip
    best = select_best(rows)
    assert [r["index"] for r in best] == [0, 1]
    for chosen in best:
        assert chosen["reward"] == max(r["reward"] for r in rows if r["index"] == chosen["index"])
    assert len({r["reward"] for r in rows}) > 2  # samples differ, so the choice is a real one


def test_an_unscoreable_sample_is_never_the_best_and_best_and_worst_share_their_questions():
    # a floor reward (-3.03) above a scored one (-7) must not win best-of-k
    rows = [{"key": "a", "index": 0, "reward": -7.0}, {"key": "a", "index": 0, "reward": -3.03, "aligned": False},
            {"key": "b", "index": 1, "reward": -2.0}, {"key": "b", "index": 1, "reward": -1.0},
            {"key": "c", "index": 2, "reward": -4.0}, {"key": "c", "index": 2, "reward": -4.0},
            {"key": "d", "index": 3, "reward": -5.0, "aligned": False}]  # fmt: skip
    assert [r["reward"] for r in select_best(rows)] == [-7.0, -1.0, -4.0, -5.0]
    best, worst = best_and_worst(rows)  # only "b" has two scored samples of different reward
    assert [(r["key"], r["reward"]) for r in best] == [("b", -1.0)]
    assert [(r["key"], r["reward"]) for r in worst] == [("b", -2.0)]


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("<|begin_of_thought|>..<|end_of_thought|><|begin_of_solution|>So 2 * 9 = 18.<|end_of_solution|>", "18",
         (True, "math-verify")),
        ("<|begin_of_solution|>The answer is 17.<|end_of_solution|>", "18", (False, "math-verify")),
        ("<|begin_of_solution|>Thus $\\boxed{\\frac{1}{2}}$<|end_of_solution|>", "0.5", (True, "math-verify")),
        ("no solution section, no number", "18", (False, "math-verify")),
        ("<|begin_of_solution|>No, it cannot.<|end_of_solution|>", "No", (True, "text")),
        ("<|begin_of_solution|>Yes.<|end_of_solution|>", "No", (False, "text")),
        # the answer framing's solution sentence, as distilled students learn to write it
        ("<|begin_of_solution|>The answer is no.<|end_of_solution|>", "No", (True, "text")),
        ("<|begin_of_solution|>The answer is 3 is the only value.<|end_of_solution|>", "3 is the only value",
         (True, "math-verify")),
        ("<|begin_of_solution|>anything", "", (False, "unchecked")),
    ],
)  # fmt: skip
def test_answer_extraction_and_checking(completion, gold, expected):
    assert check_answer(final_answer(completion), gold) == expected


def test_pass_at_k():
    assert pass_at_k(10, 0, 1) == 0 and pass_at_k(10, 10, 5) == 1
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    save_tiny(root / "student", seed=0)
    save_tiny(root / "teacher", seed=1)
    rows = [{"question": p.question, "solution": p.solution, "answer": p.answer} for p in PROBLEMS * 3]
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def models_and_data(root) -> list[str]:
    return [
        "--teacher",
        str(root / "teacher"),
        "--student",
        str(root / "student"),
        "--dataset",
        str(root / "rows.jsonl"),
    ]


def test_traces_distill_eval_cli(pipeline_dir, capsys):
    root = pipeline_dir
    traces = root / "traces" / "traces.jsonl"
    # --part all with --holdout 4: the held-out questions are traced too, which distill must say
    assert main(["traces", *models_and_data(root), "--out", str(traces), "--num_samples", "2", "--best_of",
                 "true", "--max_new_tokens", "8", "--holdout", "4"]) == 0  # fmt: skip
    assert len(traces.read_text().splitlines()) == 24
    assert len((traces.parent / "selected.jsonl").read_text().splitlines()) == 12
    parquet = root / "traces" / "traces.parquet"  # same journal: nothing is generated again
    assert main(["traces", *models_and_data(root), "--out", str(parquet), "--num_samples", "2",
                 "--max_new_tokens", "8", "--holdout", "4"]) == 0  # fmt: skip
    import pandas as pd

    frame = pd.read_parquet(parquet)
    assert len(frame) == 24 and list(frame["messages"][0][2].keys()) == ["role", "content"]
    assert main(["distill", "--model_name_or_path", str(root / "student"), "--traces", str(parquet),
                 "--output_dir", str(root / "distilled"), "--max_steps", "1", "--learning_rate", "1e-3",
                 "--per_device_train_batch_size", "2", "--save_strategy", "no", *FAST]) == 0  # fmt: skip
    before, after = (
        load_file(root / "student" / "model.safetensors"),
        load_file(root / "distilled" / "model.safetensors"),
    )
    assert any(not torch.equal(before[k], after[k]) for k in before)
    out = root / "eval" / "results.json"
    assert main(["eval", "--model", str(root / "distilled"), "--dataset", str(root / "rows.jsonl"), "--holdout", "4",
                 "--out", str(out), "--max_new_tokens", "8", "--num_samples", "2", "--k", "1", "2",
                 "--thought_samples", "2"]) == 0  # fmt: skip
    results = json.loads(out.read_text())
    assert results["questions"] == 4 and results["checked_with_math_verify"] == 4
    # the traces covered every row, so the held-out four were trained on: said loudly and recorded
    assert results["questions_distilled_on"] == 4
    assert "warning: 4 of the 4 evaluated questions are in" in capsys.readouterr().err
    settings = results["provenance"]["settings"]
    assert settings["data"]["holdout"] == 4 and settings["eval"]["thought_samples"] == 2
    distilled = json.loads((root / "distilled" / "distill.json").read_text())
    assert distilled["traces_provenance"]["kind"] == "traces" and len(distilled["traces_sha256"]) == 16
    assert distilled["held_out_questions_trained_on"] == 4  # and distill warned about it
    assert 0 <= results["pass@1_greedy"] <= results["pass@2"] + 1e-9 <= 1 + 1e-9
    low, high = results["solution_logprob_after_own_thought_interval"]
    assert low <= results["solution_logprob_after_own_thought"] <= high < 0
    assert all("solution_logprob_after_own_thought" in r for r in results["records"])
    assert "| pass@1_greedy |" in out.with_suffix(".md").read_text()
    assert "solution_logprob_after_own_thought" in out.with_suffix(".md").read_text()
    teacher_out = root / "eval" / "teacher.json"
    assert (
        main(
            [
                "eval",
                *models_and_data(root),
                "--holdout",
                "4",
                "--out",
                str(teacher_out),
                "--max_new_tokens",
                "8",
            ]
        )
        == 0
    )
    teacher = json.loads(teacher_out.read_text())
    assert teacher["questions"] == 4 and teacher["reward"] < 0


def test_demo_wiring_end_to_end(pipeline_dir, monkeypatch):
    monkeypatch.setattr("rlt.models.embedded_available", lambda name: False)  # the same judge on every machine
    root = pipeline_dir
    out = root / "demo"
    assert (
        main(
            [
                "demo",
                "--quick",
                "true",
                *models_and_data(root),
                "--output_dir",
                str(out),
                "--distill_traces",
                "4",
                "--holdout",
                "4",
            ]
        )
        == 0
    )
    report = (out / "report.md").read_text()
    for source in ("none", "reference", "warm-up teacher", "RL teacher"):
        assert f"| {source} | reward student |" in report and f"| {source} | judge |" in report
    assert "| RL teacher - warm-up teacher (4 problems) | judge | answer stripped |" in report
    assert "Per held-out question: Read by the reward student, as written: on r_SS the RL teacher " in report
    assert "| before distillation |" in report and "| after distillation |" in report
    # the review: nothing said it was a --quick run, nor that cut explanations paid the closing-tag penalty
    assert "**A `--quick` run: it checks the wiring and supports no conclusion.** 2 RL steps, 4 held-out" in report
    assert "| states the answer | closes it | unscoreable |" in report and "minus 1 when the explanation" in report
    assert (out / "judge" / "model.safetensors").exists()  # without gemma3-270m: distilled on the references
    assert "**It is not independent**: it starts from the reward student's weights" in report  # and says so
    data = json.loads((out / "report.json").read_text())
    assert data["teaching"]["judge"]["model"] == str(out / "judge")
    assert data["rl_steps"] == 2
    teaching = data["teaching"]
    assert teaching["problems"] == 4 and teaching["judges"] == ["reward student", "judge"]
    assert all(0 <= source["closes"] <= 1 for source in teaching["sources"].values())
    for by_judge in teaching["per_problem"].values():
        assert all(
            len(v[variant]["r_ss"]) == 4 for v in by_judge.values() for variant in ("as written", "answer stripped")
        )
    stripped = teaching["paired"]["RL teacher - warm-up teacher"]["judge"]["answer stripped"]
    assert stripped["reward"] is None  # an edited explanation is not the teacher's sample: no reward for it
    rl_vs_warmup = stripped["r_ss"]
    assert rl_vs_warmup["n"] + rl_vs_warmup["dropped"] == 4
    assert rl_vs_warmup["low"] <= rl_vs_warmup["mean"] <= rl_vs_warmup["high"]
    assert (out / "plots" / "reward.png").exists() and (out / "plots" / "heldout_r_ss.png").exists()


def test_solution_logprob_after_own_thought_recomputed_independently():
    """The continuous student measure, against a plain full-logits forward over the same text."""
    import torch

    from rlt.data import Problem
    from rlt.measure.evaluate import solution_logprob_after_own_thought
    from rlt.reward.formats import student_text
    from rlt.sampling.generation import SamplingConfig
    from rlt.testing import tiny_model, tiny_tokenizer

    model, tokenizer = tiny_model(0), tiny_tokenizer()
    problems = [Problem("What is 2 + 2?", "2 + 2 = 4.", "4"), Problem("What is 3 + 3?", "3 + 3 = 6.", "6")]
    measure = solution_logprob_after_own_thought(model, tokenizer, problems, 2, SamplingConfig(12, 1.0, 1.0, 4, 0))
    assert len(measure["thoughts"]) == 4 and any(measure["thoughts"])
    assert len(measure["correct"]) == 4 and all(isinstance(c, bool) for c in measure["correct"])
    expected = []
    for i, problem in enumerate(problems):
        values = []
        for thought in measure["thoughts"][2 * i : 2 * i + 2]:
            text = student_text(tokenizer, problem.question, thought, problem.solution)
            encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
            start = text.rindex(problem.solution)
            inside = [k for k, (s, e) in enumerate(offsets) if s >= start and e <= start + len(problem.solution)]
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
            values.append(sum(logp[k - 1, ids[k]].item() for k in inside) / len(inside))
        expected.append(sum(values) / 2)
    assert measure["per_question"] == pytest.approx(expected, abs=1e-4)
    assert measure["summary"]["mean"] == pytest.approx(sum(expected) / 2, abs=1e-4)
    # A question too long for the student is missing, not NaN in the summary (the review: one over-long question
    # turned the whole summary into mean nan, interval [nan, -1.4])
    model.config.max_position_embeddings = 400
    too_long = Problem("What is " + " + ".join(["1"] * 300) + "?", "It is 300.", "300")
    measure = solution_logprob_after_own_thought(model, tokenizer, [*problems, too_long], 2,
                                                 SamplingConfig(12, 1.0, 1.0, 4, 0))  # fmt: skip
    assert math.isnan(measure["per_question"][2])
    assert measure["summary"]["n"] == 2 and measure["summary"]["dropped"] == 1
    assert math.isfinite(measure["summary"]["mean"]) and math.isfinite(measure["summary"]["low"])


def test_the_demo_judges_with_a_model_no_teacher_trained_against_when_one_is_installed(monkeypatch, tmp_path):
    from rlt.tools.demo import DemoArguments, choose_judge

    distilled = tmp_path / "judge"
    monkeypatch.setattr("rlt.models.embedded_available", lambda name: name == "gemma3-270m")
    judge, described = choose_judge(DemoArguments(), distilled)
    assert judge == "gemma3-270m" and "another family" in described
    assert choose_judge(DemoArguments(judge="my/judge"), distilled) == ("my/judge", "`my/judge` (named by --judge)")
    # a reward student of that family cannot also be its independent judge
    judge, described = choose_judge(DemoArguments(student="gemma3-270m"), distilled)
    assert judge == str(distilled) and "not independent" in described
    monkeypatch.setattr("rlt.models.embedded_available", lambda name: False)
    judge, described = choose_judge(DemoArguments(), distilled)
    assert judge == str(distilled) and "make gemma" in described
