"""DeepSpeed ZeRO for real, on CPU processes: two ranks over gloo, tiny models, every training command.

Each run goes through `accelerate launch` as a user's would, under `tests/distributed_probe.py`, which records per
rank what the launch set up (the distributed type, the ZeRO stage, how the weights are held) and the trained
policy's log-probs of fixed tokens. DeepSpeed's CPU accelerator (`DS_ACCELERATOR=cpu`) runs ZeRO's real collectives
(all-gather, reduce-scatter) between the processes. The persistence threshold is 0 so that ZeRO-3 releases every
weight after use, as it does a 7B model's: the tiny models' weights would otherwise all stay whole after the first
step (DeepSpeed keeps weights under 100k elements), which would hide the placeholders a partitioned model leaves.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlt.models import load_model
from rlt.reward import AlignmentError, RLTReward
from rlt.reward.formats import student_messages
from rlt.reward.students import MultiStudentReward, Student
from rlt.testing import save_tiny
from tests.distributed_probe import PROBE_IDS, token_logprobs

pytest.importorskip("deepspeed", reason="make install puts DeepSpeed in .venv (CPU-safe, without its dependencies)")

PROBE = Path(__file__).with_name("distributed_probe.py")
FAST = ["--report_to", "none", "--activation_checkpointing", "false", "--logging_steps", "1", "--seed", "0"]
#: Seconds a two-rank run may take before it counts as hung (a run takes ~30 s on 2 cores).
HANG_SECONDS = 300


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("zero")
    save_tiny(root / "teacher", seed=1)
    save_tiny(root / "student", seed=0)
    save_tiny(root / "byte_student", seed=0, vocab_size=256 + 3)  # tokenises differently from the teacher
    # a student with 400 positions, which the long question below overflows: its samples cannot be scored
    save_tiny(root / "short_student", seed=0)
    config = json.loads((root / "short_student" / "config.json").read_text())
    (root / "short_student" / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 400}))
    rows = [
        {"question": f"What is {i} + {i + 1}?", "solution": f"{i} + {i + 1} = {2 * i + 1}.", "answer": str(2 * i + 1)}
        for i in range(16)
    ]
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    long_question = "What is " + " + ".join(["1"] * 300) + "?"
    mixed = [rows[0], {"question": long_question, "solution": "It is 300.", "answer": "300"}]
    (root / "one_long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mixed))
    for stage in (1, 2, 3):
        accelerate_config(root, stage)
    return root


def accelerate_config(root: Path, stage: int) -> Path:
    """An accelerate config for DeepSpeed ZeRO-`stage` over two CPU processes (fp32; batch sizes from the trainer)."""
    deepspeed = {
        "zero_optimization": {"stage": stage, "stage3_param_persistence_threshold": 0},
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": False},
        "zero_allow_untested_optimizer": True,
    }
    (root / f"zero{stage}.json").write_text(json.dumps(deepspeed))
    # use_cpu must stay false: with it, accelerate silently runs plain DDP instead (MULTI_CPU)
    zero3 = "\n  zero3_init_flag: true" if stage == 3 else ""
    path = root / f"zero{stage}.yaml"
    path.write_text(f"compute_environment: LOCAL_MACHINE\ndistributed_type: DEEPSPEED\ndeepspeed_config:\n"
                    f"  deepspeed_config_file: {root / f'zero{stage}.json'}{zero3}\nnum_machines: 1\n"
                    "num_processes: 2\nuse_cpu: false\n")  # fmt: skip
    return path


def launch(config: Path, argv: list[str], returncode: int = 0) -> str:
    """`accelerate launch` two ranks of an rlt command under `config`; its output. A run past HANG_SECONDS fails."""
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), str(PROBE), *argv,
               *FAST]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        output, _ = process.communicate(timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher and both ranks
        output, _ = process.communicate()
        pytest.fail(f"a rank hung: no exit after {HANG_SECONDS} s\n{output[-3000:]}")
    assert process.returncode == returncode, output[-5000:]
    return output


def probes(out: Path) -> list[dict]:
    records = [json.loads((out / f"probe.rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["process_index"] for r in records] == [0, 1]
    return records


def assert_zero(records: list[dict], stage: int, partitioned: bool = True) -> None:
    """The run really was DeepSpeed ZeRO-`stage` on two ranks, its policy partitioned (stage 3) or whole."""
    for r in records:
        assert (r["distributed_type"], r["zero_stage"], r["num_processes"]) == ("DEEPSPEED", stage, 2)
        assert r["optimizer"] == ("DeepSpeedZeroOptimizer_Stage3" if stage == 3 else "DeepSpeedZeroOptimizer")
        policy = r["policy"]
        if partitioned:  # every weight an empty placeholder in the module, a slice of it on this rank
            assert policy["partitioned"] == policy["parameters"] and policy["elements_in_module"] == 0
            assert 0 < policy["elements_in_this_rank_slice"] < policy["elements_whole"]
        else:
            assert policy["partitioned"] == 0 and policy["elements_in_module"] > 0
    if partitioned:  # the two slices are the whole (up to padding to an equal size per rank)
        whole, parameters = records[0]["policy"]["elements_whole"], records[0]["policy"]["parameters"]
        assert whole <= sum(r["policy"]["elements_in_this_rank_slice"] for r in records) <= whole + parameters


def assert_saved_model_is_the_trained_policy(out: Path, records: list[dict], base: Path, moved: bool = True) -> None:
    """The model the command saved loads and gives the trained policy's log-probs (which training moved)."""
    saved, _ = load_model(str(out))
    assert all(v.numel() > 0 for v in load_file(out / "model.safetensors").values())
    logprobs = torch.tensor(token_logprobs(saved, PROBE_IDS))
    for r in records:
        assert torch.allclose(logprobs, torch.tensor(r["trained_logprobs"]), atol=1e-4)
    before, _ = load_model(str(base))
    assert ((logprobs - torch.tensor(token_logprobs(before, PROBE_IDS))).abs().max() > 1e-3) == moved


