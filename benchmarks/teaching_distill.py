"""Do students learn more from the RL teacher? Distillation on each teacher's traces, across training seeds.

On the CPU recipes' CHAMP split (train problems for traces, the held-out problems for measurement), explanations of
every train problem from the RL teacher (two per problem) and from its warm-up start (one). SmolLM2-135M students
are distilled (recipes/cpu/distill.yaml) with `--seeds` training seeds each on:

    warm-up teacher, RL teacher     one explanation per train problem (the RL teacher's first sample)
    RL best, RL worst               of the RL teacher's two samples of each problem, the higher- and the lower-reward
                                    one: the same problems in both arms, so the split is by reward alone (the paper's
                                    check that the reward predicts what a student gains, spec §7)
    reference                       the dataset's own explanations (with `--arms`; not run by default)

None of these students is the reward's student, so a teacher that hacked its reward gains nothing here for free.
Each student, and the undistilled one, is measured on held-out problems by the mean log-prob of the gold solution
after `--thoughts` of its own sampled thoughts (`rlt.measure.evaluate.solution_logprob_after_own_thought`; the
sampling seed is the training seed), and by pass@k from the same draws. Arms are compared per problem, with a 95 %
interval over problems and training seeds together (`rlt.measure.stats.seeded_difference`).

    python benchmarks/teaching_distill.py --warmup runs/demo/warmup --rl runs/demo/rl \\
        --out benchmarks/results/teaching_distill_champ_seeds.json
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import statistics
import time
from pathlib import Path

import torch
from teaching_quality import recipe_split  # a sibling script: run as `python benchmarks/teaching_distill.py`
from trl import ModelConfig

from rlt.configs import DataArguments, RLTSFTConfig, parse
from rlt.measure.evaluate import pass_at_k, solution_logprob_after_own_thought
from rlt.measure.stats import bootstrap, ci, paired, seeded_difference
from rlt.models import load_model
from rlt.records import write_rows
from rlt.reward import RewardConfig, RLTReward
from rlt.reward.formats import student_messages
from rlt.sampling.generation import SamplingConfig
from rlt.sampling.traces import best_and_worst, collect_traces
from rlt.train.sft import DistillArguments, run_distill

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "cpu"
ARMS = ("warm-up teacher", "RL teacher", "RL best", "RL worst", "reference")
PAIRS = [("RL teacher", "warm-up teacher"), ("RL teacher", "not distilled"), ("warm-up teacher", "not distilled"),
         ("reference", "not distilled"), ("RL best", "RL worst")]  # fmt: skip


def main() -> None:
    parser = student_benchmark_parser(__doc__, "teaching_distill", "teaching_distill_champ_seeds.json", 192)
    parser.add_argument("--warmup", default="runs/demo/warmup")
    parser.add_argument("--rl", default="runs/demo/rl")
    parser.add_argument("--seeds", type=int, default=3, help="Training (and measuring) seeds per arm.")
    parser.add_argument("--arms", nargs="+", default=list(ARMS[:4]), choices=ARMS)
    args = parser.parse_args()

    began, seconds = time.perf_counter(), {}
    work = Path(args.work_dir)
    data = DataArguments(**recipe_split())
    train, held_out, _ = data.load()
    student, student_tokenizer = load_model(args.student)
    config = RewardConfig(teacher_temperature=0.7)
    sampling = SamplingConfig(args.explanation_tokens, 0.7, 1.0, args.batch_size, 42)

    samples = {"warm-up teacher": (args.warmup, 1), "RL teacher": (args.rl, 2)}
    collected = {}
    for name, (spec, count) in samples.items():
        teacher, tokenizer = load_model(spec)
        reward = RLTReward(student, tokenizer, teacher, config, student_tokenizer=student_tokenizer)
        t = time.perf_counter()
        path = work / f"traces_{Path(spec).name}_x{count}.jsonl"
        rows = collect_traces(train, teacher, reward, path, sampling, num_samples=count)
        seconds[f"traces: {name}"] = time.perf_counter() - t
        collected[name] = sorted(rows, key=lambda r: (r["index"], r["sample"]))
        del teacher
        gc.collect()
    best, worst = best_and_worst(collected["RL teacher"])
    traces = {
        "warm-up teacher": collected["warm-up teacher"],
        "RL teacher": [r for r in collected["RL teacher"] if r["sample"] == 0],
        "RL best": best,
        "RL worst": worst,
        "reference": [{"index": i, "messages": student_messages(p.question, p.reasoning_trace, p.solution)}
                      for i, p in enumerate(train)],
    }  # fmt: skip
    traces = {name: traces[name] for name in args.arms}

    measured: dict[str, list[dict]] = {}
    for seed in range(args.seeds):
        thought_sampling = SamplingConfig(args.thought_tokens, 0.7, 1.0, args.batch_size, seed)
        # the undistilled student has no training seed: measured once, as the floor every arm is read against
        undistilled = {"not distilled": args.student} if seed == 0 else {}
        students = {**undistilled, **distill_students(traces, args.student, work, seconds, seed)}
        for name, spec in students.items():
            done = work / f"measure_{name.replace(' ', '_')}_seed{seed}.json"  # a rerun resumes after it
            if done.exists():
                record = json.loads(done.read_text())
            else:
                t = time.perf_counter()
                record = measure_student(spec, held_out, args.thoughts, thought_sampling)[0]
                done.write_text(json.dumps(record))
                seconds[f"measure: {name} seed {seed}"] = time.perf_counter() - t
            measured.setdefault(name, []).append({"seed": seed, **record})
        write_result(args, train, held_out, traces, measured, began, seconds)  # each seed's results as they land
    write_result(args, train, held_out, traces, measured, began, seconds, final=True)


def write_result(args, train, held_out, traces, measured, began, seconds, final: bool = False) -> None:
    """The result file: per arm its seeds' measures, and the arms' paired differences over problems and seeds."""
    result = {
        **run_header(args, train, held_out),
        "complete": final,
        "traces": {name: len(rows) for name, rows in traces.items()},
        "mean_trace_reward": mean_trace_rewards(traces),
        "students": {name: summarize_seeds(runs) for name, runs in measured.items()},
        "paired_over_problems_and_seeds": {
            f"{a} - {b}": seeded_difference(
                [r["per_problem"] for r in measured[a]], [r["per_problem"] for r in measured[b]]
            )
            for a, b in PAIRS
            if a in measured and b in measured
        },
        "per_seed": measured,
        "seconds": {**seconds, "total": time.perf_counter() - began},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for key, d in result["paired_over_problems_and_seeds"].items():
        if d is not None:
            print(f"{key}: {ci(d, signed=True)} over {d['n']} problems, seeds {d['seeds']}")


def mean_trace_rewards(traces: dict[str, list[dict]]) -> dict[str, float]:
    """Each teacher arm's mean reward over its scored traces."""
    means = {}
    for name, rows in traces.items():
        scored = [r["reward"] for r in rows if "reward" in r and r.get("aligned", True)]
        if scored:
            means[name] = statistics.fmean(scored)
    return means


