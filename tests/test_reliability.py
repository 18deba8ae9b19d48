"""Adversarial completions, kill -9 and resume, and seeded reproducibility."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlt.cli import main
from rlt.reward import AlignedSample, RewardConfig, RLTReward
from rlt.reward.formats import STRATOS, teacher_prompt
from rlt.testing import LoggedMetrics, save_tiny, tiny_model, tiny_tokenizer

QUESTION = "A farmer has 17 sheep and all but 9 run away. How many are left?"
SOLUTION = "All but 9 run away, so 9 are left.\nThe answer is 9."
TAG_PIECES = [*STRATOS.all_tags, "<|", "|>", "<|end_of_expl", "anation|>", "</think>", "<think>", "\n\n", " ",
              "<|im_end|>"]  # fmt: skip

completion_text = st.lists(
    st.one_of(
        st.text(max_size=40),  # arbitrary unicode, surrogates excluded by hypothesis
        st.sampled_from(TAG_PIECES),
        st.just(SOLUTION),
        st.sampled_from(["", "   ", "\n\n\n", "\t"]),
        st.builds(lambda s, n: s * n, st.sampled_from(["step ", "🍎", "<|end_of_explanation|>"]), st.integers(1, 150)),
    ),
    max_size=8,
).map("".join)

STATS: Counter = Counter()


def penalised_formula(b) -> float:
    """The reward from a breakdown's own components: empty spans and a missing tag at their penalties."""

    def fill(x: float, penalty: float) -> float:
        return penalty if math.isnan(x) else x

    return (
        fill(b.solution_logprob_mean, -1) + 0.01 * fill(b.solution_logprob_min, -1)
        - 3 * fill(b.kl_mean, 1) - 0.03 * fill(b.kl_max, 1) - (0 if b.matched else 1)
    )  # fmt: skip


@pytest.fixture(scope="module")
def reward():
    return RLTReward(tiny_model(0), tiny_tokenizer(), tiny_model(1), RewardConfig(token_budget=4096))


@settings(max_examples=35, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(completions=st.lists(completion_text, min_size=8, max_size=8))
def test_adversarial_text_completions(reward, completions):
    rows = [{"question": QUESTION, "solution": SOLUTION, "explanation": c} for c in completions]
    breakdowns, samples = reward.score_texts(rows)
    for completion, b, sample in zip(completions, breakdowns, samples, strict=True):
        assert math.isfinite(b.reward)
        assert b.aligned == isinstance(sample, AlignedSample)
        if b.aligned:  # the teacher's turn ends at a special token: a closing tag after it does not count
            assert b.matched == (STRATOS.explanation[1] in completion.split("<|im_end|>")[0])
        else:  # too long for the model: scored at the floor, every reduction and the tag penalised, with the reason
            assert b.reward == reward.floor().reward
            assert b.alignment_error == str(sample) and "exceeds the model's" in b.alignment_error
        assert b.reward == pytest.approx(penalised_formula(b), abs=1e-9)  # each failure costs its penalty
        STATS["text completions"] += 1
        STATS["missing end tag (penalised)"] += not b.matched
        STATS["empty explanation (KL penalised)"] += b.aligned and math.isnan(b.kl_mean)
        STATS["alignment failures (floor reward)"] += not b.aligned


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.lists(st.integers(0, 1023), max_size=60), min_size=8, max_size=8))
def test_adversarial_sampled_ids_through_the_trl_interface(reward, ids):
    """The training path: arbitrary token ids (special tokens included) as if sampled by the policy."""
    tokenizer = reward.tokenizer
    prompt = teacher_prompt(tokenizer, QUESTION, SOLUTION)
    logged = LoggedMetrics()
    rewards = reward(
        prompts=[prompt] * len(ids),
        completions=[tokenizer.decode(c, skip_special_tokens=True) for c in ids],
        completion_ids=ids,
        question=[QUESTION] * len(ids),
        solution=[SOLUTION] * len(ids),
        log_metric=logged,
    )
    # a completion that cannot be scored gets TRL's "no reward", None; every other reward is a finite number
    assert len(rewards) == len(ids) and all(r is None or math.isfinite(r) for r in rewards)
    assert sum(r is None for r in rewards) == logged["rlt/alignment_failures"]
    # the end-tag match rate is over the scored completions; with none scored it is not logged
    scored = [c for c, r in zip(ids, rewards, strict=True) if r is not None]
    matched = [STRATOS.explanation[1] in tokenizer.decode(c) for c in scored]
    assert logged.get("rlt/match_rate") == (pytest.approx(sum(matched) / len(matched)) if matched else None)
    STATS["sampled-id completions"] += len(ids)
    STATS["alignment failures (floor reward)"] += int(logged["rlt/alignment_failures"])


