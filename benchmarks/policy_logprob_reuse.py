"""Is reusing TRL's policy log-probs for the KL worth its seam? A GRPO step with and without it, side by side.

When TRL computes the policy's log-probs of the completions itself before the rewards (`old_per_token_logps`: here
`--num_iterations 2`, so each generation serves two optimiser steps), `RLTGRPOTrainer` hands those to the KL term
instead of running its own policy forward (README "Where things are", `rlt/train/trainer.py`'s seam note). This runs
the CPU recipe from the demo's warm-up twice in one process, once as shipped and once with the reuse switched off
(the capture never armed), and reads each step's timings from the runs' logs (`grpo_step.breakdown`).

    python benchmarks/policy_logprob_reuse.py --steps 6 --out benchmarks/results/policy_logprob_reuse.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
from pathlib import Path

import torch
from grpo_step import PARTS  # a sibling script: run from benchmarks/ or as a path

from rlt.cli import main as rlt
from rlt.tools.plots import log_history
from rlt.train.trainer import RLTGRPOTrainer

ROOT = Path(__file__).resolve().parents[1]


def run(args, name: str) -> list[dict]:
    out = Path(args.work_dir) / name
    argv = ["train", "--config", str(ROOT / "recipes" / "cpu" / "train.yaml"), "--model_name_or_path", args.warmup,
            "--output_dir", str(out), "--max_steps", str(args.steps), "--num_iterations", "2", "--save_strategy",
            "no", "--report_to", "none", "--resume", "false"]  # fmt: skip
    assert rlt(argv) == 0
    return [h for h in log_history(out) if "step_time" in h and all(key in h for key in PARTS.values())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", default="runs/demo/warmup")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--work-dir", default="runs/bench/policy_logprob_reuse")
    parser.add_argument("--out", default="benchmarks/results/policy_logprob_reuse.json")
    args = parser.parse_args()

    steps = {"reuse (shipped)": run(args, "reuse")}
    original_logps = RLTGRPOTrainer._get_per_token_logps_and_entropies

    def never_captured(self, model, *a, **k):  # disarmed before every forward: the KL always runs its own
        self._awaiting_trl_policy_logprobs = False
        return original_logps(self, model, *a, **k)

    RLTGRPOTrainer._get_per_token_logps_and_entropies = never_captured
    try:
        steps["own forward"] = run(args, "own_forward")
    finally:
        RLTGRPOTrainer._get_per_token_logps_and_entropies = original_logps

    def summary(history: list[dict]) -> dict:
        generating = [h for h in history if h["rlt/seconds_generation"] > 0][1:]  # the first pays one-off costs
        return {
            "steps_with_generation": len(generating),
            "median_step_seconds": statistics.median(h["step_time"] for h in generating),
            "median_teacher_logprob_seconds": statistics.median(h["rlt/seconds_teacher_logprobs"] for h in generating),
            "step_seconds": [round(h["step_time"], 2) for h in history],
        }

    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {"device": "cpu", "torch_threads": torch.get_num_threads(), "dtype": "float32"},
        "args": vars(args),
        **{name: summary(history) for name, history in steps.items()},
    }
    reuse, own = result["reuse (shipped)"], result["own forward"]
    result["saved_seconds_per_generation_step"] = own["median_step_seconds"] - reuse["median_step_seconds"]
    result["saved_share"] = 1 - reuse["median_step_seconds"] / own["median_step_seconds"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("args", "machine")}, indent=2))


if __name__ == "__main__":
    main()
