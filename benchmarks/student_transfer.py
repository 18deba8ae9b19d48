"""One teacher for two students: does a teacher trained against both teach each as well as one trained against it?

Three RL teachers start from the demo's warm-up teacher and train with the CPU recipe (recipes/cpu/train.yaml, same
seed and steps), rewarded by SmolLM2-135M alone (A), by Gemma-3-270M alone (B, another family: 262k-token
vocabulary, its own turn markers), and by both (A+B, equal weights; `rlt.reward.students`). Each of them and the warm-up
teacher writes `--samples` explanations per held-out CHAMP problem (the recipe's split, same sampling seed); the
reference explanation and no explanation are the fixed sources. Every explanation is read by A and by B
(`rlt.measure.teaching.measure`: r_SS, the answer's log-prob, reward and KL, as written and with answer statements
stripped) and compared per problem with 95 % paired bootstrap intervals (`rlt.measure.teaching.compare`).

The transfer question: read by B, is the A+B teacher at least as good as the A-only teacher (which never saw B)?
Read by A, is it at least as good as the B-only teacher? And what does each single-student teacher gain on its own
student over the warm-up?

    make gemma   # the second student
    python benchmarks/student_transfer.py --steps 20 --out benchmarks/results/student_transfer.json

Stages resume: a finished RL run is skipped, and each teacher's explanations are appended to --work-dir.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import time
from pathlib import Path

import torch

from rlt.cli import main as rlt
from rlt.configs import DataArguments
from rlt.measure import teaching
from rlt.models import load_model
from rlt.reward import RewardConfig, RLTReward
from rlt.reward.formats import STRATOS
from rlt.sampling.generation import SamplingConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "cpu" / "train.yaml"
A, B = "smollm2-135m", "gemma3-270m"
TEACHERS = {"RL vs A": [A], "RL vs B": [B], "RL vs A+B": [A, B]}
PAIRS = [("RL vs A+B", "RL vs A"), ("RL vs A+B", "RL vs B"), ("RL vs A", "RL vs B"), ("RL vs A", "warm-up teacher"),
         ("RL vs B", "warm-up teacher"), ("RL vs A+B", "warm-up teacher")]  # fmt: skip


def recipe_split() -> dict:
    import yaml

    values = yaml.safe_load(RECIPE.read_text())
    return {key: values[key] for key in ("dataset", "max_solution_chars", "holdout", "temperature", "seed")}


def train_teachers(args, work: Path) -> dict[str, Path]:
    """The three RL teachers (a finished run is skipped by `rlt train` itself); their seconds, from each run."""
    teachers = {}
    for name, students in TEACHERS.items():
        out = work / name.replace(" ", "_").replace("+", "")
        argv = ["train", "--config", str(RECIPE), "--model_name_or_path", args.warmup, "--output_dir", str(out),
                "--max_steps", str(args.steps), "--report_to", "none"]  # fmt: skip
        for spec in students:
            argv += ["--student", spec]
        started = time.perf_counter()
        assert rlt(argv) == 0, f"rlt train failed for {name}"
        print(f"{name}: trained in {time.perf_counter() - started:.0f} s ({out})", flush=True)
        teachers[name] = out
    return teachers


def step_seconds(run: Path) -> dict:
    """Median seconds of a step, and of its student scoring, from the run's log."""
    import statistics

    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    steps = [h for h in history if "rlt/seconds_student_scoring" in h]
    return {
        "steps": len(steps),
        "student_scoring_s": statistics.median(h["rlt/seconds_student_scoring"] for h in steps),
        "generation_s": statistics.median(h["rlt/seconds_generation"] for h in steps),
        "reward_last5": [round(h["rlt/reward"], 4) for h in steps[-5:]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", default="runs/demo/warmup", help="The warm-up teacher every RL run starts from.")
    parser.add_argument("--steps", type=int, default=20, help="RL steps of each teacher (the recipe's: 20).")
    parser.add_argument("--samples", type=int, default=2, help="Explanations per held-out problem and teacher.")
    parser.add_argument("--problems", type=int, default=0, help="The first N held-out problems (0: all).")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--work-dir", default="runs/bench/student_transfer")
    parser.add_argument("--out", default="benchmarks/results/student_transfer.json")
    args = parser.parse_args()

    began, work = time.perf_counter(), Path(args.work_dir)
    teachers = train_teachers(args, work)
    split = recipe_split()
    data = DataArguments(dataset=split["dataset"], holdout=split["holdout"],
                         max_solution_chars=split["max_solution_chars"])  # fmt: skip
    _, problems, _ = data.load()
    problems = problems[: args.problems or None]
    config = RewardConfig(teacher_temperature=split["temperature"])
    sampling = SamplingConfig(args.max_new_tokens, split["temperature"], 1.0, args.batch_size, split["seed"])
    judges = {spec: load_model(spec) for spec in (A, B)}
    teacher_model = functools.lru_cache(maxsize=None)(load_model)  # each teacher loaded once

    def reward_for(teacher: str, judge: str = A) -> RLTReward:
        reader, reader_tokenizer = judges[judge]
        model, tokenizer = teacher_model(teacher)
        return RLTReward(reader, tokenizer, model, config, student_tokenizer=reader_tokenizer)

    sources = teaching.fixed_sources(problems, STRATOS.explanation[1])
    teacher_of = {"none": args.warmup, "reference": args.warmup}  # their KL: against the warm-up teacher
    for name, spec in (("warm-up teacher", args.warmup), *((n, str(p)) for n, p in teachers.items())):
        path = work / "heldout" / f"{name.replace(' ', '_').replace('+', '')}.jsonl"
        sources[name] = teaching.teacher_source(problems, reward_for(spec), path, sampling, args.samples)
        teacher_of[name] = spec
        print(f"{name}: {len(sources[name])} explanations", flush=True)
    measured = {name: {judge: teaching.measure(rows, problems, reward_for(teacher_of[name], judge)) for judge in judges}
                for name, rows in sources.items()}  # fmt: skip
    comparison = teaching.compare(measured, problems, PAIRS)
    verdicts = {f"{a} - {b}": teaching.verdict(comparison, a, b) for a, b in PAIRS}
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {"device": "cpu", "torch_threads": torch.get_num_threads(), "dtype": "float32"},
        "args": vars(args),
        "students": {"A": A, "B": B},
        "teachers": {name: {"run": str(run), **step_seconds(run)} for name, run in teachers.items()},
        "seconds": time.perf_counter() - began,
        "verdicts": verdicts,
        **comparison,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    table = "\n".join(teaching.markdown(comparison))
    out.with_suffix(".md").write_text(table + "\n\n" + "\n\n".join(verdicts.values()) + "\n")
    print(table)


if __name__ == "__main__":
    main()