def test_property_counts(capsys):
    """Runs after the two property tests: at least 500 completions went through the reward."""
    total = STATS["text completions"] + STATS["sampled-id completions"]
    with capsys.disabled():
        print(f"\nadversarial completions: {dict(STATS)}")
    assert total >= 500


# ------------------------------------------------------------------------------------------- kill and resume


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability")
    save_tiny(root / "student", seed=0)
    save_tiny(root / "teacher", seed=1)
    rows = [{"question": f"What is {i} + {2 * i}?", "solution": f"{i} + {2 * i} = {3 * i}."} for i in range(24)]
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def train_argv(root: Path, out: str, steps: int) -> list[str]:
    return [
        "train", "--model_name_or_path", str(root / "teacher"), "--student", str(root / "student"),
        "--dataset", str(root / "rows.jsonl"), "--output_dir", str(root / out), "--max_steps", str(steps),
        "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "24",
        "--learning_rate", "1e-3", "--save_steps", "1", "--seed", "7", "--report_to", "none",
        "--activation_checkpointing", "false", "--logging_steps", "1",
    ]  # fmt: skip


def questions_by_step(out: Path) -> dict[int, list[str]]:
    """The prompts each step trained on; a step re-run after a kill counts by its last run."""
    by_step: dict[int, list[str]] = {}
    last_seen: dict[int, int] = {}
    for i, line in enumerate((out / "completions.jsonl").read_text().splitlines()):
        row = json.loads(line)
        if row["step"] not in by_step or last_seen[row["step"]] != i - 1:
            by_step[row["step"]] = []
        by_step[row["step"]].append(row["question"])
        last_seen[row["step"]] = i
    return by_step


def kill_when(command: list[str], ready, timeout: float = 300) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_train_resumes_after_kill_with_the_same_data_order(workdir):
    assert main(train_argv(workdir, "uninterrupted", 5)) == 0
    killed = workdir / "killed"
    cli = [sys.executable, "-m", "rlt.cli", *train_argv(workdir, "killed", 5)]
    kill_when(cli, lambda: (killed / "checkpoint-2" / "trainer_state.json").exists())
    checkpoints = sorted(int(p.name.split("-")[1]) for p in killed.glob("checkpoint-*"))
    assert checkpoints and max(checkpoints) < 5, "the kill must land mid-run"
    assert main(train_argv(workdir, "killed", 5)) == 0
    state = json.loads((killed / "checkpoint-5" / "trainer_state.json").read_text())
    assert state["global_step"] == 5
    assert [h["step"] for h in state["log_history"] if "rlt/reward" in h] == [1, 2, 3, 4, 5]
    assert questions_by_step(killed) == questions_by_step(workdir / "uninterrupted")


def test_a_finished_run_rerun_trains_nothing_and_a_larger_max_steps_continues_it(workdir, capsys):
    out = workdir / "rerun"
    assert main(train_argv(workdir, "rerun", 2)) == 0
    saved = (out / "model.safetensors").stat().st_mtime_ns
    assert main(train_argv(workdir, "rerun", 2)) == 0  # before: resumed, trained step 3, overwrote the model
    assert "already holds a finished run: nothing trained" in capsys.readouterr().out
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    assert (out / "model.safetensors").stat().st_mtime_ns == saved
    assert main(train_argv(workdir, "rerun", 3)) == 0  # asking for more steps continues the run
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3


