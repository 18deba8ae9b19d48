"""`rlt demo`: the whole pipeline at small scale on the embedded default (SmolLM2-135M teacher and student, CHAMP).

    warm-up → RL → judge → held-out teaching comparison (RL teacher vs its warm-up start, reference, none; paired per
    question; read by the reward's student and by the judge, as written and with the answer statements stripped)
    → traces → distillation → evaluation → report

The judge is a second student that reads the same explanations. It should be one no teacher was trained against:
by default Gemma-3-270M (`gemma3-270m`, another family) when it is installed (`make gemma`); without it, the student
distilled on the training problems' reference explanations, which the report says is not independent (it is the
reward student's base, and read what the warm-up imitates). `--judge` names another.

Stage settings come from the CPU recipes (`recipes/cpu/*.yaml`); `--quick` shrinks every stage to a first look
of a few minutes. Each stage writes under `output_dir` and is skipped when its output is already there, so an
interrupted demo picks up where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

logger = logging.getLogger(__name__)

RECIPES = Path(__file__).resolve().parents[3] / "recipes" / "cpu"


@dataclass
class DemoArguments:
    #: Least value of each numeric flag (`check_ranges`).
    MINIMUMS: ClassVar[dict[str, int]] = {"explanation_tokens": 1}

    quick: bool = field(
        default=False,
        metadata={"help": "Tiny settings (in runs/demo-quick unless --output_dir is given): the same wiring in a few "
                  "minutes; a flag given with it at other than its default keeps its value."},
    )  # fmt: skip
    output_dir: str = field(default="runs/demo", metadata={"help": "Where every stage writes; the report too."})
    resume: bool = field(
        default=True,
        metadata={"help": "Resume each training stage from its checkpoints and skip finished ones (false: train "
                  "every stage over)."},
    )  # fmt: skip
    teacher: str = field(default="smollm2-135m", metadata={"help": "Base model of the teacher."})
    student: str = field(default="smollm2-135m", metadata={"help": "Frozen reward student, and the model distilled."})
    dataset: str | None = field(default=None, metadata={"help": "Override the recipes' dataset."})
    recipes: str = field(default=str(RECIPES), metadata={"help": "Directory with warmup/train/distill.yaml."})
    rl_steps: int | None = field(default=None, metadata={"help": "Override the RL recipe's max_steps."})
    holdout: int | None = field(default=None, metadata={"help": "Held-out questions (default: the recipe's)."})
    distill_traces: int = field(default=32, metadata={"help": "Training questions whose traces the student learns."})
    explanation_tokens: int = field(
        default=128,
        metadata={"help": "Longest explanation sampled from a teacher (--quick: 32 unless given)."},
    )
    holdout_samples: int = field(
        default=2, metadata={"help": "Explanations sampled per held-out question and teacher for the comparison."}
    )
    answer_tokens: int = field(default=192, metadata={"help": "Longest student answer at evaluation."})
    judge: str | None = field(
        default=None,
        metadata={"help": "A student no teacher was trained against, that also reads the held-out explanations "
                  "(default: gemma3-270m when installed, else the student distilled on the training problems' "
                  "reference explanations, which the report marks as not independent)."},
    )  # fmt: skip
    batch_size: int = field(default=10, metadata={"help": "Prompts per generate call."})

    def __post_init__(self):
        if self.quick:  # only what was left at its default: a flag given with --quick is kept, not cut
            defaults = {f.name: f.default for f in fields(self)}
            for name, value in QUICK.items():
                if getattr(self, name) == defaults[name]:
                    setattr(self, name, value)


#: What --quick changes. The last 8 CHAMP problems hold 5 short enough for the recipe; the quick run's own directory
#: keeps a later full run from meeting its checkpoints (and the quick settings) in runs/demo.
QUICK = {"output_dir": "runs/demo-quick", "distill_traces": 8, "explanation_tokens": 32, "answer_tokens": 32,
         "holdout": 8, "holdout_samples": 1}  # fmt: skip


class Stages:
    """Runs named stages with timing. The stages themselves skip finished work: a finished training run (after
    checking that the same settings produced it) and trace rows already written."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.start = time.perf_counter()

    def run(self, name: str, fn: Callable[[], object]):
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
    from rlt.train.sft import DistillArguments, run_distill, run_warmup
    from rlt.train.trainer import run_train

    out = Path(args.output_dir)
    stages = Stages()
    # what every training stage takes from the demo's own flags
    training = {"max_steps": 2 if args.quick else None, "resume": None if args.resume else "false"}
    common = {"dataset": args.dataset, "holdout": args.holdout}

    warmup_dir = out / "warmup"
    parsed = _parse(
        (ModelConfig, DataArguments, FormatArguments, RLTSFTConfig),
        _recipe_args(
            args, "warmup.yaml", {"model_name_or_path": args.teacher, "output_dir": warmup_dir, **common, **training}
        ),
    )
    stages.run("teacher warm-up", lambda: run_warmup(*parsed))

    rl_dir = out / "rl"
    rl_overrides = {"model_name_or_path": warmup_dir, "student": args.student, "output_dir": rl_dir, **common,
                    **training, "max_steps": args.rl_steps or training["max_steps"],
                    "max_completion_length": args.explanation_tokens}  # fmt: skip
    train_parsed = _parse((ModelConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig),
                          _recipe_args(args, "train.yaml", rl_overrides))  # fmt: skip
    stages.run("teacher RL", lambda: run_train(*train_parsed))

    _, data_args, format_args, reward_args, rl_config = train_parsed
    train, held_out, _ = data_args.load()
    style = format_args.tag_style(train + held_out)
    judge, judge_described = choose_judge(args, out / "judge")
    if judge == str(out / "judge"):
        stages.run("judge distillation", lambda: distill_judge(args, train, style, out / "judge", training))
    comparison = stages.run(
        "held-out teaching comparison",
        lambda: compare_teachers(args, held_out, warmup_dir, rl_dir, judge, style, reward_args, rl_config),
    )
    comparison["judge"] = {"model": judge, "described": judge_described}

    traces_path = out / "traces" / "traces.jsonl"
    stages.run(
        "traces from the RL teacher",
        lambda: collect(args, train[: args.distill_traces], rl_dir, traces_path, style, reward_args, rl_config),
    )

    student_dir = out / "student"
    distill_parsed = _parse(
        (ModelConfig, DistillArguments, RLTSFTConfig),
        _recipe_args(
            args,
            "distill.yaml",
            {"model_name_or_path": args.student, "traces": traces_path, "output_dir": student_dir, **training},
        ),
    )
    stages.run("student distillation", lambda: run_distill(*distill_parsed))

    accuracy = stages.run(
        "student evaluation",
        lambda: {
            "before": greedy_accuracy(args, args.student, held_out, style),
            "after": greedy_accuracy(args, str(student_dir), held_out, style),
        },
    )
    rl_steps = rl_config.max_steps
    return write_report(out, comparison, accuracy, stages, rl_steps, len(held_out), len(train[: args.distill_traces]),
                        args.quick)  # fmt: skip