def assert_saved_one_module_at_a_time(output: str, base: Path) -> None:
    """The ZeRO-3 save held at most one module's own weights whole at once (the tiny model's largest: its
    embedding), not the whole model, as its log line reports (issue 35 §12)."""
    model, _ = load_model(str(base))
    seen, largest = set(), 0
    for module in model.modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(map(id, own))
        largest = max(largest, sum(p.numel() for p in own))
    total = sum(p.numel() for p in model.parameters())
    reported = re.findall(r"at most (\d+) of its (\d+) weights whole at once", output)
    assert reported == [(str(largest), str(total))] and largest < total / 2


def samples_at_step_0(out: Path) -> list[dict]:
    """The completions both ranks wrote at step 0 (sampled and scored before any update)."""
    rows = []
    for name in ("completions.jsonl", "completions.rank1.jsonl"):
        rows += [s for s in map(json.loads, (out / name).read_text().splitlines()) if s["step"] == 0]
    return rows


def rescored(root: Path, student: str, samples: list[dict]) -> list[float | None]:
    """rlt's offline reward of each sample's own ids, with the base teacher (the policy at step 0); None where
    the sample cannot be scored."""
    teacher, tokenizer = load_model(str(root / "teacher"))
    model, student_tokenizer = load_model(str(root / student))
    reward = RLTReward(model, tokenizer, teacher=teacher, student_tokenizer=student_tokenizer)
    scores = []
    for s in samples:
        try:
            aligned = reward.align_ids(s["question"], s["solution"], s["prompt_ids"], s["completion_ids"])
        except AlignmentError:
            scores.append(None)
            continue
        scores.append(reward.score([aligned])[0].reward)
    return scores


def train_argv(root: Path, out: str, student: str, dataset: str = "rows.jsonl", *extra: str) -> list[str]:
    return ["train", "--model_name_or_path", str(root / "teacher"), "--student", str(root / student),
            "--dataset", str(root / dataset), "--output_dir", str(root / out), "--max_steps", "2",
            "--per_device_train_batch_size", "4", "--num_generations", "4", "--max_completion_length", "12",
            "--learning_rate", "1e-2", "--save_steps", "1", "--completion_samples_per_step", "4", *extra]  # fmt: skip


