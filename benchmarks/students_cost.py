"""What several students cost: the reward of k students against k times one student's, measured side by side.

The teacher is SmolLM2-135M (embedded); the students are SmolLM2-135M (A) and Gemma-3-270M (B, `make gemma`). The
rows are GSM8K test problems with their rationale as the explanation (`gsm8k_rows.py`). Each configuration is timed
on the same rows, round-robin over `--repeats` rounds, in two paths:

- `training`: what `RLTGRPOTrainer` pays per batch: alignment and the students' forwards, the teacher's log-probs
  handed in (the trainer has them from TRL).
- `offline`: `rlt score`'s path, which also runs the teacher's forward (once, whatever the number of students).

The goal (issue 26): k students cost at most 1.05 × the sum of each one's single-student cost.

    python benchmarks/students_cost.py --rows 16 --repeats 5 --out benchmarks/results/students_cost.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import torch

from rlt.models import load_model
from rlt.reward import RewardConfig
from rlt.reward.logprobs import span_logprobs
from rlt.reward.students import Student, build_reward

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"
CONFIGS = {"A": ["A"], "B": ["B"], "A+A": ["A", "A"], "A+B": ["A", "B"]}


def main() -> None:
    from gsm8k_rows import gsm8k_rows  # a sibling script: run from benchmarks/ or as a path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/students_cost.json")
    args = parser.parse_args()

    rows = gsm8k_rows(str(GSM8K), args.rows)
    teacher, tokenizer = load_model("smollm2-135m")
    models = {"A": load_model("smollm2-135m"), "B": load_model("gemma3-270m")}
    config = RewardConfig()
    rewards = {}
    for name, members in CONFIGS.items():
        students = [Student(f"{m}{i}", *models[m]) for i, m in enumerate(members)]
        rewards[name] = build_reward(students, tokenizer, teacher, config)
    # The trainer's side: each completion's log-probs under the teacher, computed once here.
    first = rewards["A"].align_texts(rows)
    spans = [[(s.teacher_explanation_span[0], len(s.teacher_input_ids))] for s in first]
    sequences = [s.teacher_input_ids for s in first]
    completion_lp = [lp[0] for lp in span_logprobs(teacher, sequences, spans, config.teacher_temperature, 2048)]

    def training(reward) -> list[float]:
        samples = reward.align_texts(rows)
        return [b.reward for b in reward.score(samples, teacher_logprobs=completion_lp)]

    def offline(reward) -> list[float]:
        return [b.reward for b in reward.score_texts(rows)[0]]

    seconds = {path: {name: [] for name in CONFIGS} for path in ("training", "offline")}
    results = {}
    for path, run in (("training", training), ("offline", offline)):
        for name, reward in rewards.items():
            results[(path, name)] = run(reward)  # warm-up round, also the values checked below
        for _ in range(args.repeats):
            for name, reward in rewards.items():
                started = time.perf_counter()
                run(reward)
                seconds[path][name].append(time.perf_counter() - started)
    # the same rewards on both paths, and A+A is A
    check = max(abs(x - y) for x, y in zip(results[("training", "A+B")], results[("offline", "A+B")], strict=True))
    same = max(abs(x - y) for x, y in zip(results[("offline", "A+A")], results[("offline", "A")], strict=True))
    median = {path: {name: statistics.median(v) for name, v in by.items()} for path, by in seconds.items()}
    ratios = {
        path: {
            "A+A / (2 x A)": m["A+A"] / (2 * m["A"]),
            "A+B / (A + B)": m["A+B"] / (m["A"] + m["B"]),
        }
        for path, m in median.items()
    }
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {"device": "cpu", "torch_threads": torch.get_num_threads(), "dtype": "float32"},
        "args": vars(args),
        "rows": len(rows),
        "seconds": seconds,
        "median_s": median,
        "ratios": ratios,
        "max_reward_difference_training_vs_offline": check,
        "max_reward_difference_A+A_vs_A": same,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({"median_s": median, "ratios": ratios, "checks": [check, same]}, indent=2))


if __name__ == "__main__":
    main()
