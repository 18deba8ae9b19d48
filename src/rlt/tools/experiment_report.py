"""The report of `rlt experiment`: what students of each source solve, what RL did to the teachers, in plain words.

report.md     the verdict (RL against its warm-up, against the expert's traces; the reward's top half against
              its bottom half), the students' pass@1 and pass@k by arm with 95 % intervals, paired differences,
              the RL runs' reward components and explanation text at their start and end, a judge beside the
              reward's student, stage times
report.json   every number above, per student and per RL step
pass_at_1.png students' greedy and sampled pass@1 by arm, with intervals
rl_steps.png  the RL runs step by step: reward, r_SS, KL, length, and what the explanations' text does
inspect/      `rlt inspect` pages of a few explanations of each teacher
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from rlt.measure.stats import present

if TYPE_CHECKING:
    from rlt.experiment import Plan, Runner

#: Per-problem measures of a graded student: greedy pass@1; pass@1 and pass@k from its samples.
MEASURES = ("greedy", "sampled", "pass@k")

#: Per RL step, from the run's log history: (the key TRL or rlt logs, the name in the report).
LOGGED = (("reward", "reward"), ("rlt/solution_logprob_mean", "r_SS mean"), ("rlt/kl_mean", "KL mean"),
          ("completions/mean_length", "length (tokens)"), ("rlt/match_rate", "closes its tag"))  # fmt: skip


def per_problem(grades: dict) -> dict[str, list[float]]:
    """A graded student's measures per held-out problem, in the problems' order (sampled measures only when it was
    sampled)."""
    records = sorted(grades["records"], key=lambda r: r["index"])
    measures = {"greedy": [float(r["correct"]) for r in records]}
    samples = grades["provenance"]["settings"]["eval"]["num_samples"]
    if samples:
        measures["sampled"] = [r["samples_correct"] / samples for r in records]
        measures["pass@k"] = [float(r["samples_correct"] > 0) for r in records]
    return measures


def student_table(plan: Plan, out: Path) -> tuple[dict, dict, dict]:
    """(per arm and measure the mean with its interval, paired differences, per student its means): intervals over
    problems and the arm's students (`seeded_difference`, against an arm of zeros for an arm's own value)."""
    from rlt.measure.stats import seeded_difference

    graded: dict[str, list[dict[str, list[float]]]] = {}
    per_student, problems = {}, None
    for student in plan.students:
        path = out / "grades" / f"{student.name}.json"
        if path.exists():
            grades = json.loads(path.read_text())
            # students are paired by problem: every grade must come from the same problems, graded the same way
            settings = grades["provenance"]["settings"]
            asked = (settings["data"], {k: v for k, v in settings["eval"].items() if k not in ("model", "out")})
            if problems is not None and asked != problems:
                raise ValueError(f"{path} grades other problems or grades them otherwise than the others: "
                                 f"{asked} against {problems}")  # fmt: skip
            problems = asked
            measures = per_problem(grades)
            graded.setdefault(student.arm, []).append(measures)
            per_student[student.name] = {m: statistics.mean(v) for m, v in measures.items()}
    arms, differences = {}, {}
    for arm, students in graded.items():
        zeros = [[0.0] * len(students[0]["greedy"])]
        arms[arm] = {m: seeded_difference([s[m] for s in students], zeros) for m in students[0]}
        arms[arm]["students"] = len(students)
    for first, second in plan.comparisons():
        if first in graded and second in graded:
            shared = [m for m in MEASURES if m in graded[first][0]]
            differences[f"{first} - {second}"] = {
                m: seeded_difference([s[m] for s in graded[first]], [s[m] for s in graded[second]]) for m in shared
            }
    return arms, differences, per_student


def rl_steps(plan: Plan, out: Path) -> dict[str, dict[str, list]]:
    """Per RL arm, per step (the mean over its seeds that reached it): what the log history says and what the
    explanations' text shows (`explanation_text`)."""
    from rlt.tools.plots import log_history

    by_arm: dict[str, dict[int, list[dict]]] = {}
    for teacher in plan.teachers[1:]:
        directory = out / "teachers" / teacher.name
        try:
            history = log_history(directory)
        except FileNotFoundError:
            continue
        steps = {entry["step"]: {name: entry[key] for key, name in LOGGED if key in entry}
                 for entry in history if "reward" in entry}  # fmt: skip
        for step, rows in _completions_by_step(directory / "completions.jsonl").items():
            steps.setdefault(step + 1, {}).update(explanation_text(rows))  # rows count steps from 0, the log from 1
        for step, values in steps.items():
            by_arm.setdefault(teacher.arm, {}).setdefault(step, []).append(values)
    curves = {}
    for arm, steps in by_arm.items():
        names = list(dict.fromkeys(name for runs in steps.values() for values in runs for name in values))
        curve = {"step": sorted(steps)}
        for name in names:
            curve[name] = [_mean([v.get(name) for v in steps[s]]) for s in curve["step"]]
        curves[arm] = curve
    return curves


