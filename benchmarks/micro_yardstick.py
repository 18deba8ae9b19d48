"""The micro-world's yardstick (BENCHMARKS §12): how much do students learn from explanations, by source?

Fresh `countdown-tiny` bases are distilled (`rlt distill`, recipes/micro/distill.yaml) on each source's explanations
of the same training problems, one student per source and seed, and graded on the 500 held-out problems by the
exact checker (`rlt eval`, recipes/micro/eval.yaml): greedy pass@1, and pass@1 / pass@4 from 4 samples at τ 0.7.

    traces      the generator's search traces (the expert data: R1's in the paper)   --teacher dataset:trace
    solutions   the worked solutions alone (Stream of Search's optimal paths)        --teacher dataset:solution
    base        the undistilled base

Intervals are 95 % bootstraps over problems and distillation seeds together (`rlt.measure.stats.seeded_difference`),
paired by problem. Every stage resumes: a student or an evaluation already on disk is kept.

    python benchmarks/micro_yardstick.py --seeds 0 1 2 [--work runs/micro-yardstick]

`--base` names another base every student starts from (BENCHMARKS §12g: the one-target base before it shipped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "micro"
RLT = [sys.executable, "-m", "rlt.cli"]
SOURCES = {"traces": "dataset:trace", "solutions": "dataset:solution"}


def rlt(timings: Path, name: str, *args: str) -> None:
    """Run an rlt command; its wall time and peak RSS go to `timings` (kept across resumed runs)."""
    print("$ rlt " + " ".join(args), flush=True)
    started = time.time()
    process = subprocess.Popen([*RLT, *args], cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"rlt {args[0]} failed ({status})")
    recorded = json.loads(timings.read_text()) if timings.exists() else {}
    recorded[name] = {"seconds": round(time.time() - started, 1), "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2)}
    timings.write_text(json.dumps(recorded, indent=1))


def per_problem(result: dict, samples: int) -> dict[str, list[float]]:
    records = result["records"]
    return {
        "greedy": [float(r["correct"]) for r in records],
        "sampled": [r["samples_correct"] / samples for r in records],
        "pass@4": [float(r["samples_correct"] > 0) for r in records],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--problems", type=int, default=None, help="at most this many training problems (all)")
    parser.add_argument("--work", default="runs/micro-yardstick")
    parser.add_argument("--out", default="benchmarks/results/micro_yardstick.json")
    parser.add_argument("--base", default="countdown-tiny", help="the base every student starts from")
    args = parser.parse_args()
    work = ROOT / args.work
    work.mkdir(parents=True, exist_ok=True)
    timings = work / "timings.json"
    evals: dict[str, Path] = {}
    limit = ["--max_problems", str(args.problems)] if args.problems else []
    for name, teacher in SOURCES.items():
        source = work / "sources" / f"{name}.jsonl"
        if not source.exists():
            rlt(timings, f"traces {name}", "traces", "--config", str(RECIPES / "traces.yaml"), "--teacher", teacher,
                "--out", str(source), *limit)  # fmt: skip
        for seed in args.seeds:
            student = work / "students" / f"{name}-{seed}"
            if not (student / "distill.json").exists():
                rlt(timings, f"distill {name}-{seed}", "distill", "--config", str(RECIPES / "distill.yaml"),
                    "--traces", str(source), "--output_dir", str(student), "--seed", str(seed),
                    "--model_name_or_path", args.base)  # fmt: skip
            evals[f"{name}-{seed}"] = student
    evals["base"] = Path(args.base)
    results = {}
    for name, model in evals.items():
        out = work / "eval" / f"{name}.json"
        if not out.exists():
            rlt(timings, f"eval {name}", "eval", "--config", str(RECIPES / "eval.yaml"), "--model", str(model),
                "--out", str(out))  # fmt: skip
        results[name] = json.loads(out.read_text())
    summarize(results, args, json.loads(timings.read_text()) if timings.exists() else {})


def summarize(results: dict[str, dict], args, timings: dict[str, float]) -> None:
    from rlt.measure.stats import ci, seeded_difference

    samples = results["base"]["provenance"]["settings"]["eval"]["num_samples"]
    arms = {"base": [per_problem(results["base"], samples)]}
    for name in SOURCES:
        arms[name] = [per_problem(results[f"{name}-{seed}"], samples) for seed in args.seeds]
    n = len(arms["base"][0]["greedy"])
    zero = [[0.0] * n]
    table = {}
    for arm, runs in arms.items():
        table[arm] = {m: seeded_difference([run[m] for run in runs], zero) for m in ("greedy", "sampled", "pass@4")}
    differences = {
        f"{a} - {b}": {m: seeded_difference([r[m] for r in arms[a]], [r[m] for r in arms[b]])
                       for m in ("greedy", "sampled", "pass@4")}
        for a, b in (("traces", "solutions"), ("traces", "base"), ("solutions", "base"))
    }  # fmt: skip
    for arm, row in {**table, **differences}.items():
        print(f"{arm:<22}" + "  ".join(f"{m} {ci(s, signed='-' in arm)}" for m, s in row.items()))
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    per_seed = {name: {m: sum(v) / n for m, v in per_problem(r, samples).items()} for name, r in results.items()}
    record = {"command": " ".join(sys.argv), "seeds": args.seeds, "problems": args.problems, "held_out": n,
              "samples": samples, "arms": table, "differences": differences, "per_seed": per_seed,
              "timings": timings}  # fmt: skip
    out.write_text(json.dumps(record, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
