"""How long countdown search traces are, in SmolLM2 tokens, for each setting of the generator's knobs.

For 1,000 generated problems per size (3 and 4 numbers) and per (dead_ends, tries): the median, 95th percentile and
maximum length of the search trace, the median length of the worked solution, and the mean number of back-ups.
What a 135M teacher's explanation budget (`max_completion_length`) has to hold.

    python benchmarks/search_traces.py --out benchmarks/results/search_traces.json
"""

from __future__ import annotations

import argparse
import json
import statistics

from rlt.data.countdown import Search, generate
from rlt.models import load_tokenizer

SETTINGS = [(0, 1), (1, 1), (2, 1), (2, 2), (3, 2)]


def percentile(values: list[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--tokenizer", default="smollm2-135m")
    parser.add_argument("--out", default="benchmarks/results/search_traces.json")
    args = parser.parse_args()
    tokenizer = load_tokenizer(args.tokenizer)

    def tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    results = []
    for size in (3, 4):
        for dead_ends, tries in SETTINGS:
            rows = generate(args.problems, (size, size), search=Search(dead_ends, tries))
            trace = [tokens(r["reasoning_trace"]) for r in rows]
            solution = [tokens(r["solution"]) for r in rows]
            results.append({
                "numbers": size, "dead_ends": dead_ends, "tries": tries,
                "trace_tokens": {"median": statistics.median(trace), "p95": percentile(trace, 0.95), "max": max(trace)},
                "solution_tokens_median": statistics.median(solution),
                "back_ups_mean": statistics.mean(r["reasoning_trace"].count("Back to") for r in rows),
            })  # fmt: skip
            print(json.dumps(results[-1]))
    with open(args.out, "w") as f:
        json.dump({"problems_per_setting": args.problems, "tokenizer": args.tokenizer, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