def _completions_by_step(path: Path) -> dict[int, list[dict]]:
    from rlt.records import recover_jsonl

    grouped: dict[int, list[dict]] = {}
    for row in recover_jsonl(path):
        grouped.setdefault(row["step"], []).append(row)
    return grouped


def explanation_text(rows: list[dict]) -> dict[str, float]:
    """What a set of countdown explanations' text does: back-ups ("Back to"), the share of their arithmetic that is
    true, the share that walks the shown solution's path, and the share that copies a line of it."""
    from rlt.data.countdown import arithmetic, copies_solution_line, walks_solution_path

    true, stated = map(sum, zip(*(arithmetic(r["completion"]) for r in rows), strict=True))
    return {
        "back-ups": statistics.mean(r["completion"].count("Back to") for r in rows),
        "true arithmetic": true / stated if stated else float("nan"),
        "walks the path": statistics.mean(walks_solution_path(r["completion"], r["solution"]) for r in rows),
        "copies a solution line": statistics.mean(copies_solution_line(r["completion"], r["solution"]) for r in rows),
    }


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if present(v)]
    return statistics.mean(kept) if kept else None


def judged(plan: Plan, out: Path, run: Runner) -> dict[str, dict[str, float]]:
    """Per teacher, the mean solution log-prob after the explanations its students read, by the reward's student and
    by the judge (another seed of the expert's student, which no teacher trained against), both through `rlt score`
    with the recipe's format and the teacher's reward (only r_SS is compared: the KL is each reader's own)."""
    from rlt.experiment import judge, reward_student

    reader = judge(plan, out)
    result = {}
    for teacher in plan.teachers:
        source = out / "sources" / f"{teacher.name}.first.jsonl"
        if not source.exists():
            continue
        entry = {}
        for name, student in (("reward student", reward_student(plan, out)), ("judge", reader)):
            if student is None or not (student / "config.json").exists():
                continue
            scored = out / "report" / "readers" / f"{teacher.name}.{name.replace(' ', '-')}.jsonl"
            if not scored.exists():
                run(f"read {teacher.name} ({name})", "score", None, str(source), "--student", str(student), "--out",
                    str(scored), *_reward_flags(plan, out, teacher))  # fmt: skip
            entry[name] = _mean([json.loads(line).get("solution_logprob_mean") for line in scored.open()])
        result[teacher.name] = entry
    return result


def _reward_flags(plan: Plan, out: Path, teacher) -> list[str]:
    """How `rlt score` and `rlt inspect` must read a teacher's explanations: the teacher, the recipe's tag style and
    sampling temperature, the KL coefficients of the teacher's λ."""
    from rlt.experiment import kl_coeffs, recipe_value

    recipe = Path(plan.args.recipes) / "train.yaml"
    return ["--teacher", str(out / "teachers" / teacher.name), "--style", recipe_value(recipe, "style"),
            "--teacher_temperature", str(recipe_value(recipe, "temperature")), "--kl_coeffs",
            *kl_coeffs(recipe, teacher.kl_scale)]  # fmt: skip


