"""Compare two `rlt score` outputs of the same rows component by component (e.g. before and after a reward change).

python benchmarks/compare_scored.py BEFORE.jsonl AFTER.jsonl --out benchmarks/results/reward_fidelity_gsm8k32.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

COMPONENTS = ("reward", "solution_logprob_mean", "solution_logprob_min", "kl_mean", "kl_max")


def read(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def compare(before: list[dict], after: list[dict]) -> dict:
    """Per component: both means and the range of per-row changes (rows where both have a value)."""
    if [r["question"] for r in before] != [r["question"] for r in after]:
        raise ValueError("the two files do not hold the same rows in the same order")
    result = {}
    for name in COMPONENTS:
        pairs = [(b[name], a[name]) for b, a in zip(before, after, strict=True) if None not in (b[name], a[name])]
        changes = [a - b for b, a in pairs]
        result[name] = {
            "rows": len(pairs),
            "before_mean": statistics.fmean(b for b, _ in pairs),
            "after_mean": statistics.fmean(a for _, a in pairs),
            "change_min": min(changes),
            "change_max": max(changes),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = {"before": args.before, "after": args.after, "components": compare(read(args.before), read(args.after))}
    print(f"{'component':<24}{'before':>10}{'after':>10}{'per-row change':>22}")
    for name, c in result["components"].items():
        span = f"{c['change_min']:+.3f} … {c['change_max']:+.3f}"
        print(f"{name:<24}{c['before_mean']:>10.4f}{c['after_mean']:>10.4f}{span:>22}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