def test_a_run_is_not_resumed_under_other_settings(workdir, capsys):
    """Before: a finished run re-run with other data or another student said 'nothing trained' (or resumed)."""
    out = workdir / "settings"
    assert main(train_argv(workdir, "settings", 1)) == 0
    record = json.loads((out / "rlt_provenance.json").read_text())
    assert record["kind"] == "teacher RL" and record["settings"]["data"]["dataset"].endswith("rows.jsonl")
    capsys.readouterr()
    assert main([*train_argv(workdir, "settings", 2), "--student", str(workdir / "teacher")]) == 2
    err = capsys.readouterr().err
    assert "was produced with other settings (student: '" in err and "--resume false" in err
    assert main([*train_argv(workdir, "settings", 2), "--max_solution_chars", "30"]) == 2
    assert "(data.max_solution_chars: None then, 30 now)" in capsys.readouterr().err  # only what differs
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1  # nothing trained
    assert main([*train_argv(workdir, "settings", 2), "--resume", "false", "--max_solution_chars", "30"]) == 0


def test_max_steps_zero_is_refused(workdir, capsys):
    assert main(train_argv(workdir, "zero", 0)) == 2  # before: trained one step
    assert "--max_steps 0: give a positive count" in capsys.readouterr().err
    assert not (workdir / "zero" / "model.safetensors").exists()


def test_traces_survive_kill_minus_nine(workdir):
    out = workdir / "traces" / "traces.jsonl"
    argv = ["traces", "--teacher", str(workdir / "teacher"), "--student", str(workdir / "student"),
            "--dataset", str(workdir / "rows.jsonl"), "--out", str(out), "--num_samples", "2",
            "--max_new_tokens", "16", "--batch_size", "2"]  # fmt: skip

    def some_rows_written() -> bool:
        return out.exists() and out.read_text().count("\n") >= 6

    kill_when([sys.executable, "-m", "rlt.cli", *argv], some_rows_written)
    partial = out.read_text().count("\n")
    assert 6 <= partial < 48
    assert main(argv) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # every line is valid JSON
    keys = [(r["index"], r["sample"]) for r in rows]
    assert sorted(keys) == [(i, k) for i in range(24) for k in range(2)]
    assert len(set(keys)) == len(keys) == 48


# -------------------------------------------------------------------------------------------- reproducibility


def test_seeded_score_runs_are_bit_identical(workdir, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"question": QUESTION, "solution": SOLUTION, "explanation": e}) + "\n"
                            for e in ["Nine stay.\n\n<|end_of_explanation|>", "", "no tag", "🍎" * 30]))  # fmt: skip
    outputs = []
    for run in range(2):
        out = tmp_path / f"scored{run}.jsonl"
        assert main(["score", str(rows), "--out", str(out), "--teacher", str(workdir / "teacher"),
                     "--student", str(workdir / "student")]) == 0  # fmt: skip
        outputs.append([json.loads(line)["reward"] for line in out.read_text().splitlines()])
    assert outputs[0] == outputs[1]


def test_seeded_train_runs_are_bit_identical(workdir):
    rewards = []
    for run in range(2):
        assert main(train_argv(workdir, f"repro{run}", 2)) == 0
        samples = (workdir / f"repro{run}" / "completions.jsonl").read_text().splitlines()
        history = json.loads((workdir / f"repro{run}" / "trainer_state.json").read_text())["log_history"]
        rewards.append(
            ([json.loads(s)["reward"] for s in samples], [h["rlt/reward"] for h in history if "rlt/reward" in h])
        )
    assert rewards[0] == rewards[1]


def test_only_safetensors_weights_are_written(workdir):
    out = workdir / "repro0"
    weights = {p.name for p in out.rglob("*") if p.suffix in {".safetensors", ".bin", ".pt", ".pth", ".pkl"}}
    assert "model.safetensors" in weights
    pickled_weights = {n for n in weights if n.endswith(".bin") and n != "training_args.bin"}
    assert not pickled_weights, pickled_weights
