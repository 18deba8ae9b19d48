"""Student RL (`rlt coldstart`): the correctness and format rewards on hand-made completions, and GRPO on tiny
models that changes the student."""

import json

import pytest
import torch
from safetensors.torch import load_file

from rlt.cli import main
from rlt.configs import ColdStartConfig, DataArguments
from rlt.data import DataError, Problem
from rlt.reward.formats import R1, student_messages
from rlt.testing import save_tiny, tiny_tokenizer
from rlt.train.coldstart import CorrectnessReward, FormatReward, coldstart_dataset, follows_format, reward_functions

FAST = ["--report_to", "none", "--activation_checkpointing", "false", "--logging_steps", "1", "--seed", "0"]


def answered(solution: str, thought: str = "Think it through.") -> str:
    """A completion in the student format (what TRL decodes after the prompt)."""
    return (f"<|begin_of_thought|>\n\n{thought}\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n{solution}\n\n"
            "<|end_of_solution|>")  # fmt: skip


def test_correctness_rewards_a_right_final_answer():
    reward = CorrectnessReward()
    completions = [
        answered("So the total is \\boxed{42}."),  # math-verify on the boxed answer
        answered("The answer is 42."),  # math-verify on the solution section
        answered("The answer is 41."),
        "<|begin_of_thought|>\n\nThe answer is 42, I think",  # never reached a solution section
        answered("The answer is \\frac{84}{2}."),  # equal as mathematics, not as text
    ]
    assert reward(["p"] * 5, completions, answer=["42"] * 5) == [1.0, 1.0, 0.0, 0.0, 1.0]
    # a free-form answer math-verify cannot parse is compared as normalised text (as `rlt eval` does)
    assert reward(["p", "p"], [answered("No."), answered("Yes.")], answer=["No", "No"]) == [1.0, 0.0]
    # a yes or no counts only as a whole first clause: RL must not learn that "No idea" earns a "No"
    hedges = [answered(s) for s in ("No idea.", "Yes and no.", "No, it is odd.", "\\boxed{\\text{Yes}}")]
    assert reward(["p"] * 4, hedges, answer=["No", "Yes", "No", "Yes"]) == [0.0, 0.0, 1.0, 1.0]
    # conversational completions (message lists) are read too
    assert reward(["p"], [[{"role": "assistant", "content": answered("\\boxed{7}")}]], answer=["7"]) == [1.0]


def test_correctness_checks_countdown_answers_exactly():
    reward = CorrectnessReward()
    completions = [answered("The answer is (7 + 3) * 5."), answered("5 * (3 + 7) = 50"), answered("(7 + 3) * 6"),
                   answered("10 * 5"), answered("__import__('os').getcwd()")]  # fmt: skip
    numbers, target = [[3, 5, 7]] * 5, [50] * 5
    # the gold expression is not what is compared: any expression that makes the target counts
    assert reward(["p"] * 5, completions, answer=["(7 + 3) * 5"] * 5, numbers=numbers, target=target) == [
        1.0, 1.0, 0.0, 0.0, 0.0]  # fmt: skip


def test_format_rewards_a_closed_thought_then_a_closed_solution():
    good = answered("The answer is 4.")
    assert follows_format(good)
    assert not follows_format(good.replace("<|end_of_thought|>", ""))  # thought never closed
    assert not follows_format(good.replace("<|end_of_solution|>", ""))  # solution never closed
    assert not follows_format(good.replace("<|begin_of_thought|>", ""))  # did not start by thinking
    swapped = "<|begin_of_thought|><|begin_of_solution|>4<|end_of_solution|><|end_of_thought|>"
    assert not follows_format(swapped)  # the solution must come after the thought
    assert FormatReward()(["p", "p"], [good, "The answer is 4."]) == [1.0, 0.0]
    assert follows_format("<think>x</think><solution>4</solution>", R1)
    # a thinking model's chat template opens the think section in the prompt
    assert follows_format("x</think><solution>4</solution>", R1, prompt="<|im_start|>assistant\n<think>\n")
    assert not follows_format("x</think><solution>4</solution>", R1, prompt="<|im_start|>assistant\n")
    assert FormatReward(R1)(["assistant\n<think>\n", "assistant\n"], ["x</think><solution>4</solution>"] * 2) == [
        1.0, 0.0]  # fmt: skip


def test_the_format_term_is_weighted_through_trl_reward_weights(tmp_path):
    config = ColdStartConfig(output_dir=str(tmp_path), format_weight=0.2)
    functions = reward_functions(config, R1)
    assert [f.__name__ for f in functions] == ["correctness", "format"] and config.reward_weights == [1.0, 0.2]
    assert [f.__name__ for f in reward_functions(ColdStartConfig(output_dir=str(tmp_path)), R1)] == ["correctness"]
    with pytest.raises(ValueError, match="--reward_weights"):
        ColdStartConfig(output_dir=str(tmp_path), format_weight=0.2, reward_weights=[1.0, 1.0])
    # the config is not changed by building the rewards: a second run on it gets the same (the review: it raised)
    assert [f.__name__ for f in reward_functions(config, R1)] == ["correctness", "format"]
    assert config.reward_weights == [1.0, 0.2]
    same = ColdStartConfig(output_dir=str(tmp_path), format_weight=0.2, reward_weights=[1.0, 0.2])  # what it sets
    assert [f.__name__ for f in reward_functions(same, R1)] == ["correctness", "format"]


