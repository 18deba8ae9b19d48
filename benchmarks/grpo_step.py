"""Where a GRPO step of the CPU recipe goes: generation, teacher log-probs, student scoring, and the rest
(policy forward and backward; the optimizer step runs outside TRL's step timer), as shares of the step, median
over steps. Reads the timings rlt's trainer logs every step (`rlt/seconds_*`, TRL's `step_time`); runs the
recipe first unless --run-dir points at an existing run. Peak RSS is measured when it runs the recipe.

    python benchmarks/grpo_step.py --steps 6 --out benchmarks/results/grpo_step.json
    python benchmarks/grpo_step.py --run-dir runs/cpu/train --out benchmarks/results/grpo_step.json
    python benchmarks/grpo_step.py --recipe recipes/micro/train.yaml --model runs/micro/warmup --student DIR \
        --out benchmarks/results/grpo_step_micro.json      # other flags go to `rlt train`
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from rlt.tools.plots import log_history

PARTS = {"generation": "rlt/seconds_generation", "teacher log-probs": "rlt/seconds_teacher_logprobs",
         "student scoring": "rlt/seconds_student_scoring"}  # fmt: skip


def breakdown(history: list[dict], skip_first: bool = True) -> dict:
    steps = [h for h in history if "step_time" in h and all(key in h for key in PARTS.values())]
    if skip_first and len(steps) > 1:
        steps = steps[1:]  # the first step pays one-off costs (allocator warm-up, lazy imports)
    if not steps:
        raise ValueError("no step with rlt/seconds_* timings in the log history")
    shares = {name: [h[key] / h["step_time"] for h in steps] for name, key in PARTS.items()}
    shares["policy forward + backward"] = [1 - sum(shares[n][i] for n in PARTS) for i in range(len(steps))]
    reward_share = [shares["teacher log-probs"][i] + shares["student scoring"][i] for i in range(len(steps))]
    return {
        "steps": [h["step"] for h in steps],
        "median_step_seconds": statistics.median(h["step_time"] for h in steps),
        "median_seconds": {name: statistics.median(h[key] for h in steps) for name, key in PARTS.items()},
        "median_share": {name: statistics.median(values) for name, values in shares.items()},
        "median_reward_share": statistics.median(reward_share),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default=None, help="An existing `rlt train` output directory.")
    parser.add_argument("--recipe", default="recipes/cpu/train.yaml")
    parser.add_argument("--model", default="runs/cpu/warmup", help="Teacher to start from when running the recipe.")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", default="benchmarks/results/grpo_step.json")
    args, extra = parser.parse_known_args()  # anything else goes to `rlt train` (e.g. --student DIR)

    peak_rss_gb = None
    run_dir = args.run_dir
    if run_dir is None:
        run_dir = "runs/bench/grpo_step"
        command = [sys.executable, "-m", "rlt.cli", "train", "--config", args.recipe, "--model_name_or_path",
                   args.model, "--output_dir", run_dir, "--max_steps", str(args.steps), "--save_strategy", "no",
                   "--report_to", "none", "--resume", "false", *extra]  # fmt: skip
        subprocess.run(command, check=True)
        peak_rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # kB on Linux
    result = {
        "date": datetime.date.today().isoformat(),
        "run_dir": run_dir,
        "recipe": args.recipe,
        "peak_rss_gb": peak_rss_gb,
        **breakdown(log_history(run_dir)),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