def inspect_pages(plan: Plan, out: Path, run: Runner, rows: int = 6) -> list[Path]:
    """`rlt inspect` pages of the first few explanations of each teacher, shaded by the reward's student."""
    from rlt.experiment import reward_student

    pages = []
    for teacher in plan.teachers:
        source, page = (
            out / "sources" / f"{teacher.name}.first.jsonl",
            out / "report" / "inspect" / f"{teacher.name}.html",
        )
        if source.exists() and not page.exists():
            page.parent.mkdir(parents=True, exist_ok=True)
            run(f"inspect {teacher.name}", "inspect", None, str(source), "--out", str(page), "--limit", str(rows),
                "--student", str(reward_student(plan, out)), *_reward_flags(plan, out, teacher))  # fmt: skip
        if page.exists():
            pages.append(page)
    return pages


# ------------------------------------------------------------------------------------------------------- writing


def verdict(differences: dict, first: str, second: str, measure: str = "greedy") -> str:
    """One sentence: whether `first`'s students solved more than `second`'s, by the interval of the difference."""
    stat = differences.get(f"{first} - {second}", {}).get(measure)
    if stat is None:
        return f"{first} against {second}: not measured."
    interval = f"{stat['mean']:+.3f} [{stat['low']:+.3f}, {stat['high']:+.3f}]"
    if stat["low"] > 0:
        return f"**{first} beat {second}**: {interval} {measure} pass@1, paired over problems and students."
    if stat["high"] < 0:
        return f"**{first} did worse than {second}**: {interval} {measure} pass@1, paired over problems and students."
    return f"**{first} and {second} are not told apart**: {interval} {measure} pass@1 (the interval holds 0)."


