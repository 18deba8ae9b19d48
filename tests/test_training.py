"""Teacher warm-up and RL on tiny models: masking, weight updates, reward parity, resume, DDP."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlt.cli import main
from rlt.models import load_model
from rlt.reward import RLTReward
from rlt.testing import save_tiny
from rlt.train.sft import warmup_examples

FAST = ["--report_to", "none", "--activation_checkpointing", "false", "--logging_steps", "1", "--seed", "0"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    save_tiny(root / "student", seed=0)
    save_tiny(root / "teacher", seed=1)
    rows = [
        {"question": f"What is {i} + {i + 1}?", "solution": f"{i} + {i + 1} = {2 * i + 1}.", "answer": str(2 * i + 1)}
        for i in range(16)
    ]
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def train_args(root: Path, out: str, steps: int, *extra: str) -> list[str]:
    return [
        "train", "--model_name_or_path", str(root / "teacher"), "--student", str(root / "student"),
        "--dataset", str(root / "rows.jsonl"), "--output_dir", str(root / out), "--max_steps", str(steps),
        "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "12",
        "--learning_rate", "1e-3", "--save_steps", "1", *FAST, *extra,
    ]  # fmt: skip


def test_warmup_masks_every_prompt_token(workdir):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from rlt.data import load_problems

    model, tokenizer = load_model(str(workdir / "teacher"))
    problems, _ = load_problems(str(workdir / "rows.jsonl"))
    examples, dropped = warmup_examples(problems, tokenizer, "stratos", max_length=1024)
    assert dropped == 0
    config = SFTConfig(output_dir=str(workdir / "sft-probe"), per_device_train_batch_size=4, bf16=False,
                       completion_only_loss=True, report_to="none")  # fmt: skip
    dataset = Dataset.from_list(examples)
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
        ids, labels = ids[mask.bool()].tolist(), labels[mask.bool()].tolist()
        trained = [token for token, label in zip(ids, labels, strict=True) if label != -100]
        masked = [token for token, label in zip(ids, labels, strict=True) if label == -100]
        assert [label for label in labels if label != -100] == trained  # labels are the tokens themselves
        # Exactly the explanation (here: the solution), its closing tag and the end of turn are trained ...
        text = tokenizer.decode(trained)
        assert text.endswith("\n\n<|end_of_explanation|><|im_end|>\n") and "+" in text
        assert "<|begin_of_explanation|>" not in text and "What is" not in text and "system" not in text
        # ... and every token before it (system prompt, question, tagged solution, opening tag) is masked.
        assert ids[: len(masked)] == masked
        assert tokenizer.decode(masked).endswith("<|begin_of_explanation|>\n\n")


def test_warmup_cli_trains_and_saves(workdir):
    assert main(["warmup", "--model_name_or_path", str(workdir / "teacher"), "--dataset", str(workdir / "rows.jsonl"),
                 "--output_dir", str(workdir / "warm"), "--max_steps", "2", "--per_device_train_batch_size", "4",
                 "--learning_rate", "1e-3", "--save_strategy", "no", *FAST]) == 0  # fmt: skip
    before = load_file(workdir / "teacher" / "model.safetensors")
    after = load_file(workdir / "warm" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.fixture(scope="module")
def rl_run(workdir):
    assert main(train_args(workdir, "rl", 2)) == 0
    return workdir / "rl"


def test_train_changes_weights_and_logs_components(workdir, rl_run):
    before = load_file(workdir / "teacher" / "model.safetensors")
    after = load_file(rl_run / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    history = json.loads((rl_run / "trainer_state.json").read_text())["log_history"]
    steps = [h for h in history if "rlt/reward" in h]
    assert [h["step"] for h in steps] == [1, 2]
    for name in ("rlt/solution_logprob_mean", "rlt/kl_mean", "rlt/match_rate", "rlt/alignment_failures"):
        assert all(name in h for h in steps)
    assert sorted(p.name for p in rl_run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]


def test_trainer_reward_equals_offline_score(workdir, rl_run):
    """The reward GRPO used (policy log-probs from TRL's head) equals rlt's offline scoring of the same ids."""
    samples = [json.loads(line) for line in (rl_run / "completions.jsonl").read_text().splitlines()]
    first_step = [s for s in samples if s["step"] == 0]  # generated and scored before any update
    assert len(first_step) == 2
    teacher, tokenizer = load_model(str(workdir / "teacher"))
    student, _ = load_model(str(workdir / "student"))
    reward = RLTReward(student, tokenizer, teacher=teacher)
    for s in first_step:
        aligned = reward.align_ids(s["question"], s["solution"], s["prompt_ids"], s["completion_ids"])
        (offline,) = reward.score([aligned])
        assert abs(offline.reward - s["reward"]) <= 1e-4
        assert s["prompt_ids"] == list(reward.encoded_prompt(aligned_prompt(tokenizer, s)))


def test_an_unscoreable_group_is_ranked_below_the_scored_ones(workdir, tmp_path):
    """A failure is never a good reward: a prompt too long for the student gets, in training, a reward below every
    scored completion (the review: its floor, -2.919 at the demo's coefficients, equalled a teacher's mean)."""
    student = json.loads((workdir / "student" / "config.json").read_text())
    short_student = tmp_path / "short_student"
    save_tiny(short_student, seed=0)
    (short_student / "config.json").write_text(json.dumps({**student, "max_position_embeddings": 400}))
    long_question = "What is " + " + ".join(["1"] * 300) + "?"
    rows = [{"question": "What is 1 + 2?", "solution": "1 + 2 = 3.", "answer": "3"},
            {"question": long_question, "solution": "It is 300.", "answer": "300"}]  # fmt: skip
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = train_args(workdir, "unused", 1, "--per_device_train_batch_size", "8", "--completion_samples_per_step", "8")
    args[args.index("--student") + 1] = str(short_student)
    args[args.index("--dataset") + 1] = str(tmp_path / "rows.jsonl")
    args[args.index("--output_dir") + 1] = str(tmp_path / "rl")
    assert main(args) == 0
    samples = [json.loads(line) for line in (tmp_path / "rl" / "completions.jsonl").read_text().splitlines()]
    scored = [s["reward"] for s in samples if s["question"] == rows[0]["question"]]
    failed = [s for s in samples if s["question"] == rows[1]["question"]]
    assert len(scored) == 4 and len(failed) == 4 and None not in scored
    # the long prompt's whole group failed: recorded as no reward (before: the fill, as if it were a score), and
    # ranked with one value (advantage 0) below the batch's lowest scored reward
    assert all(s["reward"] is None and "could not score" in s["unscoreable"] for s in failed)
    assert [s["ranked_as"] for s in failed] == [pytest.approx(min(scored) - 1.0)] * 4
    history = json.loads((tmp_path / "rl" / "trainer_state.json").read_text())["log_history"]
    logged = next(h for h in history if "rlt/reward" in h)
    assert logged["rlt/alignment_failures"] == 4
    assert logged["rlt/reward"] == pytest.approx(sum(scored) / 4, abs=1e-3)  # the failures are not averaged in
    # nor in TRL's own logged reward and spread (before: the fills pulled the mean down and the spread up)
    mean = sum(scored) / 4
    assert logged["reward"] == pytest.approx(mean, abs=1e-3)
    assert logged["reward_std"] == pytest.approx((sum((r - mean) ** 2 for r in scored) / 3) ** 0.5, abs=1e-3)


def test_unscoreable_completions_sit_below_their_own_group():
    from rlt.train.trainer import rank_unscoreable_last

    nan = float("nan")
    rewards = torch.tensor([-1.0, -2.0, nan, -3.0, nan, nan, nan, nan, -5.0, nan, -4.0, -6.0])
    ranked = rank_unscoreable_last(rewards, 4, margin=0.5)
    assert ranked.tolist() == [-1.0, -2.0, -3.5, -3.0, -6.5, -6.5, -6.5, -6.5, -5.0, -6.5, -4.0, -6.0]
    assert rank_unscoreable_last(torch.tensor([nan, nan]), 2).tolist() == [0.0, 0.0]


def aligned_prompt(tokenizer, sample) -> str:
    from rlt.reward.formats import teacher_prompt

    return teacher_prompt(tokenizer, sample["question"], sample["solution"])


def test_train_with_a_student_that_tokenises_differently(workdir):
    """A BPE teacher and a byte-level student: GRPO runs, every component is logged, the trainer's reward is
    rlt's offline score of the same ids."""
    save_tiny(workdir / "byte_student", seed=0, vocab_size=256 + 3)
    argv = train_args(workdir, "mixed", 2)
    argv[argv.index("--student") + 1] = str(workdir / "byte_student")
    assert main(argv) == 0
    history = json.loads((workdir / "mixed" / "trainer_state.json").read_text())["log_history"]
    steps = [h for h in history if "rlt/reward" in h]
    assert [h["step"] for h in steps] == [1, 2]
    for name in ("rlt/solution_logprob_mean", "rlt/solution_logprob_min", "rlt/kl_mean", "rlt/kl_max",
                 "rlt/match_rate", "rlt/alignment_failures", "rlt/kl_edge_tokens_dropped"):  # fmt: skip
        assert all(name in h for h in steps), name
    assert all(h["rlt/alignment_failures"] == 0 for h in steps)
    teacher, tokenizer = load_model(str(workdir / "teacher"))
    student, student_tokenizer = load_model(str(workdir / "byte_student"))
    assert len(student_tokenizer) != len(tokenizer)
    reward = RLTReward(student, tokenizer, teacher=teacher, student_tokenizer=student_tokenizer)
    samples = [json.loads(line) for line in (workdir / "mixed" / "completions.jsonl").read_text().splitlines()]
    first_step = [s for s in samples if s["step"] == 0]
    assert len(first_step) == 2
    for s in first_step:
        (offline,) = reward.score(
            [reward.align_ids(s["question"], s["solution"], s["prompt_ids"], s["completion_ids"])]
        )
        assert abs(offline.reward - s["reward"]) <= 1e-4


def test_resume_continues_at_the_saved_step(workdir, rl_run):
    import shutil

    resumed = workdir / "resumed"
    shutil.copytree(rl_run / "checkpoint-1", resumed / "checkpoint-1")
    assert main(train_args(workdir, "resumed", 3)) == 0
    history = json.loads((resumed / "trainer_state.json").read_text())["log_history"]
    steps = [h["step"] for h in history if "rlt/reward" in h]
    assert steps == [1, 2, 3]  # step 1 from the checkpoint's history, then 2 and 3 trained now
    state = json.loads((resumed / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3


def test_plot_writes_pngs(rl_run, tmp_path):
    assert main(["plot", str(rl_run), str(tmp_path)]) == 0
    names = {p.name for p in tmp_path.glob("*.png")}
    assert {"reward.png", "solution_logprob.png", "explanation_kl.png", "completion_length.png"} <= names
    assert all((tmp_path / n).stat().st_size > 5000 for n in names)


def test_ddp_two_processes_each_score_their_slice(workdir):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rlt.cli",
               *train_args(workdir, "ddp", 1, "--completion_samples_per_step", "4")]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = workdir / "ddp"
    rank0 = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    rank1 = [json.loads(line) for line in (out / "completions.rank1.jsonl").read_text().splitlines()]
    assert len(rank0) == len(rank1) == 4
    # per_device 4 = one prompt x 4 generations on each rank: each rank scored its own prompt.
    assert len({r["question"] for r in rank0}) == 1 and len({r["question"] for r in rank1}) == 1
    assert rank0[0]["question"] != rank1[0]["question"]
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any("rlt/reward" in h for h in history)


def test_step_breakdown_from_the_logged_timings(rl_run):
    from benchmarks.grpo_step import breakdown
    from rlt.tools.plots import log_history

    result = breakdown(log_history(rl_run), skip_first=False)
    shares = result["median_share"]
    assert result["steps"] == [1, 2]
    assert all(0 < shares[name] < 1 for name in ("generation", "teacher log-probs", "student scoring"))
    assert 0 < result["median_reward_share"] < 1
    assert result["median_seconds"]["generation"] < result["median_step_seconds"]


def test_a_callback_can_stop_teacher_rl_and_the_model_is_saved(workdir, tmp_path):
    """`run_train(callbacks=...)`: how a timed run (the countdown benchmark on a lent GPU) stops at a wall-clock
    limit; what it trained is saved as after a finished run."""
    from transformers import TrainerCallback
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig, parse
    from rlt.train.trainer import run_train

    class StopAfterTwo(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step >= 2

    argv = train_args(workdir, "unused", 6)[1:]
    argv[argv.index("--output_dir") + 1] = str(tmp_path / "rl")
    configs = parse((ModelConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig), argv)
    run_train(*configs, callbacks=[StopAfterTwo()])
    assert json.loads((tmp_path / "rl" / "trainer_state.json").read_text())["global_step"] == 2
    assert (tmp_path / "rl" / "model.safetensors").exists()


def test_a_rerun_with_other_training_settings_is_refused_naming_them(workdir, tmp_path, capsys):
    """Before, a finished run rerun with another learning rate was skipped as finished (a larger --max_steps then
    resumed the old optimizer), and an RL run killed before its first checkpoint was trained over without a word,
    its samples mixed with the new run's. A start that failed before training protects nothing: it is not refused."""
    args = ["warmup", "--model_name_or_path", str(workdir / "teacher"), "--dataset", str(workdir / "rows.jsonl"),
            "--output_dir", str(tmp_path / "warm"), "--max_steps", "1", "--per_device_train_batch_size", "4",
            "--learning_rate", "1e-3", "--save_strategy", "no", *FAST]  # fmt: skip
    assert main(args) == 0
    args[args.index("--learning_rate") + 1] = "1e-4"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "other settings (training.learning_rate: 0.001 then, 0.0001 now)" in err and "--resume false" in err
    assert main([*args, "--resume", "false"]) == 0  # the fix the error names works
    (tmp_path / "failed").mkdir()  # a start that failed: only the record was written
    shutil.copy(tmp_path / "warm" / "rlt_provenance.json", tmp_path / "failed" / "rlt_provenance.json")
    args[args.index("--output_dir") + 1], args[args.index("--learning_rate") + 1] = str(tmp_path / "failed"), "1e-3"
    assert main(args) == 0
    argv = train_args(workdir, "unused", 1, "--save_strategy", "no")
    argv[argv.index("--output_dir") + 1] = str(tmp_path / "rl")
    assert main(argv) == 0
    (tmp_path / "rl" / "trainer_state.json").unlink()  # as if killed before its first save: only samples written
    (tmp_path / "rl" / "model.safetensors").unlink()
    argv[argv.index("--learning_rate") + 1] = "1e-4"
    assert main(argv) == 2 and "training.learning_rate: 0.001 then, 0.0001 now" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "coldstart"])
def test_a_completion_length_past_the_models_positions_is_refused(workdir, tmp_path, command, capsys):
    """Before, --max_completion_length 5000 on a model of 4096 positions was taken: generation runs on past them."""
    argv = train_args(workdir, "unused", 1)
    argv[argv.index("--output_dir") + 1] = str(tmp_path / "out")
    argv[argv.index("--max_completion_length") + 1] = "4090"
    if command == "coldstart":
        argv = [command, *argv[1 : argv.index("--student")], *argv[argv.index("--dataset") :]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--max_completion_length 4090 does not fit the model's 4096 positions after 16 of the 16 prompts" in err
    longest = int(re.search(r"the longest is (\d+) tokens\): use at most (\d+),", err)[1])
    assert 10 < longest < 1000 and f"use at most {4096 - longest}," in err and "Traceback" not in err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_a_resumed_run_keeps_each_steps_samples_once(workdir, tmp_path):
    """Before, completions.jsonl of a run killed after its checkpoint held the lost steps twice once resumed
    (steps [0, 0, 1, 1, 0, 0] after a restart)."""
    argv = train_args(workdir, "unused", 1, "--completion_samples_per_step", "1")
    argv[argv.index("--output_dir") + 1] = str(tmp_path / "rl")
    assert main(argv) == 0
    samples = tmp_path / "rl" / "completions.jsonl"
    lost = json.loads(samples.read_text().splitlines()[0]) | {"step": 1}  # a step the killed run never saved
    samples.write_text(samples.read_text() + json.dumps(lost) + "\n" + '{"step": 1, "quest')  # and a torn line
    argv[argv.index("--max_steps") + 1] = "2"
    assert main(argv) == 0  # resumes from checkpoint-1
    steps = [json.loads(line)["step"] for line in samples.read_text().splitlines()]
    assert steps == [0, 1] and json.loads(samples.read_text().splitlines()[1]) != lost


def test_inspect_rescores_a_runs_samples_with_the_runs_own_settings(workdir, tmp_path, capsys):
    """Before, `rlt inspect RUN/completions.jsonl` rescored with the default teacher and coefficients (−5.30 against
    the −4.28 logged in the demo) under one line of warning. Now with the run's starting teacher, its student and
    its coefficients (here λ × 0.3, not the default), and the page says so: step-0 rows get their logged reward."""
    argv = train_args(workdir, "unused", 1, "--kl_coeffs", "0.9", "0.009", "--completion_samples_per_step", "4")
    argv[argv.index("--output_dir") + 1] = str(tmp_path / "rl")
    assert main(argv) == 0
    page = tmp_path / "page.html"
    assert main(["inspect", str(tmp_path / "rl" / "completions.jsonl"), "--out", str(page)]) == 0
    data = json.loads(page.read_text().split('<script id="data" type="application/json">')[1].split("</script>")[0])
    assert (
        "rescored here with the run's starting teacher" in data["source"] and str(workdir / "teacher") in data["source"]
    )
    step0 = [r for r in data["rows"] if r["step"] == 0]
    assert len(step0) == 4 and all(abs(r["reward"] - r["logged_reward"]) <= 1e-4 for r in step0)
    # an explicit --teacher or --student is not replaced by the run's own with a line on stderr: refused, saying why
    rows = str(tmp_path / "rl" / "completions.jsonl")
    assert main(["inspect", rows, "--out", str(page), "--student", str(workdir / "teacher"), "--kl-coeffs", "3",
                 "0.03", "--no_teacher_entropy"]) == 2  # fmt: skip
    said = capsys.readouterr().err
    assert "which --student, --kl_coeffs, --teacher_entropy would not change; add --run_settings false" in said
    assert main(["inspect", rows, "--out", str(page), "--teacher", str(workdir / "teacher"), "--student",
                 str(workdir / "teacher"), "--run_settings", "false"]) == 0  # fmt: skip
    data = json.loads(page.read_text().split('<script id="data" type="application/json">')[1].split("</script>")[0])
    assert "rescored here with --teacher" in data["source"]