# ----------------------------------------------------------------------------------------------- stages


@lru_cache(maxsize=4)
def _frozen(spec: str):
    """The models the stages after training only read (teachers, students): each loaded once per demo."""
    from rlt.models import load_model

    return load_model(spec)


def _sampling(args: DemoArguments, temperature: float):
    from rlt.sampling.generation import SamplingConfig

    return SamplingConfig(args.explanation_tokens, temperature, 1.0, args.batch_size, 42)


def _reward(args: DemoArguments, teacher_dir: Path, style, reward_args, rl_config, student: str | None = None):
    """The RLT reward with `teacher_dir` as the teacher (its log-probs enter the KL) and the frozen student (or
    `student`, e.g. the judge)."""
    from dataclasses import replace

    from rlt.measure.scoring import load_reward

    reward_args = replace(reward_args, student=[student], student_weights=None) if student else reward_args
    return load_reward(str(teacher_dir), reward_args, style, rl_config.temperature, load=_frozen)


def collect(args, problems, teacher_dir, path: Path, style, reward_args, rl_config) -> list[dict]:
    from rlt.sampling.traces import collect_traces

    reward = _reward(args, teacher_dir, style, reward_args, rl_config)
    return collect_traces(problems, reward.teacher, reward, path, _sampling(args, rl_config.temperature))


