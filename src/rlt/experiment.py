"""`rlt experiment`: the paper's experiment, whole. Does a teacher trained by RL with the RLT reward teach students
better than its own warm-up start, and than the expert's traces it was warmed up on?

Every stage is an rlt command run as its own process (`rlt traces | distill | warmup | train | eval`), with the
recipes of `--recipes` (the micro-world's, `recipes/micro/`, by default) and the flags that make an arm what it is;
each writes under `--output_dir` with the provenance that command records, and is skipped when its output is there,
so a stopped experiment picks up where it stopped (a training run resumes from its last checkpoint).

    stage         what                                                               writes
    expert        the generator's search traces and worked solutions of the          sources/expert.jsonl,
                  training problems; students distilled on the traces, the first     sources/solutions.jsonl,
                  of which is the reward's student (as Bespoke-Stratos is Qwen       students/expert-d<seed>/
                  distilled on R1), the second the judge no teacher trained against
    warmup        the teacher's warm-up: question + solution -> the expert's trace   teachers/warmup/
    rl            teacher GRPO against the reward's student, one run per λ,          teachers/rl-<arm>-r<seed>/
                  variant and RL seed (every completion logged for the report)
    explanations  each teacher explains every training problem twice, scored by     sources/<teacher>.jsonl
                  its own reward; the first sample is what its students read, the    (+ .first/.top/.bottom)
                  higher- and lower-reward one per problem the halves (the paper's
                  check that the reward predicts what students gain)
    students      fresh bases distilled on each source (`rlt distill`)               students/<source>-d<seed>/
    grades        every student, and the undistilled base, on the held-out problems  grades/<student>.json
                  (`rlt eval`: greedy pass@1; pass@1 and pass@k from samples)
    report        students' pass@1 by arm with 95 % intervals, paired differences,   report/report.md, .json,
                  the RL runs' reward components and explanation text step by step,  *.png, inspect/*.html
                  a judge beside the reward's student

Units of variance: a student is one draw of everything that made it. An RL arm's i-th student is the teacher of the
i-th RL seed distilled with the i-th distillation seed, so resampling students (with problems, paired across arms)
resamples RL seeds and distillation seeds together (`rlt.measure.stats.seeded_difference`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import yaml

from rlt.errors import UsageError

logger = logging.getLogger(__name__)

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "micro"
STAGES = ("expert", "warmup", "rl", "explanations", "students", "grades", "report")

#: What each variant of an RL arm adds to the recipe. "conservative" is the paper's own: a KL penalty (β 0.04) to a
#: reference policy that follows the teacher (mixed in at α 0.9 every 32 steps) and a small learning rate.
VARIANTS = {
    "full": [],
    "conservative": ["--beta", "0.04", "--sync_ref_model", "true", "--ref_model_mixup_alpha", "0.9",
                     "--ref_model_sync_steps", "32", "--learning_rate", "1e-5"],
    "lora": ["--use_peft", "true", "--lora_r", "16", "--lora_alpha", "32", "--learning_rate", "1e-3"],
}  # fmt: skip


@dataclass
class ExperimentArguments:
    #: Least value of each numeric flag (`check_ranges`).
    MINIMUMS: ClassVar[dict[str, int]] = {"rl_steps": 1}

    output_dir: str = field(default="runs/experiment", metadata={"help": "Where every stage writes; the report too."})
    recipes: str = field(
        default=str(RECIPES),
        metadata={"help": "Directory with the stage recipes: traces, distill, warmup, train and eval.yaml."},
    )
    kl_scales: list[float] = field(
        default_factory=lambda: [3.0, 1.0, 0.0],
        metadata={"help": "λ of each RL arm: the KL coefficients become (λ, λ·α), α the train recipe's ratio; the "
                  "first is the paper's (3), 0 is r_SS alone. The first also gets the top/bottom halves."},
    )  # fmt: skip
    variants: list[str] = field(
        default_factory=lambda: ["full"],
        metadata={"help": f"RL variants of the first λ ({', '.join(VARIANTS)}); the other λ run 'full'."},
    )
    rl_seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds of each RL arm."})
    distill_seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2],
        metadata={"help": "Distillation seeds of each source; an RL arm's i-th RL seed is distilled with the i-th."},
    )
    rl_steps: int | None = field(default=None, metadata={"help": "Override the train recipe's max_steps."})
    halves: bool = field(
        default=True,
        metadata={"help": "Students on the higher- and on the lower-reward explanation of each problem (first λ)."},
    )
    stages: list[str] = field(
        default_factory=lambda: list(STAGES), metadata={"help": f"Stages to run, in order: {', '.join(STAGES)}."}
    )
    quick: bool = field(
        default=False,
        metadata={"help": "The wiring in minutes: 16 problems per part, one training step each, greedy grades."},
    )

    def __post_init__(self):
        unknown = [s for s in self.stages if s not in STAGES] + [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise UsageError(f"unknown stage or variant {unknown}: stages are {', '.join(STAGES)}; variants "
                             f"{', '.join(VARIANTS)}")  # fmt: skip
        if not self.kl_scales or not self.rl_seeds or not self.distill_seeds:
            raise UsageError("--kl_scales, --rl_seeds and --distill_seeds each need at least one value")
        if min(self.kl_scales) < 0:
            raise UsageError(f"--kl_scales are λ >= 0, got {self.kl_scales}")
        for stage in ("traces", "distill", "warmup", "train", "eval"):
            path = Path(self.recipes) / f"{stage}.yaml"
            if not path.is_file():
                raise UsageError(f"--recipes {self.recipes}: no {path.name} (the experiment runs every stage from "
                                 "its recipe)")  # fmt: skip


# ------------------------------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Teacher:
    name: str  # its directory under teachers/ and its explanations' file under sources/
    arm: str  # what its students are compared as: "warmup", "rl-lam3", "rl-lam3-conservative", ...
    kl_scale: float  # λ of the reward it was trained on (and its explanations are scored with)
    flags: tuple[str, ...] = ()  # what `rlt train` is given beyond the recipe
    seed: int = 0


@dataclass(frozen=True)
class Student:
    name: str  # its directory under students/ and its grades' file under grades/
    arm: str
    source: str | None  # the file under sources/ it is distilled on; None: the undistilled base
    seed: int = 0


class Plan:
    """Every teacher and student an experiment's arguments ask for, named as they are written."""

    def __init__(self, args: ExperimentArguments):
        self.args = args
        self.teachers = [Teacher("warmup", "warmup", args.kl_scales[0])]
        for i, scale in enumerate(args.kl_scales):
            for variant in args.variants if i == 0 else ["full"]:
                arm = f"rl-lam{scale:g}" + ("" if variant == "full" else f"-{variant}")
                self.teachers += [Teacher(f"{arm}-r{seed}", arm, scale, tuple(VARIANTS[variant]), seed)
                                  for seed in args.rl_seeds]  # fmt: skip
        d = args.distill_seeds
        self.students = [Student("base", "base", None)]
        for source in ("expert", "solutions"):
            self.students += [Student(f"{source}-d{s}", source, source, s) for s in d]
        self.students += [Student(f"warmup-d{s}", "warmup", "warmup.first", s) for s in d]
        first = f"rl-lam{args.kl_scales[0]:g}"
        for teacher in self.teachers[1:]:
            i = args.rl_seeds.index(teacher.seed)
            seed = d[i % len(d)]
            picks = [("first", "")] + ([("top", " top"), ("bottom", " bottom")] if args.halves and teacher.arm == first
                                       else [])  # fmt: skip
            self.students += [Student(f"{teacher.name}-{pick}-d{seed}", teacher.arm + label,
                                      f"{teacher.name}.{pick}", seed) for pick, label in picks]  # fmt: skip

    @property
    def arms(self) -> list[str]:
        return list(dict.fromkeys(s.arm for s in self.students))

    def comparisons(self) -> list[tuple[str, str]]:
        """(first, second) pairs the report gives paired differences for."""
        rl = [a for a in self.arms if a.startswith("rl-") and not a.endswith((" top", " bottom"))]
        pairs = [(a, "warmup") for a in rl] + [(a, "expert") for a in rl]
        pairs += [("warmup", "expert"), ("expert", "solutions"), ("expert", "base")]
        pairs += [(a, a.replace(" top", " bottom")) for a in self.arms if a.endswith(" top")]
        return pairs