def write_report(plan: Plan, out: Path, run: Runner) -> Path:
    """The report's files; `rlt score` and `rlt inspect` (the readers, the pages) run through the experiment's
    `run`, timed like every stage."""
    from rlt.experiment import judge, reward_student
    from rlt.measure.stats import ci

    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    arms, differences, per_student = student_table(plan, out)
    curves = rl_steps(plan, out)
    readers = judged(plan, out, run)
    pages = inspect_pages(plan, out, run)
    timings = run.timings
    plots = [p for p in (_plot_pass_at_1(arms, report / "pass_at_1.png"), _plot_rl(curves, report / "rl_steps.png"))
             if p is not None]  # fmt: skip
    first_rl = f"rl-lam{plan.args.kl_scales[0]:g}"
    rl_arms = [a for a in arms if a.startswith("rl-") and not a.endswith((" top", " bottom"))]
    lines = ["# rlt experiment", "", f"Recipes `{plan.args.recipes}`; λ {plan.args.kl_scales}; RL seeds "
             f"{plan.args.rl_seeds}; distillation seeds {plan.args.distill_seeds}"
             + (" (**`--quick`: one step of each training, a wiring check, no result**)" if plan.args.quick else "")
             + ".", "", "## Verdict", ""]  # fmt: skip
    lines += [f"- {verdict(differences, arm, 'warmup')}" for arm in rl_arms]
    lines += [f"- {verdict(differences, arm, 'expert')}" for arm in rl_arms]
    halves = verdict(differences, f"{first_rl} top", f"{first_rl} bottom")
    lines += [f"- {verdict(differences, 'warmup', 'expert')}", f"- Does the reward predict gain? {halves}"]
    lines += ["", "## Students on the held-out problems", "",
              "Each arm's students are fresh bases distilled on that source's explanations of the same training "
              "problems; intervals are 95 % bootstraps over problems and the arm's students.", "",
              "| arm | students | greedy pass@1 | pass@1 (sampled) | pass@k |", "|---|---|---|---|---|"]  # fmt: skip
    for arm, row in arms.items():
        lines.append(f"| {arm} | {row['students']} | " + " | ".join(ci(row.get(m)) for m in MEASURES) + " |")
    lines += [
        "",
        "| difference (paired per problem) | greedy pass@1 | pass@1 (sampled) | pass@k |",
        "|---|---|---|---|",
    ]
    for name, row in differences.items():
        lines.append(f"| {name} | " + " | ".join(ci(row.get(m), signed=True) for m in MEASURES) + " |")
    lines += ["", "## What RL did to the teachers", "",
              "Means over each arm's seeds, at the first and the last 10 steps.", "",
              "| arm | measure | first 10 steps | last 10 steps |", "|---|---|---|---|"]  # fmt: skip
    for arm, curve in curves.items():
        for name, values in curve.items():
            if name != "step":
                lines.append(f"| {arm} | {name} | {_fmt(_mean(values[:10]))} | {_fmt(_mean(values[-10:]))} |")
    lines += ["", "## Two readers of the students' explanations", "",
              f"Mean solution log-prob (r_SS's mean term) after each teacher's explanations of the training problems, "
              f"read by the reward's student (`{reward_student(plan, out)}`, which RL optimised against) and by the "
              f"judge (`{judge(plan, out)}`: the expert's student of another distillation seed, which no teacher "
              "trained against).", "", "| teacher | reward's student | judge |", "|---|---|---|"]  # fmt: skip
    for teacher, entry in readers.items():
        lines.append(f"| {teacher} | {_fmt(entry.get('reward student'))} | {_fmt(entry.get('judge'))} |")
    lines += ["", "## Plots and pages", "", *[f"![{p.stem}]({p.relative_to(report)})" for p in plots], "",
              *[f"- [{p.stem}]({p.relative_to(report)})" for p in pages], "", "## Stage times", "",
              "| stage | seconds | peak RSS (GB) |", "|---|---|---|",
              *[f"| {name} | {t['seconds']:.0f} | {t['peak_rss_gb']} |" for name, t in timings.items()],
              f"| all | {sum(t['seconds'] for t in timings.values()):.0f} | "
              f"{max((t['peak_rss_gb'] for t in timings.values()), default=0)} |"]  # fmt: skip
    (report / "report.md").write_text("\n".join(lines) + "\n")
    record = {"arms": arms, "differences": differences, "students": per_student, "rl_steps": curves,
              "readers": readers, "timings": timings}  # fmt: skip
    (report / "report.json").write_text(json.dumps(record, indent=1))
    return report / "report.md"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _plot_pass_at_1(arms: dict, path: Path) -> Path | None:
    """Greedy and sampled pass@1 by arm, the bars' whiskers the 95 % intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not arms:
        return None
    names = list(arms)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names)), 4))
    width = 0.4
    for offset, measure in ((-width / 2, "greedy"), (width / 2, "sampled")):
        stats = [arms[n].get(measure) for n in names]
        xs = [i + offset for i, s in enumerate(stats) if s is not None]
        kept = [s for s in stats if s is not None]
        if kept:
            errors = [[s["mean"] - s["low"] for s in kept], [s["high"] - s["mean"] for s in kept]]
            ax.bar(xs, [s["mean"] for s in kept], width, yerr=errors, capsize=3, label=f"{measure} pass@1")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("held-out problems solved")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_rl(curves: dict, path: Path) -> Path | None:
    """One panel per measure of the RL runs, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(n for c in curves.values() for n in c if n != "step"))
    if not names:
        return None
    columns = 3
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for arm, curve in curves.items():
            points = [(s, v) for s, v in zip(curve["step"], curve.get(name, []), strict=False) if v is not None]
            if points:
                ax.plot(*zip(*points, strict=True), label=arm, linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("RL step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