def test_zero3_teacher_rl_with_lora_and_a_student_that_tokenises_differently(root):
    """ZeRO-3 partitions the policy; the replicated student (another tokenizer) scores each rank's own samples; the
    rewards GRPO used are rlt's offline scores; the saved model is the trained policy, LoRA merged.

    Before the fix the save wrote every weight as an empty tensor: rank 0 saved the merged model's ZeRO-3
    placeholders without gathering them."""
    argv = train_argv(root, "z3_lora", "byte_student", "rows.jsonl", "--use_peft", "true")
    output = launch(root / "zero3.yaml", argv)
    out = root / "z3_lora"
    assert_saved_one_module_at_a_time(output, root / "teacher")
    records = probes(out)
    assert_zero(records, 3)
    for r in records:  # the student: a whole copy on each rank, outside ZeRO
        assert r["student"]["class"] == "LlamaForCausalLM" and r["student"]["partitioned"] == 0
    samples = samples_at_step_0(out)
    assert len(samples) == 8 and len({s["question"] for s in samples}) == 2  # each rank its own prompt
    offline = rescored(root, "byte_student", samples)
    assert all(
        score is not None and abs(score - s["reward"]) <= 1e-4 for score, s in zip(offline, samples, strict=True)
    )
    assert_saved_model_is_the_trained_policy(out, records, root / "teacher")
    # a larger --max_steps resumes the run from its ZeRO-3 checkpoint (each rank its own slices and optimizer state)
    argv = train_argv(root, "z3_lora", "byte_student", "rows.jsonl", "--use_peft", "true")
    argv[argv.index("--max_steps") + 1] = "3"
    launch(root / "zero3.yaml", argv)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "rlt/reward" in h] == [1, 2, 3]
    assert_saved_model_is_the_trained_policy(out, probes(out), root / "teacher")


def test_zero3_sharded_student_with_an_unscoreable_group_on_one_rank(root):
    """`--shard_student true`: the student partitioned like the policy and gathered once per scoring call. Each step
    one rank holds a question too long for the student: it scores nothing, yet joins the gather, so no rank waits
    forever; its samples are ranked below the scored ones."""
    launch(
        root / "zero3.yaml",
        train_argv(root, "z3_sharded", "short_student", "one_long.jsonl", "--shard_student", "true"),
    )
    out = root / "z3_sharded"
    records = probes(out)
    assert_zero(records, 3)
    for r in records:
        student = r["student"]
        assert student["class"] == "DeepSpeedEngine" and student["partitioned"] == student["parameters"]
        assert student["elements_in_module"] == 0 and student["elements_in_this_rank_slice"] > 0
    samples = samples_at_step_0(out)
    offline = rescored(root, "short_student", samples)
    scored = [(s, score) for s, score in zip(samples, offline, strict=True) if score is not None]
    failed = [s for s, score in zip(samples, offline, strict=True) if score is None]
    assert len(scored) == len(failed) == 4  # one rank's group each
    assert {s["question"] for s in failed} == {json.loads((root / "one_long.jsonl").read_text().splitlines()[1])[
        "question"]}  # fmt: skip
    assert all(abs(score - s["reward"]) <= 1e-4 for s, score in scored)
    lowest = min(s["reward"] for s, _ in scored)
    assert all(s["reward"] is None and s["ranked_as"] == pytest.approx(lowest - 1.0) for s in failed)
    # logged over both ranks: the failures counted, the means over the scored samples (not voided by the rank
    # that scored none)
    logged = [h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "rlt/reward" in h]
    assert [h["rlt/alignment_failures"] for h in logged] == [4, 4]
    assert logged[0]["rlt/reward"] == pytest.approx(sum(score for _, score in scored) / 4, abs=1e-4)
    assert all(h["rlt/solution_logprob_mean"] < 0 and h["rlt/kl_mean"] is not None for h in logged)
    assert_saved_model_is_the_trained_policy(out, records, root / "teacher")


def test_zero3_two_sharded_students_of_different_tokenizers(root):
    """Several students are placed like one: under `--shard_student true` each is partitioned and gathered once per
    scoring call, every rank entering each gather; the logged rewards are the offline two-student scores."""
    launch(root / "zero3.yaml", train_argv(root, "z3_two", "student", "rows.jsonl", "--student",
                                           str(root / "byte_student"), "--shard_student", "true"))  # fmt: skip
    out = root / "z3_two"
    records = probes(out)
    assert_zero(records, 3)
    for r in records:
        assert len(r["students"]) == 2
        for student in r["students"]:
            assert student["class"] == "DeepSpeedEngine" and student["partitioned"] == student["parameters"]
            assert student["elements_in_module"] == 0 and student["elements_in_this_rank_slice"] > 0
    samples = samples_at_step_0(out)
    teacher, tokenizer = load_model(str(root / "teacher"))
    panel = MultiStudentReward([Student(name, *load_model(str(root / name))) for name in ("student", "byte_student")],
                               tokenizer, teacher)  # fmt: skip
    offline, _ = panel.score_texts([{**s, "explanation": s["completion"]} for s in samples])
    assert len(samples) == 8 and all(b.aligned for b in offline)
    assert all(abs(b.reward - s["reward"]) <= 1e-4 for b, s in zip(offline, samples, strict=True))
    logged = [h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "rlt/reward" in h]
    assert logged[0]["rlt/reward"] == pytest.approx(sum(b.reward for b in offline) / 8, abs=1e-4)
    for name in ("student", "byte_student"):
        own = sum(b.students[name].reward for b in offline) / 8
        assert logged[0][f"rlt/{name}/reward"] == pytest.approx(own, abs=1e-4)
    assert_saved_model_is_the_trained_policy(out, records, root / "teacher")


