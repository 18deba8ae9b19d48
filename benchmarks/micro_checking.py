"""Can the base learn to judge a result against a question's target, given more checking text (BENCHMARKS §12c)?

Phase 2 of the build again, from a phase-1 model (`micro_copy.py --save`; `--layers 2 --seed 1 --steps 3000` is
today's base's phase 1, step for step), on the world's corpus with a larger share of its checking lines ("Make 30
from the numbers 9, 3, 5. 9 + 3 = 12. No. 6 * 5 = 30. Yes!", drawn from a second draw of the corpus), then the
share of held-out results the model judges right (`micro_probes.judges_results`), its copying and its facts.

    python benchmarks/micro_copy.py --layers 2 --hidden 128 --heads 4 --steps 3000 --seed 1 --save runs/micro-v4/copy
    python -m benchmarks.micro_checking --start runs/micro-v4/copy --steps 2000 --checking 0.4 \\
        --dir runs/micro-v6/base --out benchmarks/results/micro_checking.json

Run from the repository root as a module (`-m`): it imports a sibling benchmark.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace
from pathlib import Path

from transformers import LlamaForCausalLM

from benchmarks.micro_probes import judges_results
from rlt.data.countdown import generate
from rlt.micro import base
from rlt.micro.tokenizer import build_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", required=True, help="a phase-1 model")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--checking", type=float, default=0.4, help="share of checking lines in phase 2")
    parser.add_argument("--dir", default="runs/bench/micro_checking")
    parser.add_argument("--out", default="benchmarks/results/micro_checking.json")
    args = parser.parse_args()
    started = time.time()
    recipe = replace(base.BaseRecipe(), world=base.FIRST_WORLD, steps=args.steps)  # the first world's base, again
    tokenizer = build_tokenizer()
    model = LlamaForCausalLM.from_pretrained(args.start)
    lines = base.world_lines(recipe)
    count = len(lines)
    # the corpus holds 13 % checking lines: a draw large enough to take the share asked from
    extra = base.corpus_lines(recipe.world, count=int(count * args.checking / 0.13) + 64, seed=recipe.seed + 100)
    checks = [line for line in extra if line.startswith("Make ") and "Give the expression" not in line]
    mixed = lines[: int(count * (1 - args.checking))] + checks[: int(count * args.checking)]
    random.Random(0).shuffle(mixed)
    blocks = base._blocks(mixed, tokenizer, recipe.block)
    log = base.train_world(model, tokenizer, blocks, recipe, Path(args.dir), False)
    model.eval()
    problems = generate(1375, (3, 3), max_number=8)[:256]  # the first held-out problems, as micro_probes reads them
    record = {
        "command": f"python -m benchmarks.micro_checking --start {args.start} --steps {args.steps} "
        f"--checking {args.checking}",
        "judges_a_result": judges_results(model, tokenizer, problems, recipe.world),
        "copy_accuracy": base.copy_accuracy(model, tokenizer, recipe.world),
        "fact_accuracy": base.fact_accuracy(model, tokenizer, recipe.world),
        "loss": [round(h["loss"], 4) for h in log],
        "seconds": round(time.time() - started),
    }
    model.save_pretrained(args.dir, safe_serialization=True)
    tokenizer.save_pretrained(args.dir)
    Path(args.out).write_text(json.dumps(record, indent=1))
    print(json.dumps({k: v for k, v in record.items() if k != "loss"}))


if __name__ == "__main__":
    main()
