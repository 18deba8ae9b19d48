"""Do students learn more from the RL teacher? Distillation on each teacher's traces, measured where pass@1 is 0.

On the CPU recipes' CHAMP split (train problems for traces, the 64 held-out problems for measurement), one
explanation per train problem from the RL teacher and from its warm-up start, plus the reference explanations.
SmolLM2-135M students are distilled (recipes/cpu/distill.yaml) on:

    RL teacher, warm-up teacher, reference         every train problem
    RL top half, RL bottom half                    the RL traces split at their median reward: the paper's check
                                                   that the reward predicts what a student gains (spec §7)

and, with the undistilled student, measured on held-out problems by the mean log-prob of the gold solution after
`--thoughts` of the student's own sampled thoughts (`rlt.evaluate.solution_logprob_after_own_thought`), paired per
problem with 95 % bootstrap intervals, and by pass@k from the same draws.

    python benchmarks/teaching_distill.py --warmup runs/demo/warmup --rl runs/demo/rl \\
        --out benchmarks/results/teaching_distill_champ.json
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
from rlt.evaluate import pass_at_k, solution_logprob_after_own_thought
from rlt.formats import student_messages
from rlt.generation import SamplingConfig
from rlt.models import load_model
from rlt.reward import RewardConfig, RLTReward
from rlt.reward_check import bootstrap
from rlt.sft import DistillArguments, run_distill
from rlt.traces import collect_traces, write_rows

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "cpu"
PAIRS = [("RL teacher", "warm-up teacher"), ("RL teacher", "not distilled"), ("warm-up teacher", "not distilled"),
         ("reference", "not distilled"), ("RL top half", "RL bottom half")]  # fmt: skip


def main() -> None:
    parser = student_benchmark_parser(__doc__, "teaching_distill", "teaching_distill_champ.json", thought_tokens=192)
    parser.add_argument("--warmup", default="runs/demo/warmup")
    parser.add_argument("--rl", default="runs/demo/rl")
    args = parser.parse_args()

    began, seconds = time.perf_counter(), {}
    work = Path(args.work_dir)
    data = DataArguments(**recipe_split())
    train, held_out, _ = data.load()
    student, student_tokenizer = load_model(args.student)
    config = RewardConfig(teacher_temperature=0.7)
    sampling = SamplingConfig(args.explanation_tokens, 0.7, 1.0, args.batch_size, 42)

    traces = {}
    for name, spec in (("warm-up teacher", args.warmup), ("RL teacher", args.rl)):
        teacher, tokenizer = load_model(spec)
        reward = RLTReward(student, tokenizer, teacher, config, student_tokenizer=student_tokenizer)
        t = time.perf_counter()
        rows = collect_traces(train, teacher, reward, work / f"traces_{Path(spec).name}.jsonl", sampling)
        seconds[f"traces: {name}"] = time.perf_counter() - t
        traces[name] = sorted(rows, key=lambda r: r["index"])
    traces["reference"] = [{"index": i, "messages": student_messages(p.question, p.reasoning_trace, p.solution)}
                           for i, p in enumerate(train)]  # fmt: skip
    median = statistics.median(r["reward"] for r in traces["RL teacher"])
    traces["RL top half"] = [r for r in traces["RL teacher"] if r["reward"] > median]
    traces["RL bottom half"] = [r for r in traces["RL teacher"] if r["reward"] <= median]

    students = {"not distilled": args.student, **distill_students(traces, args.student, work, seconds)}

    thought_sampling = SamplingConfig(args.thought_tokens, 0.7, 1.0, args.batch_size, 42)
    measured = {}
    for name, spec in students.items():
        t = time.perf_counter()
        measured[name] = {"traces": len(traces.get(name, [])), **measure_student(spec, held_out, args.thoughts,
                                                                                 thought_sampling)[0]}  # fmt: skip
        seconds[f"measure: {name}"] = time.perf_counter() - t
    paired = paired_differences(measured, PAIRS)
    result = {
        **run_header(args, train, held_out),
        "rl_trace_reward_median": median,
        "mean_trace_reward": {
            n: statistics.fmean(r["reward"] for r in rows) for n, rows in traces.items() if n != "reference"
        },
        "students": measured,
        "paired_solution_logprob_after_own_thought": paired,
        "seconds": {**seconds, "total": time.perf_counter() - began},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("mean_trace_reward", "paired_solution_logprob_after_own_thought")},
                     indent=2))  # fmt: skip
    for name, m in measured.items():
        s = m["solution_logprob_after_own_thought"]
        print(f"{name}: {s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}] pass@1 {m['pass@1']:.3f}")


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


def distill_students(traces: dict[str, list[dict]], student: str, work: Path, seconds: dict) -> dict[str, str]:
    """A student distilled on each named set of trace rows (recipes/cpu/distill.yaml); the directory of each. A
    student already there is kept."""
    students = {}
    for name, rows in traces.items():
        slug = name.replace(" ", "_").replace("-", "_")
        path, out_dir = work / f"distill_{slug}.jsonl", work / f"student_{slug}"
        students[name] = str(out_dir)
        if (out_dir / "model.safetensors").exists():
            continue
        write_rows(path, rows)
        argv = ["--config", str(RECIPES / "distill.yaml"), "--model_name_or_path", student,
                "--traces", str(path), "--output_dir", str(out_dir)]  # fmt: skip
        t = time.perf_counter()
        run_distill(*parse((ModelConfig, DistillArguments, RLTSFTConfig), argv))
        seconds[f"distill: {name}"] = time.perf_counter() - t
        gc.collect()
    return students


def measure_student(spec: str, problems: list, thoughts: int, sampling: SamplingConfig) -> tuple[dict, list[str]]:
    """A student on held-out problems: the mean log-prob of the gold solution after its own thought (95 % interval,
    and per problem for pairing), and pass@k (k = 1..thoughts) from the same draws; and its thoughts."""
    model, tokenizer = load_model(spec)
    measure = solution_logprob_after_own_thought(model, tokenizer, problems, thoughts, sampling)
    del model
    gc.collect()
    correct = [sum(measure["correct"][i * thoughts : (i + 1) * thoughts]) for i in range(len(problems))]
    record = {
        "solution_logprob_after_own_thought": measure["summary"],
        "per_problem": measure["per_question"],
        "solved": sum(c > 0 for c in correct),
    }
    for k in range(1, thoughts + 1):
        record[f"pass@{k}"] = sum(pass_at_k(thoughts, c, k) for c in correct) / len(problems)
    return record, measure["thoughts"]


def paired_differences(measured: dict[str, dict], pairs: list[tuple[str, str]]) -> dict:
    """Per-problem differences of the measure between two students, with a 95 % interval and the count of wins, for
    each pair whose students are both measured."""
    paired = {}
    for a, b in pairs:
        if a in measured and b in measured:
            diffs = [x - y for x, y in zip(measured[a]["per_problem"], measured[b]["per_problem"], strict=True)]
            paired[f"{a} - {b}"] = {**bootstrap(diffs), "wins": sum(d > 0 for d in diffs), "n": len(diffs)}
    return paired


if __name__ == "__main__":
    main()
