"""Student RL from a cold start (spec §7, Table 2): GRPO on a student, rewarded by whether its answer is right.

The paper distils a student on RLT traces and then trains it with ordinary RL on a verifiable reward; the traces are
the cold start (RLT-7B + RL: 50.5 overall, against 48.3 for Bespoke-7B + RL and 40.8 without a cold start). Here
the student answers in the student format (think section, then solution section) and is rewarded per completion:

    reward = correctness + format_weight * format

    correctness  1 when the final answer checks, else 0: `rlt.measure.evaluate.grade`, the check `rlt eval` reports
                 (math-verify with its text fallback; countdown problems by their exact checker)
    format       1 when the completion opens and closes its think section and then writes a closed solution
                 section, else 0 (off unless --format_weight is set)

Both are plain TRL reward functions: `GRPOTrainer(reward_funcs=[CorrectnessReward(), FormatReward()], ...)` on any
dataset with an `answer` column (and `numbers` / `target` for countdown). GRPO, sampling, vLLM, DDP / ZeRO / FSDP,
checkpointing and logging are TRL's.
"""

from __future__ import annotations

import logging

from datasets import Dataset
from trl import ModelConfig, get_peft_config

from rlt.configs import ColdStartConfig, DataArguments, FormatArguments
from rlt.data import DataError, Problem
from rlt.data.countdown import Countdown
from rlt.measure.evaluate import grade
from rlt.models import load_model
from rlt.provenance import model_identity
from rlt.reward.formats import STRATOS, TagStyle, get_style, student_prompt
from rlt.train.runs import check_positions, check_run, model_dtype, require_vllm, skip_finished, train_and_save
from rlt.train.trainer import ChatGRPOTrainer

logger = logging.getLogger(__name__)


def _text(completion) -> str:
    """A completion as text: TRL passes strings for text prompts and message lists for conversational ones."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


class CorrectnessReward:
    """1.0 for a completion whose final answer is right, else 0.0 (a TRL reward function)."""

    __name__ = "correctness"  # TRL logs it as rewards/correctness/mean

    def __init__(self, style: TagStyle | str = STRATOS):
        self.style = get_style(style)

    def __call__(self, prompts, completions, answer, numbers=None, target=None, **kwargs) -> list[float]:
        numbers = numbers or [None] * len(completions)
        target = target or [None] * len(completions)
        rewards = []
        for completion, gold, nums, goal in zip(completions, answer, numbers, target, strict=True):
            countdown = Countdown(tuple(nums), goal) if nums is not None else None
            rewards.append(float(grade(_text(completion), gold, countdown, self.style)[0]))
        return rewards


def follows_format(completion: str, style: TagStyle | str = STRATOS, prompt: str = "") -> bool:
    """Whether a student's completion is a closed think section followed by a closed solution section. The think
    section may open in the prompt (chat templates of thinking models end their generation prompt with it)."""
    style = get_style(style)
    (think_open, think_close), (solution_open, solution_close) = style.thought, style.solution
    thought_end = completion.find(think_close)
    solution_start = completion.find(solution_open, max(thought_end, 0))
    opened = completion.lstrip().startswith(think_open) or prompt.rstrip().endswith(think_open)
    return opened and thought_end >= 0 and solution_start >= 0 and completion.find(solution_close, solution_start) >= 0


class FormatReward:
    """1.0 for a completion in the student format (`follows_format`), else 0.0 (a TRL reward function)."""

    __name__ = "format"

    def __init__(self, style: TagStyle | str = STRATOS):
        self.style = get_style(style)

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        prompts = [p if isinstance(p, str) else "" for p in prompts]  # a message list never ends inside a turn
        return [float(follows_format(_text(c), self.style, p)) for p, c in zip(prompts, completions, strict=True)]


def coldstart_dataset(problems: list[Problem], tokenizer, style: TagStyle | str) -> Dataset:
    """One row per problem with a checkable answer: the student prompt `rlt eval` asks with, and what the
    correctness reward checks. Problems without one (Bespoke-Stratos' code rows have no \\boxed{}) are left out."""
    checkable = [p for p in problems if p.answer is not None or p.countdown is not None]
    if not checkable:
        raise DataError(f"none of the {len(problems)} problems has a final answer to reward; name the answer "
                        "column with --answer_column")  # fmt: skip
    if len(checkable) < len(problems):
        logger.warning("%d of %d problems have no final answer to check: left out of student RL",
                       len(problems) - len(checkable), len(problems))  # fmt: skip
    rows = []
    for p in checkable:
        row = {"prompt": student_prompt(tokenizer, p.question, style), "answer": p.answer or ""}
        if p.countdown is not None:
            row |= {"numbers": list(p.countdown.numbers), "target": p.countdown.target}
        rows.append(row)
    return Dataset.from_list(rows)


def reward_functions(config: ColdStartConfig, style: TagStyle) -> list:
    """Correctness, and the format term when it has a weight (`ColdStartConfig` makes it TRL's reward_weights)."""
    return [CorrectnessReward(style)] + ([FormatReward(style)] if config.format_weight else [])


def run_coldstart(
    model_args: ModelConfig, data_args: DataArguments, format_args: FormatArguments, config: ColdStartConfig
) -> ChatGRPOTrainer | None:
    """GRPO on the student in model_args on the training part of the data; the trained student in output_dir."""
    require_vllm(config)
    train, held_out, skipped = data_args.load()
    style = format_args.tag_style(train)
    check_run(config, "student RL", {"model": model_identity(model_args.model_name_or_path),
              "data": data_args.recorded(held_out),
              "style": style.identity, "format_weight": config.format_weight})  # fmt: skip
    if skip_finished(config):
        return None
    reward_funcs = reward_functions(config, style)
    model, tokenizer = load_model(model_args.model_name_or_path, model_dtype(model_args, config), "cpu",
                                  config.trust_remote_code)  # fmt: skip
    logger.info("student RL on %d problems (%d invalid rows skipped)", len(train), skipped)
    dataset = coldstart_dataset(train, tokenizer, style)
    check_positions(model, tokenizer, dataset["prompt"], config.max_completion_length)
    trainer = ChatGRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    train_and_save(trainer, tokenizer)
    return trainer