@pytest.mark.parametrize("stage", [1, 2])
def test_zero1_and_zero2_teacher_rl(root, stage):
    """ZeRO-1 and -2 shard the optimizer state (and -2 the gradients); the weights stay whole on every rank."""
    launch(root / f"zero{stage}.yaml", train_argv(root, f"z{stage}", "student"))
    out = root / f"z{stage}"
    records = probes(out)
    assert_zero(records, stage, partitioned=False)
    samples = samples_at_step_0(out)
    offline = rescored(root, "student", samples)
    assert len(samples) == 8 and all(
        abs(score - s["reward"]) <= 1e-4 for score, s in zip(offline, samples, strict=True)
    )
    assert_saved_model_is_the_trained_policy(out, records, root / "teacher")


def test_zero3_warmup_and_distillation(root):
    """SFT under ZeRO-3: the teacher's warm-up (full fine-tuning) and a student's distillation (LoRA, merged)."""
    sft = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--save_strategy", "no"]
    warmup = ["warmup", "--model_name_or_path", str(root / "teacher"), "--dataset", str(root / "rows.jsonl"),
              "--output_dir", str(root / "z3_warmup"), *sft]  # fmt: skip
    output = launch(root / "zero3.yaml", warmup)
    assert_saved_one_module_at_a_time(output, root / "teacher")  # full fine-tuning: no merge first
    records = probes(root / "z3_warmup")
    assert_zero(records, 3)
    assert_saved_model_is_the_trained_policy(root / "z3_warmup", records, root / "teacher")
    rows = [json.loads(line) for line in (root / "rows.jsonl").read_text().splitlines()]
    traces = [{"messages": student_messages(r["question"], "Add them.", r["solution"])} for r in rows]
    (root / "traces.jsonl").write_text("".join(json.dumps(t) + "\n" for t in traces))
    launch(root / "zero3.yaml", ["distill", "--model_name_or_path", str(root / "student"), "--traces",
                                 str(root / "traces.jsonl"), "--output_dir", str(root / "z3_distill"), *sft,
                                 "--use_peft", "true"])  # fmt: skip
    records = probes(root / "z3_distill")
    assert_zero(records, 3)
    assert_saved_model_is_the_trained_policy(root / "z3_distill", records, root / "student")


def test_zero3_student_rl_cold_start(root):
    """`rlt coldstart` (GRPO on correctness) under ZeRO-3. A random tiny student answers nothing right, so every
    advantage is 0 and the weights stay put: what is checked is that it runs partitioned and saves them whole."""
    launch(root / "zero3.yaml", ["coldstart", "--model_name_or_path", str(root / "student"), "--dataset", "countdown:3",
                     "--holdout", "100", "--max_problems", "4", "--output_dir", str(root / "z3_coldstart"),
                     "--max_steps", "2", "--per_device_train_batch_size", "4", "--num_generations", "4",
                     "--max_completion_length", "16", "--learning_rate", "1e-2", "--save_steps", "1"])  # fmt: skip
    out = root / "z3_coldstart"
    records = probes(out)
    assert_zero(records, 3)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "rewards/correctness/mean" in h] == [1, 2]
    assert_saved_model_is_the_trained_policy(out, records, root / "student", moved=False)


def test_fsdp_on_cpu_processes_is_refused_not_run_as_ddp(root):
    """accelerate turns FSDP on only where there are GPUs (or other accelerators): under an FSDP config, CPU
    processes run plain DDP (MULTI_CPU) without a word. rlt refuses instead of passing that off as FSDP."""
    config = root / "fsdp2.yaml"
    config.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nfsdp_config:\n  fsdp_version: 2\n"
                      "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n  fsdp_state_dict_type: FULL_STATE_DICT\n"
                      "num_machines: 1\nnum_processes: 2\nmixed_precision: 'no'\nuse_cpu: false\n")  # fmt: skip
    output = launch(config, train_argv(root, "fsdp", "student"), returncode=1)  # the launcher: a rank exited with 2
    assert "the accelerate config asks for FSDP, but accelerate runs MULTI_CPU (2 processes)" in output
    assert not (root / "fsdp" / "model.safetensors").exists()
