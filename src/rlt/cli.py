"""`rlt` command line: thin wrappers that parse a config, call the library, and report."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path

import torch

COMMANDS = {
    "score": "Score explanations with the RLT reward (teacher + frozen student).",
    "warmup": "Teacher SFT warm-up on the teacher format (explanation-only loss).",
    "train": "Teacher RL: GRPO with the RLT reward from a frozen student.",
    "plot": "PNG curves of a training run (reward, its components, KL, completion length).",
}


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _finite_or_none(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def _parse(dataclass_types: tuple, argv: list[str]):
    from trl import TrlParser

    return TrlParser(dataclass_types).parse_args_and_config(argv)


def score(argv: list[str]) -> int:
    from tqdm.auto import tqdm

    from rlt.configs import ScoreArguments
    from rlt.data import DataError, read_rows
    from rlt.models import load_model
    from rlt.reward import RLTReward, check_same_tokenizer, summarize

    if argv and not argv[0].startswith("-"):  # `rlt score ROWS.jsonl ...`
        argv = ["--rows", argv[0], *argv[1:]]
    (args,) = _parse((ScoreArguments,), argv)
    if not args.rows:
        raise SystemExit("rlt score: give the rows to score, e.g. `rlt score rows.jsonl --out scored.jsonl`")
    rows = read_rows(args.rows)[: args.limit]
    for index, row in enumerate(rows):
        for column in ("question", "solution", "explanation"):
            if not isinstance(row.get(column), str):
                raise DataError("missing or not a string", row=index, column=column)
    config = args.reward_config(args.teacher_temperature)
    device, dtype = _device(args.device), getattr(torch, args.dtype)
    student, tokenizer = load_model(args.student, dtype, device, args.trust_remote_code)
    if args.teacher == args.student:
        teacher = student
    else:
        teacher, teacher_tokenizer = load_model(args.teacher, dtype, device, args.trust_remote_code)
        check_same_tokenizer(teacher_tokenizer, tokenizer)
    reward = RLTReward(student, tokenizer, teacher=teacher, config=config, style=args.style)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    breakdowns, start = [], time.perf_counter()
    with out.open("w", encoding="utf-8") as f, tqdm(total=len(rows), desc="scoring", unit="row") as bar:
        for begin in range(0, len(rows), args.batch_rows):
            chunk = rows[begin : begin + args.batch_rows]
            scored, samples = reward.score_texts(chunk)
            for row, b, sample in zip(chunk, scored, samples, strict=True):
                record = {
                    **row,
                    "reward": b.reward,
                    "solution_logprob_mean": _finite_or_none(b.solution_logprob_mean),
                    "solution_logprob_min": _finite_or_none(b.solution_logprob_min),
                    "kl_mean": _finite_or_none(b.kl_mean),
                    "kl_max": _finite_or_none(b.kl_max),
                    "matched": b.matched,
                    "aligned": b.aligned,
                }
                if args.details and sample is not None:
                    record.update(sample.to_dict())
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()  # every finished round is on disk, whatever happens to the next one
            breakdowns += scored
            bar.update(len(chunk))
    seconds = time.perf_counter() - start
    summary = summarize(breakdowns)
    print(f"scored {len(rows)} rows in {seconds:.1f} s ({len(rows) / seconds:.2f} rows/s) -> {out}")
    for name, value in summary.items():
        print(f"  {name:<22} {value:.4f}")
    return 0


def warmup(argv: list[str]) -> int:
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RLTSFTConfig
    from rlt.warmup import run_warmup

    parsed = _parse((ModelConfig, DataArguments, FormatArguments, RLTSFTConfig), argv)
    model_args, data_args, format_args, config = parsed
    _default_model(model_args)
    run_warmup(model_args, data_args, format_args, config)
    print(f"warm-up done: teacher saved in {config.output_dir}")
    return 0


def train(argv: list[str]) -> int:
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig
    from rlt.trainer import run_train

    parsed = _parse((ModelConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig), argv)
    model_args, data_args, format_args, reward_args, config = parsed
    _default_model(model_args)
    run_train(model_args, data_args, format_args, reward_args, config)
    print(f"RL done: teacher saved in {config.output_dir}; curves: rlt plot {config.output_dir}")
    return 0


def plot(argv: list[str]) -> int:
    from rlt.plots import plot_run

    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: rlt plot RUN_DIR [OUT_DIR]")
    written = plot_run(argv[0], argv[1] if len(argv) > 1 else None)
    print("\n".join(str(p) for p in written))
    return 0


def _default_model(model_args) -> None:
    if model_args.model_name_or_path is None:
        model_args.model_name_or_path = "smollm2-135m"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
        print("usage: rlt COMMAND [--config RECIPE.yaml] [flags]\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from rlt.data import DataError

    command = globals()[argv[0]]
    try:
        return command(argv[1:])
    except (DataError, ValueError, FileNotFoundError) as e:
        print(f"rlt {argv[0]}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
