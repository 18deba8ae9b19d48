"""`rlt` command line: thin wrappers that parse a config, call the library, and report."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import torch

from rlt.configs import parse as _parse

COMMANDS = {
    "score": "Score explanations with the RLT reward (teacher + frozen student).",
    "inspect": "An HTML page of explanations, every token shaded by the student's surprise and the KL; sortable.",
    "check-reward": "Does the reward rank reference > shuffled > none explanations? Run before training a new pair.",
    "warmup": "Teacher SFT warm-up on the teacher format (explanation-only loss).",
    "train": "Teacher RL: GRPO with the RLT reward from a frozen student.",
    "traces": "Collect a teacher's explanations as student distillation data (resumable; best-of-k).",
    "distill": "Student SFT on collected traces.",
    "coldstart": "Student RL on a verifiable reward (answer correctness), e.g. after distillation on traces.",
    "eval": "Student accuracy (pass@1, pass@k, math-verify) or a teacher's mean RLT reward.",
    "plot": "PNG curves of a training run (reward, its components, KL, completion length).",
    "demo": "The whole pipeline at small scale on the embedded default (SmolLM2-135M, CHAMP).",
}


def _device(name: str) -> str:
    """--device as torch takes it; a device this machine lacks is a usage error, not a CUDA traceback."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind = name.split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or auto, got {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no CUDA GPU (use cpu or auto)")
    return name


def _dtype(name: str, device: str) -> torch.dtype:
    """--dtype as torch takes it; auto is bfloat16 on a GPU that supports it (half the memory of float32, the
    precision training used), float32 elsewhere (a CPU emulates bfloat16, 19x slower)."""
    if name == "auto":
        bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"--dtype must be auto, float32, bfloat16 or float16, got {name!r}")
    return getattr(torch, name)


def _output_file(path: str) -> Path:
    """--out as a file path; a directory there is a usage error now, not an OSError after the work is done."""
    if Path(path).is_dir():
        raise ValueError(f"--out {path} is a directory; give a file path")
    return Path(path)


def _reward(teacher: str, reward_args, style, teacher_temperature: float, device: str = "auto",
            dtype: str = "auto", trust_remote_code: bool = False):  # fmt: skip
    """The RLT reward between a teacher and the frozen student, for every command that scores explanations; the
    teacher model is `reward.teacher`."""
    from rlt.models import load_teacher_and_student
    from rlt.reward import RLTReward

    config = reward_args.reward_config(teacher_temperature)  # a bad coefficient fails before any model loads
    device = _device(device)
    teacher_model, student, tokenizer, student_tokenizer = load_teacher_and_student(
        teacher, reward_args.student, _dtype(dtype, device), device, trust_remote_code
    )
    return RLTReward(student, tokenizer, teacher_model, config, style, student_tokenizer)


