"""Recall and precision of the answer-statement finder (`rlt.measure.leakage.states_answer`) on a labelled set of
sentences (`rlt.measure.statement_set`): its development part and its held-out part, with every miss and false
alarm (BENCHMARKS §3h).

    python benchmarks/answer_statements.py --out benchmarks/results/answer_statements_now.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlt.measure.statement_set import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/results/answer_statements_now.json")
    args = parser.parse_args()
    record = {part: measure(part) for part in ("development", "held out")}
    for part, result in record.items():
        print(f"{part}: {result['sentences']} sentences, recall {result['all']['recall']:.3f}, "
              f"precision {result['all']['precision']:.3f}")  # fmt: skip
    Path(args.out).write_text(json.dumps({"command": "python benchmarks/answer_statements.py", **record}, indent=1))


if __name__ == "__main__":
    main()