# ------------------------------------------------------------------------------------------------------ stages


#: How a command runs: `rlt ARGV` with its output in the log file; returns its peak memory in GB.
Launch = Callable[[list[str], Path], float]


def launch_process(argv: list[str], log: Path) -> float:
    """Run `rlt ARGV` as its own process, its output in `log`; its peak resident memory in GB. A failure raises."""
    with log.open("w") as stream:
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        process = subprocess.Popen([sys.executable, "-m", "rlt.cli", *argv], stdout=stream, stderr=subprocess.STDOUT,
                                   env=env)  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise RuntimeError(f"rlt {argv[0]} failed (exit status {os.waitstatus_to_exitcode(status)}): see {log}")
    return usage.ru_maxrss / 2**20


class Runner:
    """Runs rlt commands one at a time (two would starve each other on a small machine), each as its own process by
    default (`launch`), its wall time and peak memory kept in timings.json."""

    def __init__(self, out: Path, quick: bool, launch: Launch = launch_process):
        self.out, self.quick, self.launch = out, quick, launch
        self.timings_path = out / "timings.json"
        self.timings = json.loads(self.timings_path.read_text()) if self.timings_path.exists() else {}
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, command: str, recipe: Path | None, *flags: str) -> None:
        config = ["--config", str(recipe)] if recipe is not None else []
        argv = [command, *config, *flags, *self.quick_flags(command)]
        print(f"[rlt experiment] {name}: rlt {' '.join(argv)}", flush=True)
        started = time.time()
        peak = self.launch(argv, self.out / "logs" / f"{name}.log")
        self.timings[name] = {"seconds": round(time.time() - started, 1), "peak_rss_gb": round(peak, 2)}
        self.timings_path.write_text(json.dumps(self.timings, indent=1))
        print(f"[rlt experiment] {name}: {self.timings[name]['seconds']:.0f} s", flush=True)

    def quick_flags(self, command: str) -> list[str]:
        if not self.quick:
            return []
        data = ["--max_problems", "16"]
        flags = {
            "traces": data,
            # no learning-rate warm-up: its first step has a rate of 0, and one step would train nothing
            "distill": ["--max_steps", "1", "--warmup_steps", "0"],
            "warmup": [*data, "--max_steps", "1", "--warmup_steps", "0"],
            "train": [*data, "--max_steps", "1", "--save_steps", "1"],
            "eval": [*data, "--num_samples", "0"],
        }
        return flags.get(command, [])  # score and inspect read what the stages wrote, as they wrote it


