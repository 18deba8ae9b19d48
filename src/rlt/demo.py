"""`rlt demo`: the whole pipeline at small scale on the embedded default (SmolLM2-135M teacher and student, CHAMP).

    warm-up → RL → held-out comparison of four explanation sources → traces → distillation → evaluation → report

Stage settings come from the CPU recipes (`recipes/cpu/*.yaml`); `--quick` shrinks every stage to a first look
of a few minutes. Each stage writes under `output_dir` and is skipped when its output is already there, so an
interrupted demo picks up where it stopped.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from rlt.formats import PADDING

logger = logging.getLogger(__name__)

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "cpu"


@dataclass
class DemoArguments:
    quick: bool = field(default=False, metadata={"help": "Tiny settings: the same wiring in a few minutes."})
    output_dir: str = field(default="runs/demo", metadata={"help": "Where every stage writes; the report too."})
    teacher: str = field(default="smollm2-135m", metadata={"help": "Base model of the teacher."})
    student: str = field(default="smollm2-135m", metadata={"help": "Frozen reward student, and the model distilled."})
    dataset: str | None = field(default=None, metadata={"help": "Override the recipes' dataset."})
    recipes: str = field(default=str(RECIPES), metadata={"help": "Directory with warmup/train/distill.yaml."})
    rl_steps: int | None = field(default=None, metadata={"help": "Override the RL recipe's max_steps."})
    heldout: int | None = field(default=None, metadata={"help": "Held-out questions (default: the recipe's)."})
    distill_traces: int = field(default=32, metadata={"help": "Training questions whose traces the student learns."})
    explanation_tokens: int = field(default=128, metadata={"help": "Longest explanation sampled from a teacher."})
    answer_tokens: int = field(default=256, metadata={"help": "Longest student answer at evaluation."})
    batch_size: int = field(default=10, metadata={"help": "Prompts per generate call."})

    def __post_init__(self):
        if self.quick:
            self.distill_traces = min(self.distill_traces, 8)
            self.explanation_tokens = min(self.explanation_tokens, 32)
            self.answer_tokens = min(self.answer_tokens, 32)
            self.heldout = self.heldout or 4


class Stages:
    """Runs named stages with timing; a stage whose output exists is skipped."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    def run(self, name: str, done: Path | None, fn: Callable[[], object]):
        if done is not None and done.exists():
            print(f"[rlt demo] {name}: already done ({done})", flush=True)
            return None
        print(f"[rlt demo] {name} … (elapsed {time.perf_counter() - self.start:.0f} s)", flush=True)
        began = time.perf_counter()
        result = fn()
        self.seconds[name] = time.perf_counter() - began
        print(f"[rlt demo] {name} took {self.seconds[name]:.0f} s", flush=True)
        return result


def _recipe_args(args: DemoArguments, recipe: str, overrides: dict) -> list[str]:
    path = Path(args.recipes) / recipe
    if not path.exists():
        raise FileNotFoundError(f"{path}: the demo reads its stage settings from the CPU recipes (see --recipes)")
    argv = ["--config", str(path)]
    for key, value in overrides.items():
        if value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def run_demo(args: DemoArguments) -> Path:
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig, RLTSFTConfig
    from rlt.configs import parse as _parse
    from rlt.sft import DistillArguments, run_distill, run_warmup
    from rlt.trainer import run_train

    out = Path(args.output_dir)
    stages = Stages()
    quick = {"max_steps": 2} if args.quick else {}
    common = {"dataset": args.dataset, "holdout": args.heldout}

    warmup_dir = out / "warmup"
    parsed = _parse(
        (ModelConfig, DataArguments, FormatArguments, RLTSFTConfig),
        _recipe_args(
            args, "warmup.yaml", {"model_name_or_path": args.teacher, "output_dir": warmup_dir, **common, **quick}
        ),
    )
    stages.run("teacher warm-up", warmup_dir / "model.safetensors", lambda: run_warmup(*parsed))

    rl_dir = out / "rl"
    rl_overrides = {"model_name_or_path": warmup_dir, "student": args.student, "output_dir": rl_dir, **common,
                    "max_steps": args.rl_steps or (2 if args.quick else None),
                    "max_completion_length": args.explanation_tokens}  # fmt: skip
    train_parsed = _parse((ModelConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig),
                          _recipe_args(args, "train.yaml", rl_overrides))  # fmt: skip
    stages.run("teacher RL", rl_dir / "model.safetensors", lambda: run_train(*train_parsed))

    _, data_args, format_args, reward_args, rl_config = train_parsed
    train, held_out, _ = data_args.load()
    comparison = stages.run(
        "held-out comparison of explanation sources",
        None,
        lambda: compare_sources(args, held_out, warmup_dir, rl_dir, format_args.style, reward_args, rl_config),
    )

    traces_path = out / "traces" / "traces.jsonl"
    stages.run(
        "traces from the RL teacher",
        None,
        lambda: collect(
            args, train[: args.distill_traces], rl_dir, traces_path, format_args.style, reward_args, rl_config
        ),
    )

    student_dir = out / "student"
    distill_parsed = _parse(
        (ModelConfig, DistillArguments, RLTSFTConfig),
        _recipe_args(
            args,
            "distill.yaml",
            {"model_name_or_path": args.student, "traces": traces_path, "output_dir": student_dir, **quick},
        ),
    )
    stages.run("student distillation", student_dir / "model.safetensors", lambda: run_distill(*distill_parsed))

    accuracy = stages.run(
        "student evaluation",
        None,
        lambda: {
            "before": evaluate(args, args.student, held_out, format_args.style),
            "after": evaluate(args, str(student_dir), held_out, format_args.style),
        },
    )
    rl_steps = rl_config.max_steps
    return write_report(out, comparison, accuracy, stages, rl_steps, len(held_out), len(train[: args.distill_traces]))