def summarize_seeds(runs: list[dict]) -> dict:
    """An arm over its seeds: the measure's mean over problems and seeds (interval over problems of the seed-mean),
    each seed's mean, and solved problems and pass@1 per seed."""
    per_problem = [statistics.fmean(values) for values in zip(*(r["per_problem"] for r in runs), strict=True)]
    return {
        "seeds": len(runs),
        "solution_logprob_after_own_thought": bootstrap(per_problem),
        "per_seed_mean": [r["solution_logprob_after_own_thought"]["mean"] for r in runs],
        "solved_per_seed": [r["solved"] for r in runs],
        "pass@1_per_seed": [r["pass@1"] for r in runs],
    }


def student_benchmark_parser(doc: str, name: str, results: str, thought_tokens: int) -> argparse.ArgumentParser:
    """The options every benchmark that distils and measures students shares."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="smollm2-135m")
    parser.add_argument("--thoughts", type=int, default=2, help="Sampled thoughts (answers) per held-out problem.")
    parser.add_argument("--thought-tokens", type=int, default=thought_tokens, help="Longest thought plus own solution.")
    parser.add_argument("--explanation-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--work-dir", default=f"runs/bench/{name}")
    parser.add_argument("--out", default=f"benchmarks/results/{results}")
    return parser


def run_header(args, train: list, held_out: list) -> dict:
    """What a result file says first: when, on what, with which arguments, on how many problems."""
    return {
        "date": datetime.date.today().isoformat(),
        "machine": {"device": "cpu", "torch_threads": torch.get_num_threads(), "dtype": "float32"},
        "args": vars(args),
        "train_problems": len(train),
        "held_out_problems": len(held_out),
    }


def distill_students(
    traces: dict[str, list[dict]], student: str, work: Path, seconds: dict, seed: int | None = None
) -> dict[str, str]:
    """A student distilled on each named set of trace rows (recipes/cpu/distill.yaml, with training seed `seed`, or
    the recipe's); the directory of each. A student already there is kept."""
    students = {}
    for name, rows in traces.items():
        slug = name.replace(" ", "_").replace("-", "_") + ("" if seed is None else f"_seed{seed}")
        path, out_dir = work / f"distill_{slug}.jsonl", work / f"student_{slug}"
        students[name] = str(out_dir)
        if (out_dir / "model.safetensors").exists():
            continue
        write_rows(path, rows)
        argv = ["--config", str(RECIPES / "distill.yaml"), "--model_name_or_path", student,
                "--traces", str(path), "--output_dir", str(out_dir)]  # fmt: skip
        if seed is not None:
            argv += ["--seed", str(seed)]
        t = time.perf_counter()
        run_distill(*parse((ModelConfig, DistillArguments, RLTSFTConfig), argv))
        seconds[f"distill: {name}" + ("" if seed is None else f" seed {seed}")] = time.perf_counter() - t
        gc.collect()
    return students


def measure_student(
    spec: str,
    problems: list,
    thoughts: int,
    sampling: SamplingConfig,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[dict, list[str]]:
    """A student on held-out problems: the mean log-prob of the gold solution after its own thought (95 % interval,
    and per problem for pairing), and pass@k (k = 1..thoughts) from the same draws, with each problem's count of
    right answers; and its thoughts."""
    model, tokenizer = load_model(spec, dtype, device)
    measure = solution_logprob_after_own_thought(model, tokenizer, problems, thoughts, sampling)
    del model
    gc.collect()
    correct = [sum(measure["correct"][i * thoughts : (i + 1) * thoughts]) for i in range(len(problems))]
    record = {
        "solution_logprob_after_own_thought": measure["summary"],
        "per_problem": measure["per_question"],
        "correct": correct,
        "solved": sum(c > 0 for c in correct),
    }
    for k in range(1, thoughts + 1):
        record[f"pass@{k}"] = sum(pass_at_k(thoughts, c, k) for c in correct) / len(problems)
    return record, measure["thoughts"]


def paired_differences(measured: dict[str, dict], pairs: list[tuple[str, str]]) -> dict:
    """Per-problem differences of the measure between two students, with a 95 % interval and the count of wins, for
    each pair whose students are both measured."""
    differences = {}
    for a, b in pairs:
        if a in measured and b in measured:
            differences[f"{a} - {b}"] = paired(measured[a]["per_problem"], measured[b]["per_problem"])
    return differences


if __name__ == "__main__":
    main()