def _trained(directory: Path) -> bool:
    """Whether a training command finished there: the model and the final trainer state are saved."""
    return (directory / "config.json").exists() and (directory / "trainer_state.json").exists()


def recipe_value(recipe: Path, key: str):
    return yaml.safe_load(recipe.read_text())[key]


def kl_coeffs(recipe: Path, scale: float) -> list[str]:
    """The KL coefficients of λ = `scale`: (λ, λ·α), α the ratio of the train recipe's own pair."""
    base_mean, base_max = recipe_value(recipe, "kl_coeffs")
    ratio = base_max / base_mean if base_mean else 0.0
    return [f"{scale:g}", f"{scale * ratio:g}"]


def run_expert(plan: Plan, run: Runner, out: Path) -> None:
    recipes = Path(plan.args.recipes)
    for source, teacher in (("expert", "dataset:trace"), ("solutions", "dataset:solution")):
        path = out / "sources" / f"{source}.jsonl"
        if not path.exists():
            run(f"sources {source}", "traces", recipes / "traces.yaml", "--teacher", teacher, "--out", str(path))
    for student in [s for s in plan.students if s.arm == "expert"]:  # the reward's student and the judge among them
        _distill(plan, run, out, student)


def _distill(plan: Plan, run: Runner, out: Path, student: Student) -> None:
    directory = out / "students" / student.name
    if not _trained(directory):
        run(f"distill {student.name}", "distill", Path(plan.args.recipes) / "distill.yaml", "--traces",
            str(out / "sources" / f"{student.source}.jsonl"), "--output_dir", str(directory), "--seed",
            str(student.seed))  # fmt: skip


def reward_student(plan: Plan, out: Path) -> Path:
    """The reward's student: the base distilled on the expert's traces with the first distillation seed."""
    return out / "students" / f"expert-d{plan.args.distill_seeds[0]}"


def judge(plan: Plan, out: Path) -> Path | None:
    """A student no teacher trained against: the expert's student of the second distillation seed, when there is
    one."""
    seeds = plan.args.distill_seeds
    return out / "students" / f"expert-d{seeds[1]}" if len(seeds) > 1 else None


def run_warmup(plan: Plan, run: Runner, out: Path) -> None:
    directory = out / "teachers" / "warmup"
    if not _trained(directory):
        run("warmup", "warmup", Path(plan.args.recipes) / "warmup.yaml", "--output_dir", str(directory))


def run_rl(plan: Plan, run: Runner, out: Path) -> None:
    recipe = Path(plan.args.recipes) / "train.yaml"
    steps = ["--max_steps", str(plan.args.rl_steps)] if plan.args.rl_steps else []
    # every completion of a step logged: the report reads what the reward does to the text, step by step
    batch = recipe_value(recipe, "per_device_train_batch_size")
    for teacher in plan.teachers[1:]:
        directory = out / "teachers" / teacher.name
        if not _trained(directory):
            run(f"rl {teacher.name}", "train", recipe, "--model_name_or_path", str(out / "teachers" / "warmup"),
                "--student", str(reward_student(plan, out)), "--output_dir", str(directory), "--kl_coeffs",
                *kl_coeffs(recipe, teacher.kl_scale), "--seed", str(teacher.seed), "--completion_samples_per_step",
                str(batch), *steps, *teacher.flags)  # fmt: skip


