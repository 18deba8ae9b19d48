"""How well does a frozen student understand held-out solutions, depending on who explained them?

On held-out problems (64 GSM8K test problems by default), four explanation sources: none (an empty think
section), the gold rationale, the base teacher, and a trained teacher. For each: the student's mean solution
log-prob, r_SS (mean + 0.01 min) and the KL term, as means with 95 % bootstrap intervals, and per-problem paired
differences against no explanation and between the two teachers.

    python benchmarks/teaching_quality.py --trained runs/cpu/train --out benchmarks/results/teaching_quality.json
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch

from rlt.data import load_problems
from rlt.formats import PADDING, STRATOS
from rlt.generation import SamplingConfig
from rlt.models import load_model
from rlt.reward import RewardConfig, RLTReward
from rlt.reward_check import bootstrap
from rlt.traces import collect_traces

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"
END = STRATOS.explanation[1]


def r_ss(row: dict) -> float:
    return row["solution_logprob_mean"] + 0.01 * row["solution_logprob_min"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(GSM8K))
    parser.add_argument("--adapter", default="gsm8k")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--student", default="smollm2-135m")
    parser.add_argument("--base", default="smollm2-135m", help="The base (untrained) teacher.")
    parser.add_argument("--trained", default="runs/cpu/train", help="A trained teacher checkpoint.")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--work-dir", default="runs/bench/teaching_quality", help="Explanations (resumable).")
    parser.add_argument("--out", default="benchmarks/results/teaching_quality.json")
    args = parser.parse_args()

    problems, _ = load_problems(args.data, adapter=args.adapter, limit=args.n)
    student, tokenizer = load_model(args.student)
    config = RewardConfig(teacher_temperature=args.temperature)
    sampling = SamplingConfig(args.max_new_tokens, args.temperature, 1.0, args.batch_size, 42)
    sources: dict[str, list[dict]] = {}
    base, _ = load_model(args.base) if args.base != args.student else (student, None)
    reward = RLTReward(student, tokenizer, base, config)
    rationale = {"none": lambda p: END, "gold rationale": lambda p: p.solution.rsplit("\n", 1)[0] + PADDING + END}
    for name, explanation in rationale.items():
        rows = [{"question": p.question, "solution": p.solution, "explanation": explanation(p)} for p in problems]
        sources[name] = [b.to_dict() for b in reward.score_texts(rows)[0]]
    for name, spec in (("base teacher", args.base), ("trained teacher", args.trained)):
        teacher = base if spec == args.base else load_model(spec)[0]
        teacher_reward = RLTReward(student, tokenizer, teacher, config)
        path = Path(args.work_dir) / f"{name.replace(' ', '_')}.jsonl"
        rows = sorted(collect_traces(problems, teacher, teacher_reward, path, sampling), key=lambda r: r["index"])
        sources[name] = rows

    summary = {}
    for name, rows in sources.items():
        kls = [r["kl_mean"] for r in rows if r["kl_mean"] is not None]  # None: an empty explanation
        summary[name] = {
            "solution_logprob_mean": bootstrap([r["solution_logprob_mean"] for r in rows]),
            "r_ss": bootstrap([r_ss(r) for r in rows]),
            "kl_mean": bootstrap(kls) if kls else None,
            "reward": bootstrap([r["reward"] for r in rows]),
            "closing_tag_rate": sum(bool(r["matched"]) for r in rows) / len(rows),
        }
    paired = {}
    for a, b in (("gold rationale", "none"), ("base teacher", "none"), ("trained teacher", "none"),
                 ("trained teacher", "base teacher")):  # fmt: skip
        pairs = zip(sources[a], sources[b], strict=True)
        diffs = [x["solution_logprob_mean"] - y["solution_logprob_mean"] for x, y in pairs]
        paired[f"{a} - {b}"] = {**bootstrap(diffs), "wins": sum(d > 0 for d in diffs), "problems": len(diffs)}
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {"device": "cpu", "torch_threads": torch.get_num_threads(), "dtype": "float32"},
        "args": vars(args),
        "summary": summary,
        "paired_solution_logprob_mean": paired,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({"summary": summary, "paired": paired}, indent=2))


if __name__ == "__main__":
    main()
