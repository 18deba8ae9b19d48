"""What teachers' sampled explanations look like: how often they restate the solution they were shown, close the
explanation tag, and how long they are. Reads trace files as `rlt traces` or the demo writes them.

    python benchmarks/explanation_stats.py runs/demo/heldout/warmup.jsonl runs/demo/heldout/rl.jsonl \\
        --out benchmarks/results/demo_clean_clone_kl0.3_explanations.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from rlt.data import answer_statement
from rlt.records import recover_jsonl

OPENING = answer_statement("\0").split("\0")[0]  # "The answer is ": how the answer framing states any answer


def stats(rows: list[dict]) -> dict:
    """Counts over explanations: containing the answer framing's opening ("The answer is"), containing the exact
    solution the teacher was shown ("The answer is X."), and containing that three times or more."""
    shown = [r["explanation"].count(r["solution"]) for r in rows]
    return {
        "explanations": len(rows),
        "contains_answer_opening": sum(OPENING.strip() in r["explanation"] for r in rows),
        "restates_solution": sum(n >= 1 for n in shown),
        "repeats_solution_3_times_or_more": sum(n >= 3 for n in shown),
        "closing_tag_rate": sum(r["matched"] for r in rows) / len(rows),
        "mean_characters": statistics.mean(len(r["explanation"]) for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("traces", nargs="+", help="Trace JSONL files.")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    results = {path: stats(recover_jsonl(Path(path))) for path in args.traces}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