def score(argv: list[str]) -> int:
    from dataclasses import asdict

    from rlt.configs import ScoreArguments
    from rlt.data import DataError, read_rows, text_field
    from rlt.provenance import describe, file_digest, model_identity, sidecar, write_record
    from rlt.reward import summarize

    if argv and not argv[0].startswith("-"):  # `rlt score ROWS.jsonl ...`
        argv = ["--rows", argv[0], *argv[1:]]
    (args,) = _parse((ScoreArguments,), argv, "score", "ROWS.jsonl")
    if not args.rows:
        raise SystemExit("rlt score: give the rows to score, e.g. `rlt score rows.jsonl --out scored.jsonl`")
    if args.batch_rows < 1:
        raise ValueError(f"--batch_rows must be at least 1, got {args.batch_rows}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1 (or left out for every row), got {args.limit}")
    out = _output_file(args.out)
    if out.exists() and out.resolve() == Path(args.rows).resolve():
        raise ValueError(f"--out {out} is the input file; write the scores to another file")
    rows = read_rows(args.rows)[: args.limit]
    if not rows:
        raise DataError(f"{args.rows}: no rows to score")
    for index, row in enumerate(rows):
        try:  # question and solution as warmup/train accept them; the explanation is a raw completion (end tag and all)
            text_field(row, "question"), text_field(row, "solution")
        except DataError as e:
            raise DataError(e.message, row=index, column=e.column) from None
        if not isinstance(row.get("explanation"), str):
            raise DataError("missing or not a string", row=index, column="explanation")
    reward = _reward(args.teacher, args, args.tag_style(), args.teacher_temperature, args.device, args.dtype,
                     args.trust_remote_code)  # fmt: skip

    out.parent.mkdir(parents=True, exist_ok=True)
    # Scores go to a side file that replaces --out only when complete: a failed or interrupted run leaves an
    # existing --out untouched, and the rounds it finished in OUT.partial.
    partial = out.with_name(out.name + ".partial")
    breakdowns, start = [], time.perf_counter()
    with partial.open("w", encoding="utf-8") as f:
        for records, scored in _scored_rounds(reward, rows, args.batch_rows, args.details):
            f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
            f.flush()  # every finished round is on disk, whatever happens to the next one
            breakdowns += scored
    partial.replace(out)
    write_record(sidecar(out), describe("scored rows", {
        "teacher": model_identity(args.teacher), "student": model_identity(args.student),
        "reward": asdict(reward.config), "style": reward.style.identity,
        "rows": f"{args.rows} sha256:{file_digest(args.rows)}"}))  # fmt: skip
    seconds = time.perf_counter() - start
    summary = summarize(breakdowns)
    print(f"scored {len(rows)} rows in {seconds:.1f} s ({len(rows) / seconds:.2f} rows/s) -> {out}")
    for name, value in summary.items():
        print(f"  {name:<22} {value:.4f}")
    return 0


def _scored_rounds(reward, rows: list[dict], batch_rows: int, details: bool):
    """Score `rows` in rounds of `batch_rows`, with a progress bar: each round's rows with their components (and,
    with `details`, the ids, spans and per-token numbers), and its breakdowns."""
    from tqdm.auto import tqdm

    with tqdm(total=len(rows), desc="scoring", unit="row") as bar:
        for begin in range(0, len(rows), batch_rows):
            chunk = rows[begin : begin + batch_rows]
            scored, samples = reward.score_texts(chunk, per_token=details)
            records = [{**row, **b.to_dict(), **(sample.to_dict() if details and b.aligned else {})}
                       for row, b, sample in zip(chunk, scored, samples, strict=True)]  # fmt: skip
            yield records, scored
            bar.update(len(chunk))


def inspect(argv: list[str]) -> int:
    from rlt.configs import InspectArguments
    from rlt.data import DataError, read_rows
    from rlt.inspector import has_per_token, to_score, write_page

    if argv and not argv[0].startswith("-"):  # `rlt inspect FILE ...`
        argv = ["--rows", argv[0], *argv[1:]]
    (args,) = _parse((InspectArguments,), argv, "inspect", "FILE")
    if not args.rows:
        raise SystemExit("rlt inspect: give the file to inspect, e.g. `rlt inspect scored.jsonl --out report.html`")
    out = _output_file(args.out)
    rows = read_rows(args.rows)[: args.limit]
    if not rows:
        raise DataError(f"{args.rows}: no rows to inspect")
    # rows `rlt score --details` wrote are shown as they are; the others (traces, completions.jsonl) are scored here
    todo = [i for i, row in enumerate(rows) if not has_per_token(row) and row.get("aligned", True)]
    if todo:
        try:
            texts = [to_score(rows[i]) for i in todo]
        except ValueError as e:
            raise DataError(str(e), row=todo[0]) from None
        reward = _reward(args.teacher, args, args.tag_style(), args.teacher_temperature, args.device, args.dtype,
                         args.trust_remote_code)  # fmt: skip
        done = [record for records, _ in _scored_rounds(reward, texts, args.batch_rows, True) for record in records]
        for i, record in zip(todo, done, strict=True):
            logged = {"logged_reward": rows[i]["reward"]} if "reward" in rows[i] else {}  # kept beside the new score
            rows[i] = {**rows[i], **record, **logged}
        print(f"scored {len(todo)} rows with teacher {args.teacher} and student {args.student}", file=sys.stderr)
    write_page(rows, out, args.rows)
    print(f"{len(rows)} rows ({len(todo)} scored here) -> {out}")
    return 0