def test_problems_without_an_answer_are_left_out_and_none_is_an_error():
    tokenizer = tiny_tokenizer()
    problems = [Problem("What is 2 + 2?", "2 + 2 = 4.", answer="4"), Problem("Write a sort.", "def sort(): ...")]
    dataset = coldstart_dataset(problems, tokenizer, "stratos")
    assert dataset["answer"] == ["4"] and dataset["prompt"][0].endswith("<|im_start|>assistant\n")
    with pytest.raises(DataError, match="none of the 1 problems has a final answer"):
        coldstart_dataset(problems[1:], tokenizer, "stratos")
    countdown, _, _ = DataArguments(dataset="countdown", max_problems=2).load()
    rows = coldstart_dataset(countdown, tokenizer, "stratos")
    assert rows["numbers"] == [list(p.countdown.numbers) for p in countdown]
    assert rows["target"] == [p.countdown.target for p in countdown]


@pytest.fixture(scope="module")
def answering_student(tmp_path_factory):
    """A tiny student distilled until it writes the student format and countdown answers (some right, some not):
    a random tiny model never does, and GRPO learns nothing from a reward that is the same for every completion."""
    root = tmp_path_factory.mktemp("coldstart")
    save_tiny(root / "base", seed=0)
    # the answer framing's one-line solution, on 3 numbers: what a tiny model learns to write in 120 steps and
    # 48 tokens (a 4-number answer can run past them, and then no completion is right or well formed)
    problems, _, _ = DataArguments(dataset="countdown:3", holdout=100, max_problems=8, framing="answer").load()
    rows = [{"messages": student_messages(p.question, "Add them.", p.solution)} for p in problems]
    (root / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["distill", "--model_name_or_path", str(root / "base"), "--traces", str(root / "traces.jsonl"),
                 "--output_dir", str(root / "student"), "--max_steps", "120", "--learning_rate", "5e-3",
                 "--per_device_train_batch_size", "8", "--save_strategy", "no", *FAST]) == 0  # fmt: skip
    return root


def coldstart_args(root, out: str, *extra: str) -> list[str]:
    return ["coldstart", "--model_name_or_path", str(root / "student"), "--dataset", "countdown:3", "--holdout", "100",
            "--max_problems", "2", "--output_dir", str(root / out), "--max_steps", "2",
            "--per_device_train_batch_size", "8", "--num_generations", "4", "--max_completion_length", "48",
            "--temperature", "1.0", "--learning_rate", "1e-3", "--format_weight", "0.5", "--save_steps", "1", *FAST,
            *extra]  # fmt: skip


def test_coldstart_trains_the_student_on_correctness(answering_student, tmp_path):
    root = answering_student
    assert main(coldstart_args(root, "rl")) == 0
    before, after = load_file(root / "student" / "model.safetensors"), load_file(root / "rl" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    history = json.loads((root / "rl" / "trainer_state.json").read_text())["log_history"]
    steps = [h for h in history if "rewards/correctness/mean" in h]
    assert [h["step"] for h in steps] == [1, 2]
    assert all("rewards/format/mean" in h for h in steps)
    assert any(h["rewards/correctness/mean"] > 0 for h in steps)  # the distilled student answers some right
    assert sorted(p.name for p in (root / "rl").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    # a rerun finds the finished run; curves plot
    assert main(coldstart_args(root, "rl")) == 0
    assert json.loads((root / "rl" / "trainer_state.json").read_text())["global_step"] == 2
    assert main(["plot", str(root / "rl"), str(tmp_path)]) == 0
    assert (tmp_path / "correctness.png").exists() and (tmp_path / "format.png").exists()


def test_a_countdown_evaluation_grades_with_the_checker(answering_student, tmp_path):
    out = tmp_path / "eval.json"
    student = str(answering_student / "student")
    # the problems it was distilled on, which it has learnt by heart: some answers right, each checked
    assert main(["eval", "--model", student, "--dataset", "countdown:3", "--holdout", "100", "--max_problems", "8",
                 "--part", "train", "--max_new_tokens", "48", "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    results = json.loads(out.read_text())
    assert results["checked_with_countdown"] == 8 and results["checked_with_math_verify"] == 0
    records = results["records"]
    assert 0 < results["pass@1_greedy"] == sum(r["correct"] for r in records) / 8
    problems, _, _ = DataArguments(dataset="countdown:3", holdout=100, max_problems=8).load()
    for record, problem in zip(records, problems, strict=True):
        assert record["correct"] == problem.countdown.check(record["answer"])[0]
