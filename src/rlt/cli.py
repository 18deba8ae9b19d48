"""`rlt` command line: thin wrappers that parse a config, call the library, and report."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from rlt.errors import UsageError


def _parse(*args, **kwargs) -> tuple:
    """`rlt.configs.parse`, imported when a command runs: `rlt --help` and `--version` need neither TRL nor torch."""
    from rlt.configs import parse

    return parse(*args, **kwargs)


def _output_file(path: str, *inputs: str) -> Path:
    """--out as a file path; a directory there, or one of the command's `inputs` (which writing would destroy), is a
    usage error now, not an OSError or a lost file after the work is done."""
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file path")
    blocking = next((parent for parent in out.parents if parent.is_file()), None)
    if blocking is not None:
        raise UsageError(f"--out {path}: {blocking} is a file, not a directory")
    for source in inputs:
        if out.exists() and Path(source).is_file() and out.resolve() == Path(source).resolve():
            raise UsageError(f"--out {path} is the input file {source}; write to another file")
    return out


def _print_summary(summary: dict[str, float]) -> None:
    """Each mean of `reward.summarize` on a line, the names in one column (with several students, theirs too)."""
    width = max(22, *map(len, summary))
    for name, value in summary.items():
        print(f"  {name:<{width}} {value:.4f}")


def score(argv: list[str]) -> int:
    from rlt.configs import ScoreArguments
    from rlt.measure.scoring import score_file

    if argv and not argv[0].startswith("-"):  # `rlt score ROWS.jsonl ...`
        argv = ["--rows", argv[0], *argv[1:]]
    (args,) = _parse((ScoreArguments,), argv, "score", "ROWS.jsonl")
    if not args.rows:
        raise UsageError("give the rows to score, e.g. `rlt score rows.jsonl --out scored.jsonl`")
    out = _output_file(args.out, args.rows)
    summary, count, seconds = score_file(args, out)
    if seconds is None:
        print(f"{out} already holds these {count} rows scored (--overwrite scores them again)")
    else:
        print(f"scored {count} rows in {seconds:.1f} s ({count / seconds:.2f} rows/s) -> {out}")
    _print_summary(summary)
    if summary.get("kl_mean", 0.0) < 0:
        print(
            "  kl_mean < 0: each token's term is a one-sample log-ratio, log p_teacher - log p_student, which "
            "averages to a KL only over text the teacher samples itself; on text it would not write (hand-written, "
            "another model's) it can be negative, and the reward then favours it. README, `rlt score`."
        )
    return 0


def inspect(argv: list[str]) -> int:
    from rlt.configs import InspectArguments, given_flags
    from rlt.tools.inspector import inspect_file

    if argv and not argv[0].startswith("-"):  # `rlt inspect FILE ...`
        argv = ["--rows", argv[0], *argv[1:]]
    (args,) = _parse((InspectArguments,), argv, "inspect", "FILE")
    if not args.rows:
        raise UsageError("give the file to inspect, e.g. `rlt inspect scored.jsonl --out report.html`")
    out = _output_file(args.out, args.rows)
    count, scored = inspect_file(args, out, given_flags(argv))
    print(f"{count} rows ({scored} scored here) -> {out}")
    return 0


def check_reward(argv: list[str]) -> int:
    from rlt.configs import DataArguments, FormatArguments, RewardArguments
    from rlt.measure.reward_check import CheckRewardArguments, run_check_reward

    parsed = _parse((CheckRewardArguments, DataArguments, FormatArguments, RewardArguments), argv, "check-reward")
    _output_file(parsed[0].out, parsed[1].dataset)
    print(run_check_reward(*parsed) + f"-> {parsed[0].out}")
    return 0


def _say_done(trainer, config, message: str) -> None:
    """The closing line of a training command; a run skipped as already finished says that instead."""
    print(message if trainer is not None else f"{config.output_dir} already holds a finished run: nothing trained")


def warmup(argv: list[str]) -> int:
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RLTSFTConfig
    from rlt.train.sft import run_warmup

    parsed = _parse((ModelConfig, DataArguments, FormatArguments, RLTSFTConfig), argv, "warmup")
    model_args, data_args, format_args, config = parsed
    _default_model(model_args)
    trainer = run_warmup(model_args, data_args, format_args, config)
    _say_done(trainer, config, f"warm-up done: teacher saved in {config.output_dir}")
    return 0


def train(argv: list[str]) -> int:
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig
    from rlt.train.trainer import run_train

    parsed = _parse((ModelConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig), argv, "train")
    model_args, data_args, format_args, reward_args, config = parsed
    _default_model(model_args)
    trainer = run_train(model_args, data_args, format_args, reward_args, config)
    _say_done(trainer, config, f"RL done: teacher saved in {config.output_dir}; curves: rlt plot {config.output_dir}")
    return 0


def traces(argv: list[str]) -> int:
    from rlt.configs import DataArguments, FormatArguments, RewardArguments
    from rlt.reward import RewardBreakdown, summarize
    from rlt.sampling.traces import TracesArguments, run_traces

    parsed = _parse((TracesArguments, DataArguments, FormatArguments, RewardArguments), argv, "traces")
    args, data_args, format_args, reward_args = parsed
    out = _output_file(args.out)
    rows, selected = run_traces(args, data_args, format_args, reward_args, out)
    print(f"{len(rows)} traces for {len({r['key'] for r in rows})} questions in {out}")
    if selected:
        print(f"best of {args.num_samples} per question -> {selected}")
    if "reward" in rows[0]:  # a dataset's own text is unscored
        _print_summary(summarize([RewardBreakdown.from_dict(r) for r in rows]))
    return 0


def distill(argv: list[str]) -> int:
    from trl import ModelConfig

    from rlt.configs import RLTSFTConfig
    from rlt.train.sft import DistillArguments, run_distill

    model_args, distill_args, config = _parse((ModelConfig, DistillArguments, RLTSFTConfig), argv, "distill")
    _default_model(model_args)
    trainer = run_distill(model_args, distill_args, config)
    _say_done(trainer, config, f"distillation done: student saved in {config.output_dir}")
    return 0


def coldstart(argv: list[str]) -> int:
    from trl import ModelConfig

    from rlt.configs import ColdStartConfig, DataArguments, FormatArguments
    from rlt.train.coldstart import run_coldstart

    parsed = _parse((ModelConfig, DataArguments, FormatArguments, ColdStartConfig), argv, "coldstart")
    model_args, data_args, format_args, config = parsed
    _default_model(model_args)
    trainer = run_coldstart(model_args, data_args, format_args, config)
    _say_done(trainer, config, f"student RL done: student saved in {config.output_dir}; curves: rlt plot "
              f"{config.output_dir}")  # fmt: skip
    return 0


def evaluation(argv: list[str]) -> int:
    from rlt.configs import DataArguments, FormatArguments, RewardArguments
    from rlt.measure.evaluate import EvalArguments, run_eval

    parsed = _parse((EvalArguments, DataArguments, FormatArguments, RewardArguments), argv, "eval")
    _output_file(parsed[0].out, parsed[1].dataset)
    _, table = run_eval(*parsed)
    print(table + f"\n-> {parsed[0].out}")
    return 0


def plot(argv: list[str]) -> int:
    from rlt.tools.plots import plot_run

    if argv and argv[0] in ("-h", "--help"):
        print("usage: rlt plot RUN_DIR [OUT_DIR]\n\nPNG curves of a run's log history (default: RUN_DIR/plots).")
        return 0
    if not argv or argv[0].startswith("-") or len(argv) > 2:
        raise UsageError(f"usage: rlt plot RUN_DIR [OUT_DIR] (got {' '.join(argv) or 'nothing'})")
    if len(argv) == 2 and Path(argv[1]).is_file():
        raise UsageError(f"OUT_DIR {argv[1]} is a file; give a directory for the PNGs")
    written = plot_run(argv[0], argv[1] if len(argv) > 1 else None)
    print("\n".join(str(p) for p in written))
    return 0


def _default_model(model_args) -> None:
    from rlt.models import DEFAULT_MODEL

    if model_args.model_name_or_path is None:
        model_args.model_name_or_path = DEFAULT_MODEL


def demo(argv: list[str]) -> int:
    from rlt.tools.demo import DemoArguments, run_demo

    (args,) = _parse((DemoArguments,), argv, "demo")
    report = run_demo(args)
    print(f"[rlt demo] done: report in {report}")
    return 0


def experiment(argv: list[str]) -> int:
    from rlt.experiment import ExperimentArguments, run_experiment

    (args,) = _parse((ExperimentArguments,), argv, "experiment")
    report = run_experiment(args)
    print(f"[rlt experiment] done{f': report in {report}' if report else ''}")
    return 0


#: Every command: the function that runs it, and its line in `rlt --help` (listed in this order).
COMMANDS = {
    "score": (score, "Score explanations with the RLT reward (teacher + frozen student)."),
    "inspect": (
        inspect,
        "An HTML page of explanations, every token shaded by the student's surprise and the KL; sortable.",
    ),
    "check-reward": (
        check_reward,
        "Does the reward rank reference > shuffled > none explanations? Run before training a new pair.",
    ),
    "warmup": (warmup, "Teacher SFT warm-up on the teacher format (explanation-only loss)."),
    "train": (train, "Teacher RL: GRPO with the RLT reward from a frozen student."),
    "traces": (traces, "Collect a teacher's explanations as student distillation data (resumable; best-of-k)."),
    "distill": (distill, "Student SFT on collected traces."),
    "coldstart": (
        coldstart,
        "Student RL on a verifiable reward (answer correctness), e.g. after distillation on traces.",
    ),
    "eval": (evaluation, "Student accuracy (pass@1, pass@k, math-verify) or a teacher's mean RLT reward."),
    "plot": (plot, "PNG curves of a training run (reward, its components, KL, completion length)."),
    "demo": (demo, "The whole pipeline at small scale on the embedded default (SmolLM2-135M, CHAMP)."),
    "experiment": (
        experiment,
        "The paper's experiment whole (micro-world): RL teachers against their warm-up and the expert, by students.",
    ),
}


#: What a user's file paths can go wrong with: reported like a usage error.
FILE_MISTAKES = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # TRL 1.16 sets `gradient_checkpointing` and asks every model `is_gradient_checkpointing`, both of which
    # transformers 5 deprecates: warnings on every training run that no rlt user can act on
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.* is deprecated", category=FutureWarning)
    if argv[:1] in (["--version"], ["-V"]):
        from importlib.metadata import version

        print(f"rlt {version('rlt')}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
        asked = bool(argv) and argv[0] in ("-h", "--help")
        if argv and not asked:  # a typo gets an error, not just the list
            print(f"rlt: error: unknown command {argv[0]!r}", file=sys.stderr)
        print("usage: rlt COMMAND [--config RECIPE.yaml] [flags]   (rlt --version)\n\ncommands:\n" + "\n".join(lines),
              file=sys.stdout if asked else sys.stderr)  # fmt: skip
        return 0 if asked else 2
    command = COMMANDS[argv[0]][0]
    try:
        code = command(argv[1:])
    except (UsageError, *FILE_MISTAKES) as e:  # anything else is a bug in rlt: it keeps its traceback
        print(f"rlt {argv[0]}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every writer appends whole rows or replaces files atomically: nothing is left torn
        print(f"rlt {argv[0]}: interrupted", file=sys.stderr)
        return 130
    import torch  # imported by every command already

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # A process group left to interpreter shutdown can abort the process (gloo's threads, "terminate called
        # without an active exception"): close it once the command has finished on every rank. The barrier first:
        # a rank that tore its group down while the other was still in its last collective (the final save's
        # gathers) aborted that one (SIGABRT on rank 1, once in five ZeRO-3 runs).
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
