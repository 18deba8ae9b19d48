"""Supervised fine-tuning, the two places the method uses it: teacher warm-up (spec §4) and student
distillation on the teacher's traces (spec §5).

Both train only a completion: the warm-up the explanation (with its closing tag and end of turn) after the teacher
prompt; the distillation the student's whole answer — think section holding the explanation, then the solution —
after the system prompt and question. The teacher's examples are tokenised the way RL samples it, the prompt alone
(as TRL tokenises it) and then the completion. The student's chat is tokenised whole, no special tokens added, the
same ids the RLT reward scores and `rlt eval` prompts with (`rlt.reward.align.tokenize_texts`); its answer is every
token inside the assistant's reply. The warm-up explanation is the row's reasoning trace when it has one, else the
solution itself; under the answer framing (`rlt.data.frame`, the default for rows without a trace) that is the
worked solution while the teacher is shown only the final answer, so the warm-up is not a copy task.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from transformers import PreTrainedTokenizerBase
from trl import ModelConfig, SFTTrainer, get_peft_config

from rlt.configs import DataArguments, FormatArguments, RLTSFTConfig
from rlt.data import DataError, Problem
from rlt.errors import UsageError
from rlt.models import load_model
from rlt.provenance import content_key, file_digest, model_identity, read_record, sidecar
from rlt.reward.align import encode, tokenize_texts
from rlt.reward.formats import TagStyle, teacher_text
from rlt.train.runs import check_run, model_dtype, skip_finished, train_and_save

logger = logging.getLogger(__name__)


def _masked_examples(sequences: Iterable[tuple[list[int], int]], max_length: int | None) -> tuple[list[dict], int]:
    """Examples trained from token `first` on, from (ids, first) pairs, and how many were dropped because
    truncation to `max_length` would leave no completion token to learn from."""
    examples, dropped = [], 0
    for ids, first in sequences:
        if max_length is not None and first >= max_length:
            dropped += 1
            continue
        examples.append({"input_ids": ids, "completion_mask": [0] * first + [1] * (len(ids) - first)})
    return examples, dropped


def completion_only_examples(
    pairs: list[tuple[str, str]], tokenizer: PreTrainedTokenizerBase, max_length: int | None
) -> tuple[list[dict], int]:
    """(prompt, completion) examples tokenised as sampling sees them, the prompt alone and then the completion."""

    def split(prompt: str, completion: str) -> tuple[list[int], int]:
        prompt_ids = encode(tokenizer, prompt)
        return prompt_ids + tokenizer(completion, add_special_tokens=False)["input_ids"], len(prompt_ids)

    return _masked_examples((split(prompt, completion) for prompt, completion in pairs), max_length)


def chat_examples(
    pairs: list[tuple[str, str]], tokenizer: PreTrainedTokenizerBase, max_length: int | None
) -> tuple[list[dict], int]:
    """(prompt, completion) chats tokenised whole; the completion is every token that lies inside its characters
    (the edge rule of `rlt.reward.align`)."""
    chats = tokenize_texts(tokenizer, [prompt + completion for prompt, completion in pairs])
    firsts = [tokens.tokens_within((len(p), len(p) + len(c)))[0] for (p, c), tokens in zip(pairs, chats, strict=True)]
    return _masked_examples(((tokens.ids, first) for tokens, first in zip(chats, firsts, strict=True)), max_length)


def warmup_examples(
    problems: list[Problem], tokenizer: PreTrainedTokenizerBase, style: TagStyle | str, max_length: int | None
) -> tuple[list[dict], int]:
    pairs = []
    for problem in problems:
        text = teacher_text(tokenizer, problem.question, problem.solution, style)
        pairs.append((text.prompt, text.completion(problem.reasoning_trace or problem.solution)))
    return completion_only_examples(pairs, tokenizer, max_length)


def chat_prompt_completion(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> tuple[str, str]:
    """Split a [system, user, assistant] chat, rendered by this tokenizer's template, before the assistant's reply."""
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise UsageError("the chat template renders the prompt differently inside the full chat; cannot split it")
    return prompt, full[len(prompt) :]


def distilled_on(model_dir: str | Path, questions: list[str]) -> int | None:
    """How many of `questions` the student in `model_dir` was distilled on (None: not an rlt-distilled student)."""
    summary = Path(model_dir) / "distill.json"
    if not summary.exists():
        return None
    trained = set(json.loads(summary.read_text()).get("question_keys", []))
    return sum(content_key(q) in trained for q in questions)


def held_out_in(trace_record: dict | None, question_keys: set[str]) -> int | None:
    """How many traced questions the traces' own split holds out (None: the record does not say, or its dataset
    cannot be read here)."""
    from rlt.configs import DataArguments

    data = (trace_record or {}).get("data") or {}
    fields = {k: v for k, v in data.items() if k in DataArguments.__dataclass_fields__}
    if not fields:
        return None
    try:
        _, held_out, _ = DataArguments(**fields).load()
    except (DataError, OSError, ValueError):
        return None
    return sum(content_key(p.question) in question_keys for p in held_out)


def read_traces(path: str | Path) -> list[dict]:
    from rlt.data import read_rows

    rows = read_rows(str(path))
    for index, row in enumerate(rows):
        messages = row.get("messages")
        if not (isinstance(messages, list) and len(messages) == 3 and messages[-1].get("role") == "assistant"):
            raise DataError("expected [system, user, assistant] messages (as `rlt traces` writes)", index, "messages")
    return rows


def _train(model, tokenizer, examples: list[dict], model_args: ModelConfig, config: RLTSFTConfig) -> SFTTrainer:
    config.completion_only_loss = True
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    train_and_save(trainer, tokenizer)
    return trainer


def run_warmup(
    model_args: ModelConfig, data_args: DataArguments, format_args: FormatArguments, config: RLTSFTConfig
) -> SFTTrainer | None:
    train, held_out, skipped = data_args.load()
    style = format_args.tag_style(train)
    check_run(config, "teacher warm-up", {"model": model_identity(model_args.model_name_or_path),
              "data": data_args.recorded(held_out), "style": style.identity})  # fmt: skip
    if skip_finished(config):
        return None
    dtype = model_dtype(model_args, config)
    model, tokenizer = load_model(model_args.model_name_or_path, dtype, "cpu", config.trust_remote_code)
    examples, dropped = warmup_examples(train, tokenizer, style, config.max_length)
    logger.info("warm-up on %d problems (%d invalid rows skipped, %d too long)", len(examples), skipped, dropped)
    if not examples:
        raise UsageError(f"no warm-up example fits max_length={config.max_length}")
    return _train(model, tokenizer, examples, model_args, config)


@dataclass
class DistillArguments:
    traces: str = field(
        default="runs/traces/traces.jsonl",
        metadata={"help": "Student-format traces, as `rlt traces` writes them (JSONL or Parquet)."},
    )


def run_distill(model_args: ModelConfig, distill_args: DistillArguments, config: RLTSFTConfig) -> SFTTrainer | None:
    traces = Path(distill_args.traces)
    if not traces.is_file():
        raise DataError(f"--traces {traces}: {'a directory, not a traces file' if traces.is_dir() else 'no such file'}")
    if traces.stat().st_size == 0:
        raise DataError(f"--traces {traces}: the file is empty")
    traces_digest = file_digest(traces)  # new or re-collected traces: another run
    check_run(config, "student distillation", {"model": model_identity(model_args.model_name_or_path),
              "traces": traces_digest})  # fmt: skip
    if skip_finished(config):
        return None
    rows = read_traces(distill_args.traces)
    dtype = model_dtype(model_args, config)
    model, tokenizer = load_model(model_args.model_name_or_path, dtype, "cpu", config.trust_remote_code)
    pairs = [chat_prompt_completion(tokenizer, row["messages"]) for row in rows]
    examples, dropped = chat_examples(pairs, tokenizer, config.max_length)
    logger.info("distilling on %d traces (%d too long)", len(examples), dropped)
    if not examples:
        raise UsageError(f"no trace fits max_length={config.max_length}")
    trace_record = read_record(sidecar(traces))  # what produced the traces, kept with the student they made
    question_keys = {content_key(row["messages"][1]["content"]) for row in rows}
    held_out = held_out_in(trace_record, question_keys)
    if held_out:
        logger.warning("%d traced questions are in the held-out part of the split the traces came from (--part %s): "
                       "an evaluation on that hold-out would score questions this student was trained on",
                       held_out, trace_record["data"].get("part"))  # fmt: skip
    trainer = _train(model, tokenizer, examples, model_args, config)
    summary = {"traces": distill_args.traces, "traces_sha256": traces_digest, "examples": len(examples),
               "dropped_too_long": dropped, "traces_provenance": trace_record,
               "held_out_questions_trained_on": held_out, "question_keys": sorted(question_keys)}  # fmt: skip
    (Path(config.output_dir) / "distill.json").write_text(json.dumps(summary, indent=2))
    return trainer