def check_reward(argv: list[str]) -> int:
    from rlt.configs import DataArguments, FormatArguments, RewardArguments
    from rlt.reward_check import CheckRewardArguments, check_reward, write_report

    parsed = _parse((CheckRewardArguments, DataArguments, FormatArguments, RewardArguments), argv, "check-reward")
    args, data_args, format_args, reward_args = parsed
    train, held_out, _ = data_args.load()
    reward = _reward(args.teacher, reward_args, format_args.tag_style(train + held_out), args.temperature, args.device)
    report = check_reward(train + held_out, reward, args, reward.teacher, data_args.framing)
    print(write_report(report, args.out) + f"-> {args.out}")
    return 0


def _say_done(trainer, config, message: str) -> None:
    """The closing line of a training command; a run skipped as already finished says that instead."""
    print(message if trainer is not None else f"{config.output_dir} already holds a finished run: nothing trained")


def warmup(argv: list[str]) -> int:
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RLTSFTConfig
    from rlt.sft import run_warmup

    parsed = _parse((ModelConfig, DataArguments, FormatArguments, RLTSFTConfig), argv, "warmup")
    model_args, data_args, format_args, config = parsed
    _default_model(model_args)
    trainer = run_warmup(model_args, data_args, format_args, config)
    _say_done(trainer, config, f"warm-up done: teacher saved in {config.output_dir}")
    return 0


def train(argv: list[str]) -> int:
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig
    from rlt.trainer import run_train

    parsed = _parse((ModelConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig), argv, "train")
    model_args, data_args, format_args, reward_args, config = parsed
    _default_model(model_args)
    trainer = run_train(model_args, data_args, format_args, reward_args, config)
    _say_done(trainer, config, f"RL done: teacher saved in {config.output_dir}; curves: rlt plot {config.output_dir}")
    return 0


def _problems(data_args, part: str):
    train, held_out, _ = data_args.load()
    parts = {"all": train + held_out, "train": train, "holdout": held_out}
    if part not in parts:
        raise ValueError(f"--part must be one of {sorted(parts)}, got {part!r}")
    if not parts[part]:
        raise ValueError(f"--part {part} selects no problem (holdout is {data_args.holdout})")
    return parts[part]


def traces(argv: list[str]) -> int:
    from dataclasses import asdict

    from rlt.configs import DataArguments, FormatArguments, RewardArguments
    from rlt.generation import SamplingConfig, vllm_usable
    from rlt.provenance import read_record, sidecar
    from rlt.reward import RewardBreakdown, summarize
    from rlt.traces import TracesArguments, collect_traces, select_best, write_rows

    parsed = _parse((TracesArguments, DataArguments, FormatArguments, RewardArguments), argv, "traces")
    args, data_args, format_args, reward_args = parsed
    problems = _problems(data_args, args.part)
    out = _output_file(args.out)
    journal = out.with_suffix(".jsonl")  # rows are appended here as they come; Parquet is written at the end
    for path in {out, journal}:
        if path.exists() and path.resolve() == Path(data_args.dataset).resolve():
            raise ValueError(f"--out {args.out} would write the traces into the dataset {data_args.dataset}")
    use_vllm = vllm_usable(args.use_vllm, args.device)
    style = format_args.tag_style(problems)
    reward = _reward(args.teacher, reward_args, style, _kl_temperature(args.temperature), args.device, args.dtype)
    sampling = SamplingConfig(args.max_new_tokens, args.temperature, args.top_p, args.batch_size, args.seed)
    data = {**asdict(data_args), "part": args.part, "questions": len(problems)}
    with _sampler(use_vllm, args.teacher, args.dtype) as sampler:
        rows = collect_traces(problems, reward.teacher, reward, journal, sampling, args.num_samples, sampler,
                              args.fresh, data)  # fmt: skip
    record = read_record(sidecar(journal))
    if out != journal:
        write_rows(out, rows, record)
    print(f"{len(rows)} traces for {len(problems)} questions in {out}")
    if args.best_of:
        selected = out.with_name("selected" + out.suffix)
        write_rows(selected, select_best(rows), record)
        print(f"best of {args.num_samples} per question -> {selected}")
    for name, value in summarize([RewardBreakdown.from_dict(r) for r in rows]).items():
        print(f"  {name:<22} {value:.4f}")
    return 0


