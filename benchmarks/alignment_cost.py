"""What aligning a batch costs on the host CPU: tokenising the student chats whole, locating sampled completions,
character-offset spans and KL chunks (no model runs). On a GPU this is the part of the reward that does not
shrink with the accelerator, so it bounds how close the reward can get to its two forward passes.

    python benchmarks/alignment_cost.py --out benchmarks/results/alignment_cost_cpu.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

from reward_throughput import GSM8K, build_rows  # sibling script: run as `python benchmarks/alignment_cost.py`

from rlt.models import load_tokenizer
from rlt.reward import RLTReward
from rlt.reward.align import encode
from rlt.reward.formats import teacher_prompt
from rlt.testing import tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default="smollm2-135m")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 1024, 4096])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default=str(GSM8K))
    parser.add_argument("--out", default="benchmarks/results/alignment_cost_cpu.json")
    args = parser.parse_args()

    tokenizer = load_tokenizer(args.tokenizer)
    # Alignment runs no model: tiny ones stand in (their size limits fail the last check, after all the work).
    reward = RLTReward(tiny_model(), tokenizer, tiny_model())
    results = []
    for length in args.lengths:
        rows = build_rows(tokenizer, args.batch, length, Path(args.data))
        questions, solutions = [r["question"] for r in rows], [r["solution"] for r in rows]
        prompts = [encode(tokenizer, teacher_prompt(tokenizer, r["question"], r["solution"])) for r in rows]
        sampled = [tokenizer(r["explanation"], add_special_tokens=False)["input_ids"] for r in rows]
        times: dict[str, list[float]] = {"free text": [], "sampled ids": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            reward.align_texts(rows)
            times["free text"].append(time.perf_counter() - start)
            start = time.perf_counter()
            reward.align_sampled(questions, solutions, prompts, sampled)
            times["sampled ids"].append(time.perf_counter() - start)
        entry = {"explanation_tokens": length, "completions": len(rows), "seconds": times,
                 "median_seconds": {k: statistics.median(v) for k, v in times.items()}}  # fmt: skip
        print(json.dumps({k: v for k, v in entry.items() if k != "seconds"}), flush=True)
        results.append(entry)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": datetime.date.today().isoformat(), "args": vars(args), "results": results},
                              indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
