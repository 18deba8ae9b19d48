"""Teacher SFT warm-up: learn the teacher format before RL (spec §4).

Each example is the teacher prompt (system, question, tagged solution, opening explanation tag) and, as the only
target, the explanation body with its closing tag and end of turn. The explanation is the row's reasoning trace
when it has one, else the solution itself, as in the original. Examples are tokenised here the way GRPO will see
them — the prompt alone, then the completion — so warm-up and RL agree on the token at the boundary.
"""

from __future__ import annotations

import logging

from datasets import Dataset
from transformers import PreTrainedTokenizerBase
from trl import ModelConfig, SFTTrainer, get_peft_config

from rlt.configs import DataArguments, FormatArguments, RLTSFTConfig
from rlt.data import Problem
from rlt.formats import get_style, teacher_text
from rlt.models import load_model
from rlt.trainer import finish_run, last_checkpoint, model_dtype

logger = logging.getLogger(__name__)


def warmup_examples(
    problems: list[Problem], tokenizer: PreTrainedTokenizerBase, style: str, max_length: int | None
) -> tuple[list[dict], int]:
    """Pre-tokenised SFT examples with a completion mask; also the number dropped for lack of room."""
    examples, dropped = [], 0
    for problem in problems:
        text = teacher_text(tokenizer, problem.question, problem.solution, get_style(style))
        prompt_ids = tokenizer(text.prompt)["input_ids"]
        explanation = problem.reasoning_trace or problem.solution
        completion_ids = tokenizer(text.completion(explanation), add_special_tokens=False)["input_ids"]
        if max_length is not None and len(prompt_ids) >= max_length:
            dropped += 1  # no target token would survive truncation: the example would teach nothing
            continue
        examples.append(
            {
                "input_ids": prompt_ids + completion_ids,
                "completion_mask": [0] * len(prompt_ids) + [1] * len(completion_ids),
            }
        )
    return examples, dropped


def run_warmup(model_args: ModelConfig, data_args: DataArguments, format_args: FormatArguments, config: RLTSFTConfig):
    train, _, skipped = data_args.load()
    dtype = model_dtype(model_args, config)
    model, tokenizer = load_model(model_args.model_name_or_path, dtype, "cpu", config.trust_remote_code)
    examples, dropped = warmup_examples(train, tokenizer, format_args.style, config.max_length)
    logger.info("warm-up on %d problems (%d invalid rows skipped, %d too long)", len(examples), skipped, dropped)
    if not examples:
        raise ValueError(f"no warm-up example fits max_length={config.max_length}")
    config.completion_only_loss = True
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(config))
    finish_run(trainer, tokenizer)
    return trainer