def distill(argv: list[str]) -> int:
    from trl import ModelConfig

    from rlt.configs import RLTSFTConfig
    from rlt.sft import DistillArguments, run_distill

    model_args, distill_args, config = _parse((ModelConfig, DistillArguments, RLTSFTConfig), argv, "distill")
    _default_model(model_args)
    trainer = run_distill(model_args, distill_args, config)
    _say_done(trainer, config, f"distillation done: student saved in {config.output_dir}")
    return 0


def coldstart(argv: list[str]) -> int:
    from trl import ModelConfig

    from rlt.coldstart import run_coldstart
    from rlt.configs import ColdStartConfig, DataArguments, FormatArguments

    parsed = _parse((ModelConfig, DataArguments, FormatArguments, ColdStartConfig), argv, "coldstart")
    model_args, data_args, format_args, config = parsed
    _default_model(model_args)
    trainer = run_coldstart(model_args, data_args, format_args, config)
    _say_done(trainer, config, f"student RL done: student saved in {config.output_dir}; curves: rlt plot "
              f"{config.output_dir}")  # fmt: skip
    return 0


def _sampler(use_vllm: bool, model: str, dtype: str):
    """A vLLM engine for `model` (closed when done), or None: transformers' generate on the loaded model."""
    from contextlib import closing, nullcontext

    from rlt.generation import VLLMSampler
    from rlt.models import resolve

    return closing(VLLMSampler(resolve(model), dtype)) if use_vllm else nullcontext(None)


def _kl_temperature(sampling_temperature: float) -> float:
    """The teacher log-probs are taken at the sampling temperature; greedy sampling (0) scores at 1."""
    return sampling_temperature if sampling_temperature > 0 else 1.0


