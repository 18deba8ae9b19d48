"""Does RL make a better teacher? Held-out problems, paired per problem, five explanation sources.

The frozen student (SmolLM2-135M) reads, before each held-out solution: nothing, the reference explanation (the
worked solution, under the answer framing), the base model's explanation, the warm-up teacher's and the RL
teacher's (`--samples` each per problem, same sampling seed). Every explanation is rescored as written and with its
answer-stating sentences taken out, by the reward's student and by `--judge` (a student no teacher was trained
against) when given; `rlt.measure.teaching.compare` gives each source's r_SS, answer log-prob, reward and KL with 95 %
bootstrap intervals and the paired differences that decide: RL − warm-up (isolates RL), RL − base, warm-up − base,
reference − none.

    # CHAMP: the demo's own held-out split (its samples in runs/demo/heldout are reused, only the base is new)
    python benchmarks/teaching_quality.py --warmup runs/demo/warmup --rl runs/demo/rl --work-dir runs/demo/heldout \\
        --out benchmarks/results/teaching_champ.json
    # GSM8K: 64 test problems the CHAMP-trained teachers never saw
    python benchmarks/teaching_quality.py --dataset ../shared/data/gsm8k/test.jsonl --adapter gsm8k \\
        --max-solution-chars 0 --holdout 64 --warmup runs/demo/warmup --rl runs/demo/rl \\
        --work-dir runs/bench/teaching_gsm8k --out benchmarks/results/teaching_gsm8k.json
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import time
from pathlib import Path

import torch

from rlt.configs import DataArguments
from rlt.measure import teaching
from rlt.models import load_model
from rlt.reward import RewardConfig, RLTReward
from rlt.reward.formats import STRATOS
from rlt.sampling.generation import SamplingConfig

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "cpu" / "train.yaml"


def recipe_split() -> dict:
    """The CPU recipes' data split (dataset, max_solution_chars, holdout), read from the recipe, not copied."""
    import yaml

    values = yaml.safe_load(RECIPE.read_text())
    return {key: values[key] for key in ("dataset", "max_solution_chars", "holdout")}


PAIRS = [("RL teacher", "warm-up teacher"), ("RL teacher", "base model"), ("warm-up teacher", "base model"),
         ("reference", "none"), ("RL teacher", "none")]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    split = recipe_split()
    parser.add_argument("--dataset", default=split["dataset"])
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--max-solution-chars", type=int, default=split["max_solution_chars"],
                        help="Default: the CPU recipe's; 0: no filter.")  # fmt: skip
    parser.add_argument("--holdout", type=int, default=split["holdout"], help="The last N problems (recipe's split).")
    parser.add_argument("--student", default="smollm2-135m")
    parser.add_argument("--judge", default=None, help="A second student reading every explanation.")
    parser.add_argument("--base", default="smollm2-135m", help="The untrained base model, as a teacher.")
    parser.add_argument("--warmup", default="runs/demo/warmup", help="The warm-up teacher RL started from.")
    parser.add_argument("--rl", default="runs/demo/rl", help="The RL teacher.")
    parser.add_argument("--samples", type=int, default=2, help="Explanations per problem and teacher.")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--work-dir", default="runs/bench/teaching_champ", help="Samples per teacher (resumable).")
    parser.add_argument("--out", default="benchmarks/results/teaching_champ.json")
    args = parser.parse_args()

    began = time.perf_counter()
    data = DataArguments(dataset=args.dataset, adapter=args.adapter, holdout=args.holdout,
                         max_solution_chars=args.max_solution_chars or None)  # fmt: skip
    _, problems, _ = data.load()
    student, student_tokenizer = load_model(args.student)
    config = RewardConfig(teacher_temperature=args.temperature)
    sampling = SamplingConfig(args.max_new_tokens, args.temperature, 1.0, args.batch_size, 42)

    judges = {teaching.REWARD_STUDENT: (student, student_tokenizer)}
    if args.judge:
        judges["judge"] = load_model(args.judge)
    teacher_model = functools.lru_cache(maxsize=None)(load_model)  # each teacher loaded once, whatever reads it

    def reward_for(spec: str, judge: str = teaching.REWARD_STUDENT) -> RLTReward:
        reader, reader_tokenizer = judges[judge]
        teacher, tokenizer = (student, student_tokenizer) if spec == args.student else teacher_model(spec)
        return RLTReward(reader, tokenizer, teacher, config, student_tokenizer=reader_tokenizer)

    sources = teaching.fixed_sources(problems, STRATOS.explanation[1])  # RLTReward's default style
    teacher_of = {"none": args.warmup, "reference": args.warmup}  # their KL: against the warm-up teacher
    for name, spec in (("base model", args.base), ("warm-up teacher", args.warmup), ("RL teacher", args.rl)):
        path = Path(args.work_dir) / f"{Path(spec).name}.jsonl"
        sources[name] = teaching.teacher_source(problems, reward_for(spec), path, sampling, args.samples)
        teacher_of[name] = spec
    measured = {name: {judge: teaching.measure(rows, problems, reward_for(teacher_of[name], judge)) for judge in judges}
                for name, rows in sources.items()}  # fmt: skip
    comparison = teaching.compare(measured, problems, PAIRS)
    table = "\n".join(teaching.markdown(comparison))
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {"device": "cpu", "torch_threads": torch.get_num_threads(), "dtype": "float32"},
        "args": vars(args),
        "framing": data.framing,
        "seconds": time.perf_counter() - began,
        "verdict_rl_vs_warmup": teaching.verdict(comparison, "RL teacher", "warm-up teacher"),
        **comparison,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(table + "\n\n" + result["verdict_rl_vs_warmup"] + "\n")
    print(table + "\n\n" + result["verdict_rl_vs_warmup"])


if __name__ == "__main__":
    main()