JUDGE = "judge"
#: The default judge when installed: another family than the embedded teacher and student (SmolLM2).
INDEPENDENT_JUDGE = "gemma3-270m"


def choose_judge(args: DemoArguments, distilled_dir: Path) -> tuple[str, str]:
    """(the judge, how the report names it). A judge must be a model no teacher was trained against: `--judge` when
    given; else the embedded model of another family when it is installed; else the reward student distilled on the
    training problems' references, which is named for what it is: not independent."""
    from rlt.models import EMBEDDED, embedded_available

    if args.judge is not None:
        return args.judge, f"`{args.judge}` (named by --judge)"
    if args.student.lower() != INDEPENDENT_JUDGE and embedded_available(INDEPENDENT_JUDGE):
        return INDEPENDENT_JUDGE, (f"`{INDEPENDENT_JUDGE}` (Gemma-3-270M): another family than the teachers and the "
                                   "reward's student, never trained against and never fine-tuned here")  # fmt: skip
    return str(distilled_dir), (
        f"`{args.student}` distilled on the training problems' reference explanations. **It is not independent**: it "
        "starts from the reward student's weights and read what the warm-up imitates. An independent judge of "
        f"another family: `{EMBEDDED[INDEPENDENT_JUDGE].install}`, then run the demo again"
    )


#: The comparisons the report reads: the first isolates RL, the others place it between no help and the reference.
PAIRS = [("RL teacher", "warm-up teacher"), ("RL teacher", "none"), ("warm-up teacher", "none"), ("reference", "none")]


def distill_judge(args: DemoArguments, train, style, out_dir: Path, training: dict) -> None:
    """The judge: the student distilled on the reference explanations of the training problems, which is what the
    warm-up imitates and what neither teacher's RL saw as a reward."""
    from trl import ModelConfig

    from rlt.configs import RLTSFTConfig
    from rlt.configs import parse as _parse
    from rlt.records import write_rows
    from rlt.reward.formats import student_messages
    from rlt.train.sft import DistillArguments, run_distill

    path = out_dir.with_name("judge_traces.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rows(path, [{"messages": student_messages(p.question, p.reasoning_trace or p.solution, p.solution, style)}
                      for p in train])  # fmt: skip
    overrides = {"model_name_or_path": args.student, "traces": path, "output_dir": out_dir, **training}
    run_distill(*_parse((ModelConfig, DistillArguments, RLTSFTConfig), _recipe_args(args, "distill.yaml", overrides)))


def compare_teachers(args, held_out, warmup_dir, rl_dir, judge: str, style, reward_args, rl_config) -> dict:
    """Per held-out question, each explanation source read by the reward's student and by the judge, as written and
    with the answer statements stripped, paired (`rlt.measure.teaching`)."""
    from rlt.measure import teaching

    sampling = _sampling(args, rl_config.temperature)
    sources = teaching.fixed_sources(held_out, style.explanation[1])
    teacher_of = {"none": warmup_dir, "reference": warmup_dir}  # the KL of fixed sources: against the warm-up
    for name, teacher_dir in (("warm-up teacher", warmup_dir), ("RL teacher", rl_dir)):
        path = Path(args.output_dir) / "heldout" / f"{Path(teacher_dir).name}.jsonl"
        reward = _reward(args, teacher_dir, style, reward_args, rl_config)
        sources[name] = teaching.teacher_source(held_out, reward, path, sampling, args.holdout_samples)
        teacher_of[name] = teacher_dir
    judges = {teaching.REWARD_STUDENT: None, JUDGE: judge}
    measured = {name: {j: teaching.measure(rows, held_out, _reward(args, teacher_of[name], style, reward_args,
                                                                  rl_config, student))
                       for j, student in judges.items()}
                for name, rows in sources.items()}  # fmt: skip
    return teaching.compare(measured, held_out, PAIRS)