def evaluate(argv: list[str]) -> int:
    from dataclasses import asdict

    from rlt.configs import DataArguments, FormatArguments, RewardArguments
    from rlt.evaluate import EvalArguments, evaluate_student, markdown_table, write_results
    from rlt.generation import vllm_usable
    from rlt.provenance import describe, model_identity

    parsed = _parse((EvalArguments, DataArguments, FormatArguments, RewardArguments), argv, "eval")
    args, data_args, format_args, reward_args = parsed
    problems = _problems(data_args, args.part)
    _output_file(args.out)
    use_vllm = vllm_usable(args.use_vllm, args.device)
    style = format_args.tag_style(problems)
    if args.teacher:
        from rlt.generation import SamplingConfig
        from rlt.reward import RewardBreakdown, summarize
        from rlt.traces import collect_traces

        temperature = _kl_temperature(args.temperature)
        reward = _reward(args.teacher, reward_args, style, temperature, args.device, args.dtype)
        sampling = SamplingConfig(args.max_new_tokens, args.temperature, 1.0, args.batch_size, args.seed)
        explanations = Path(args.out).with_suffix(".traces.jsonl")
        with _sampler(use_vllm, args.teacher, args.dtype) as sampler:  # fresh: never another teacher's leftovers
            rows = collect_traces(problems, reward.teacher, reward, explanations, sampling, sampler=sampler, fresh=True)
        results = {
            "teacher": args.teacher,
            "questions": len(problems),
            **summarize([RewardBreakdown.from_dict(r) for r in rows]),
        }
        table = markdown_table({args.teacher: results}, ["reward", "solution_logprob_mean", "kl_mean", "match_rate"])
    else:
        from rlt.models import load_model, load_tokenizer
        from rlt.sft import distilled_on

        if not args.thought_samples and not any(p.answer for p in problems):
            raise ValueError(f"none of the {len(problems)} questions has a final answer to check accuracy against "
                             "(--answer_column); --thought_samples K measures a student without one")  # fmt: skip
        seen = distilled_on(args.model, [p.question for p in problems])
        if seen:  # a score on questions the student was trained on is no evaluation; say so loudly, keep it on record
            print(f"rlt eval: warning: {seen} of the {len(problems)} evaluated questions are in {args.model}'s "
                  "distillation data: evaluate on the held-out part of the split its traces came from",
                  file=sys.stderr)  # fmt: skip
        device = _device(args.device)
        if use_vllm and not args.thought_samples:  # vLLM holds the only copy of the weights it needs
            model, tokenizer = None, load_tokenizer(args.model)
        else:
            model, tokenizer = load_model(args.model, _dtype(args.dtype, device), device)
        with _sampler(use_vllm, args.model, args.dtype) as sampler:
            results = {"model": args.model, "questions_distilled_on": seen,
                       **evaluate_student(model, tokenizer, problems, args, style, sampler)}  # fmt: skip
        columns = ["pass@1_greedy", *(f"pass@{k}" for k in args.k if args.num_samples),
                   *(["solution_logprob_after_own_thought"] if args.thought_samples else []), "questions",
                   "checked_with_math_verify", "checked_with_text", "checked_with_countdown", "unchecked"]  # fmt: skip
        table = markdown_table({args.model: results}, columns)
    settings = {"model": model_identity(args.teacher or args.model), "data": {**asdict(data_args), "part": args.part},
                "eval": asdict(args), "style": style.identity}  # fmt: skip
    if args.teacher:  # a teacher is measured through the student's reward
        settings |= {"student": model_identity(reward_args.student), "reward": asdict(reward_args)}
    results["provenance"] = describe("evaluation", settings)
    write_results(args.out, results, table)
    print(table + f"\n-> {args.out}")
    return 0


def plot(argv: list[str]) -> int:
    from rlt.plots import plot_run

    if argv and argv[0] in ("-h", "--help"):
        print("usage: rlt plot RUN_DIR [OUT_DIR]\n\nPNG curves of a run's log history (default: RUN_DIR/plots).")
        return 0
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: rlt plot RUN_DIR [OUT_DIR]")
    written = plot_run(argv[0], argv[1] if len(argv) > 1 else None)
    print("\n".join(str(p) for p in written))
    return 0


def _default_model(model_args) -> None:
    from rlt.models import DEFAULT_MODEL

    if model_args.model_name_or_path is None:
        model_args.model_name_or_path = DEFAULT_MODEL


def demo(argv: list[str]) -> int:
    from rlt.demo import DemoArguments, run_demo

    (args,) = _parse((DemoArguments,), argv, "demo")
    report = run_demo(args)
    print(f"[rlt demo] done: report in {report}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
        asked = bool(argv) and argv[0] in ("-h", "--help")
        if argv and not asked:  # a typo gets an error, not just the list
            print(f"rlt: error: unknown command {argv[0]!r}", file=sys.stderr)
        print("usage: rlt COMMAND [--config RECIPE.yaml] [flags]\n\ncommands:\n" + "\n".join(lines),
              file=sys.stdout if asked else sys.stderr)  # fmt: skip
        return 0 if asked else 2
    from rlt.data import DataError

    command = {"eval": evaluate, "check-reward": check_reward}.get(argv[0]) or globals()[argv[0]]
    try:
        code = command(argv[1:])
    except (DataError, ValueError, OSError) as e:  # OSError: a missing file, a directory where a file belongs, ...
        print(f"rlt {argv[0]}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every writer appends whole rows or replaces files atomically: nothing is left torn
        print(f"rlt {argv[0]}: interrupted", file=sys.stderr)
        return 130
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # A process group left to interpreter shutdown can abort the process (gloo's threads, "terminate called
        # without an active exception"): close it once the command has finished on every rank.
        torch.distributed.destroy_process_group()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