def run_explanations(plan: Plan, run: Runner, out: Path) -> None:
    """Each teacher explains the training problems twice, scored by the reward it was trained on; the first sample of
    each problem, and its higher- and lower-reward one, are written as the sources students read."""
    recipe = Path(plan.args.recipes) / "train.yaml"
    length = str(recipe_value(recipe, "max_completion_length"))
    for teacher in plan.teachers:
        path = out / "sources" / f"{teacher.name}.jsonl"
        done = path.with_name(path.name + ".done")
        if not done.exists():
            run(f"explain {teacher.name}", "traces", Path(plan.args.recipes) / "traces.yaml", "--teacher",
                str(out / "teachers" / teacher.name), "--student", str(reward_student(plan, out)), "--out", str(path),
                "--num_samples", "2", "--max_new_tokens", length, "--kl_coeffs", *kl_coeffs(recipe, teacher.kl_scale),
                "--batch_size", "64")  # fmt: skip
            _write_picks(path, teacher.name)  # written again with every new sampling: never stale
            done.touch()
        elif not path.with_name(f"{teacher.name}.first.jsonl").exists():
            _write_picks(path, teacher.name)


def _write_picks(path: Path, teacher: str) -> None:
    """What students read of a teacher's explanations: the first sample of each problem, and of its two samples
    the higher- and the lower-reward one (`best_and_worst`), each file with the explanations' provenance."""
    from rlt.provenance import read_record
    from rlt.records import recover_jsonl, write_rows
    from rlt.sampling.traces import best_and_worst

    rows = recover_jsonl(path)
    best, worst = best_and_worst(rows)
    provenance = read_record(path.with_name(path.name + ".provenance.json"))
    for pick, chosen in {"first": [r for r in rows if r["sample"] == 0], "top": best, "bottom": worst}.items():
        write_rows(path.with_name(f"{teacher}.{pick}.jsonl"), chosen, provenance)


def run_students(plan: Plan, run: Runner, out: Path) -> None:
    for student in plan.students:
        if student.source is not None:
            _distill(plan, run, out, student)


def run_grades(plan: Plan, run: Runner, out: Path) -> None:
    for student in plan.students:
        path = out / "grades" / f"{student.name}.json"
        if not path.exists():
            # the undistilled base: the one every student starts from, the distill recipe's
            model = (recipe_value(Path(plan.args.recipes) / "distill.yaml", "model_name_or_path")
                     if student.source is None else str(out / "students" / student.name))  # fmt: skip
            run(f"grade {student.name}", "eval", Path(plan.args.recipes) / "eval.yaml", "--model", model, "--out",
                str(path))  # fmt: skip


def check_settings(args: ExperimentArguments, out: Path) -> None:
    """What every stage's output depends on (the recipes' text, --quick, --rl_steps) is recorded in
    output_dir/experiment.json, and a run with other values there is refused: each stage skips what is already on
    disk, so a full run must not pick up a quick run's one-step teachers. More λ, variants or seeds only add arms."""
    from rlt.provenance import read_record

    recipes = {p.name: p.read_text() for p in sorted(Path(args.recipes).glob("*.yaml"))}
    settings = {"recipes": recipes, "quick": args.quick, "rl_steps": args.rl_steps}
    path = out / "experiment.json"
    recorded = read_record(path)
    if recorded is not None and recorded != settings:
        changed = [k for k in settings if recorded.get(k) != settings[k]]
        raise UsageError(f"{out} holds an experiment run with other {', '.join(changed)}: its stages would be reused; "
                         "give another --output_dir")  # fmt: skip
    path.write_text(json.dumps(settings, indent=1))


def run_experiment(args: ExperimentArguments, launch: Launch = launch_process) -> Path | None:
    """Run the asked stages in order, each command through `launch`; the report's path when the report stage ran."""
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(args, out)
    plan, run = Plan(args), Runner(out, args.quick, launch)
    stages = {"expert": run_expert, "warmup": run_warmup, "rl": run_rl, "explanations": run_explanations,
              "students": run_students, "grades": run_grades}  # fmt: skip
    for stage in STAGES:
        if stage in args.stages and stage in stages:
            print(f"[rlt experiment] stage {stage}", flush=True)
            stages[stage](plan, run, out)
    if "report" in args.stages:
        from rlt.tools.experiment_report import write_report

        return write_report(plan, out, run)
    return None