def greedy_accuracy(args: DemoArguments, model_spec: str, problems, style) -> dict:
    """Greedy pass@1 of a student on the held-out problems."""
    from rlt.measure.evaluate import EvalArguments, evaluate_student

    model, tokenizer = _frozen(model_spec)
    eval_args = EvalArguments(model=model_spec, max_new_tokens=args.answer_tokens, batch_size=args.batch_size)
    result = evaluate_student(model, tokenizer, problems, eval_args, style)
    result.pop("records")
    return result


# ----------------------------------------------------------------------------------------------- report


def write_report(out: Path, comparison, accuracy, stages: Stages, rl_steps: int, n_heldout: int, n_traces: int,
                 quick: bool = False):  # fmt: skip
    from rlt.measure.teaching import markdown, verdict
    from rlt.tools.plots import plot_run

    plots = out / "plots"
    curves = plot_run(out / "rl", plots)
    per_question = _plot_per_question(comparison, plots / "heldout_r_ss.png")
    lines = [
        "# rlt demo report",
        "",
        *(
            [
                f"**A `--quick` run: it checks the wiring and supports no conclusion.** {rl_steps} RL steps, "
                f"{comparison['problems']} held-out questions, explanations cut at a few dozen tokens (most never "
                "reach their closing tag and pay its penalty). Run `rlt demo` for numbers.",
                "",
            ]
            if quick
            else []
        ),
        f"SmolLM2-135M teacher and student on CHAMP; {rl_steps} RL steps; {n_heldout} held-out questions; "
        f"student distilled on {n_traces} RL-teacher traces. Stage times: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in stages.seconds.items())
        + f"; total {time.perf_counter() - stages.start:.0f} s.",
        "",
        "## Did RL make a better teacher?",
        "",
        "Per held-out question: " + verdict(comparison, "RL teacher", "warm-up teacher"),
        "",
        "Two students read each explanation source before the solution: the reward's own frozen student, which RL "
        "optimised against, and the judge: "
        f"{comparison['judge']['described']}. "
        "Each reads every explanation as written and with every sentence that states the final answer taken out "
        "(`rlt.measure.leakage`): a gain that vanishes then was the statement, not teaching. r_SS: "
        "coefficient-weighted mean and min of the solution log-probs (higher: it follows). Answer log-prob: the mean "
        'over the answer\'s own tokens (the rest of the solution is the template "The answer is"). KL: teacher minus '
        "student log-prob over the explanation (lower: the student could have thought it; none and the reference are "
        "scored against the warm-up teacher). Reward: r_SS − λ·KL, minus 1 when the explanation does not close (its "
        "closing tag is missing, e.g. cut at the token limit: 'closes it' is the share that did); what RL maximises. "
        "Teachers' values average their scored samples per question (unscoreable samples are counted, never averaged "
        "in); intervals are 95 % bootstrap, paired per question for the differences.",
        "",
        *markdown(comparison),
    ]
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
            {"teaching": comparison, "accuracy": accuracy, "stage_seconds": stages.seconds, "rl_steps": rl_steps},
            indent=2,
        )
    )
    return report


def _plot_per_question(comparison: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name, by_judge in comparison["per_problem"].items():
        values = by_judge[comparison["judges"][0]]["as written"]["r_ss"]
        # points, not a line: the questions are separate, nothing lies between them
        ax.plot(range(len(values)), values, marker="o", markersize=4, linestyle="none", alpha=0.8, label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("held-out question")
    ax.set_ylabel("student r_SS after the explanation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