# ----------------------------------------------------------------------------------------------- stages


@lru_cache(maxsize=4)
def _frozen(spec: str):
    """The models the stages after training only read (teachers, students): each loaded once per demo."""
    from rlt.models import load_model

    return load_model(spec)


def _sampling(args: DemoArguments, temperature: float):
    from rlt.generation import SamplingConfig

    return SamplingConfig(args.explanation_tokens, temperature, 1.0, args.batch_size, 42)


def collect(args, problems, teacher_dir, path: Path, style, reward_args, rl_config) -> list[dict]:
    from rlt.reward import RLTReward
    from rlt.traces import collect_traces

    teacher, tokenizer = _frozen(str(teacher_dir))
    student, student_tokenizer = _frozen(args.student)
    config = reward_args.reward_config(rl_config.temperature)
    reward = RLTReward(student, tokenizer, teacher, config, style, student_tokenizer)
    return collect_traces(problems, teacher, reward, path, _sampling(args, rl_config.temperature))


def compare_sources(args, held_out, base_dir, rl_dir, style, reward_args, rl_config) -> dict[str, list[dict]]:
    """Per held-out question, the student's view of the solution under four explanation sources."""
    from rlt.reward import RLTReward

    out = Path(args.output_dir)
    sources = {
        "base teacher": collect(args, held_out, base_dir, out / "heldout" / "base.jsonl", style, reward_args,
                                rl_config),
        "RL teacher": collect(args, held_out, rl_dir, out / "heldout" / "rl.jsonl", style, reward_args, rl_config),
    }  # fmt: skip
    base_teacher, tokenizer = _frozen(str(base_dir))
    student, student_tokenizer = _frozen(args.student)
    config = reward_args.reward_config(rl_config.temperature)
    reward = RLTReward(student, tokenizer, base_teacher, config, style, student_tokenizer)
    end = reward.style.explanation[1]
    for name, explanation in (("none", lambda p: end), ("dataset solution", lambda p: p.solution + PADDING + end)):
        rows = [{"question": p.question, "solution": p.solution, "explanation": explanation(p)} for p in held_out]
        scored, _ = reward.score_texts(rows)
        sources[name] = [{"index": i, **b.to_dict()} for i, b in enumerate(scored)]
    order = ["none", "dataset solution", "base teacher", "RL teacher"]
    return {name: sorted(sources[name], key=lambda r: r["index"]) for name in order}


def evaluate(args: DemoArguments, model_spec: str, problems, style) -> dict:
    from rlt.evaluate import EvalArguments, evaluate_student

    model, tokenizer = _frozen(model_spec)
    eval_args = EvalArguments(model=model_spec, max_new_tokens=args.answer_tokens, batch_size=args.batch_size)
    result = evaluate_student(model, tokenizer, problems, eval_args, style)
    result.pop("records")
    return result


# ----------------------------------------------------------------------------------------------- report


def _mean(rows: list[dict], key: str) -> str:
    """The mean over rows that have a value, or a dash when none has (KL of empty explanations)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return f"{statistics.fmean(values):.3f}" if values else "—"


def write_report(out: Path, comparison, accuracy, stages: Stages, rl_steps: int, n_heldout: int, n_traces: int):
    from rlt.plots import plot_run

    plots = out / "plots"
    curves = plot_run(out / "rl", plots)
    per_question = _plot_per_question(comparison, plots / "heldout_solution_logprob.png")
    lines = [
        "# rlt demo report",
        "",
        f"SmolLM2-135M teacher and student on CHAMP; {rl_steps} RL steps; {n_heldout} held-out questions; "
        f"student distilled on {n_traces} RL-teacher traces. Stage times: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in stages.seconds.items())
        + f"; total {time.perf_counter() - stages.start:.0f} s.",
        "",
        "## The student's view of held-out solutions, by explanation source",
        "",
        "Mean over held-out questions. Solution log-prob: the frozen student's mean per-token log-probability of "
        "the solution after reading the explanation (higher is better). KL: teacher minus student log-prob on the "
        "explanation tokens (lower is better; none and the dataset's solution are scored against the base "
        "teacher). Reward: the full RLT reward.",
        "",
        "| explanation source | solution log-prob (mean) | solution log-prob (min) | KL (mean) | reward | closing "
        "tag |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in comparison.items():
        lines.append(
            f"| {name} | {_mean(rows, 'solution_logprob_mean')} | {_mean(rows, 'solution_logprob_min')} | "
            f"{_mean(rows, 'kl_mean')} | {_mean(rows, 'reward')} | "
            f"{sum(bool(r['matched']) for r in rows)}/{len(rows)} |"
        )
    lines += [
        "",
        "## Student accuracy on held-out questions (greedy pass@1)",
        "",
        "| student | pass@1 | checked with math-verify | checked as text | unchecked |",
        "|---|---|---|---|---|",
    ]
    for name, result in accuracy.items():
        lines.append(f"| {name} distillation | {result['pass@1_greedy']:.3f} | {result['checked_with_math_verify']} | "
                     f"{result['checked_with_text']} | {result['unchecked']} |")  # fmt: skip
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.relative_to(out)})" for p in [*curves, per_question]]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    (out / "report.json").write_text(
        json.dumps(
            {"comparison": comparison, "accuracy": accuracy, "stage_seconds": stages.seconds, "rl_steps": rl_steps},
            indent=2,
        )
    )
    return report


def _plot_per_question(comparison: dict[str, list[dict]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, rows in comparison.items():
        ax.plot([r["index"] for r in rows], [r["solution_logprob_mean"] for r in rows], marker="o", label=name)
    ax.set_xlabel("held-out question")
    ax.set_ylabel("student solution log-prob (mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
