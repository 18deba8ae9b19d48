"""Write GSM8K rows for `rlt score`, with the gold rationale as the explanation.

python benchmarks/gsm8k_rows.py ../shared/data/gsm8k/test.jsonl 32 runs/gsm8k32.jsonl
"""

import json
import sys
from pathlib import Path

from rlt.data import load_problems
from rlt.reward.formats import PADDING, STRATOS


def gsm8k_rows(source: str, n: int) -> list[dict]:
    problems, _ = load_problems(source, adapter="gsm8k", limit=n)
    end_tag = STRATOS.explanation[1]
    return [
        {
            "question": p.question,
            "solution": p.solution,
            "answer": p.answer,
            "explanation": p.solution.rsplit("\n", 1)[0] + PADDING + end_tag,
        }
        for p in problems
    ]


if __name__ == "__main__":
    source, n, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in gsm8k_rows(source, n)))
    print(f"wrote {n} rows to {out}")
