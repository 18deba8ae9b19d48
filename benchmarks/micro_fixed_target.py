"""A micro-world with one target: do students solve once no verdict needs a comparison (BENCHMARKS §12f)?

Students of `countdown-tiny` (§12c) cannot tell whether a result is the question's target: that is a lookup by
content, and the base copies only in order from an anchor. With the target fixed, as in the 24 game, "= 12" is the
end of a search whatever the question, a fact like any other, and every other step a trace takes (pools, arithmetic,
backing up, the solution) is one the students already get right. This builds that world through rlt's own code:

1. problems: every multiset of `--size` numbers up to `--max_number` from which `--target` can be made, each in all
   its orders (the generator's solution, worked solution and search trace for each order); whole multisets are held
   out, so no held-out problem is a reordering of a training one;
2. a base: the build's phase 2 (`rlt.micro.base`: facts, bookkeeping, lists, questions, checking) over this world's
   numbers, from a phase-1 model (`micro_copy.py --save`; `--layers 2 --seed 1 --steps 3000` is `countdown-tiny`'s
   phase 1, step for step);
3. `rlt traces --teacher dataset:trace`, `rlt distill`, `rlt eval` on the held-out problems (greedy).

Every stage resumes.

    python benchmarks/micro_copy.py --layers 2 --hidden 128 --heads 4 --steps 3000 --seed 1 --save runs/micro-v4/copy
    python -m benchmarks.micro_fixed_target --start runs/micro-v4/copy --work runs/micro-12 \\
        --out benchmarks/results/micro_fixed_target_4x6.json
    python -m benchmarks.micro_fixed_target --start runs/micro-v4/copy --size 3 --max_number 13 --target 2 \\
        --steps 3500 --max_new_tokens 320 --work runs/micro-3x13-2 --out benchmarks/results/micro_fixed_target_3x13.json
    python -m benchmarks.micro_fixed_target --base runs/micro-3x13-2/base --size 3 --max_number 13 --target 2 \\
        --answer line --max_new_tokens 320 --work runs/micro-3x13-2-answer \\
        --out benchmarks/results/micro_fixed_target_3x13_answer.json

Run from the repository root as a module (`-m`): it imports a sibling benchmark.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from itertools import combinations_with_replacement, permutations
from pathlib import Path

from benchmarks.micro_yardstick import RECIPES, ROOT, rlt
from rlt.data.countdown import Countdown, Search, reachable, search_trace, solve, steps_solution, worked_solution
from rlt.micro import base


def carried(steps: list) -> str:
    """A three-number path as one expression, each earlier step in parentheses where its value is used:
    13 - 10 = 3, 6 / 3 = 2 → "6 / (13 - 10)". Written where the search stops, it is copied in order, not rebuilt."""
    first, last = steps
    inner = f"({first.left} {first.op} {first.right})"
    if last.right == first.value:
        return f"{last.left} {last.op} {inner}"
    return f"{inner} {last.op} {last.right}"


def problems(
    size: int,
    max_number: int,
    target: int,
    held_out_at_least: int,
    seed: int,
    answer: str = "worked",
    search: Search | None = None,
) -> tuple[list, list]:
    """(train rows, held-out rows): whole multisets, in a seeded order, held out until there are enough problems.
    `answer`: "worked", the generator's worked solution; "line", its last line alone ("So 6 / (13 - 10) = 2.");
    "carried", the trace says the answer where its search stops ("… 6 / 3 = 2. Yes! So 6 / (13 - 10) = 2.") and the
    solution is that line (three numbers); "steps", the solution is the path's steps, as the trace states them
    ("So 13 - 10 = 3, 6 / 3 = 2.", an answer `Countdown.check` reads step by step); "after", those steps, each last
    pair's line in the trace opened by the move that made it (`Search.restate_move`)."""
    search = replace(search or Search(), restate_move=answer == "after")  # restating a move draws nothing
    memo: dict = {}
    multisets = [m for m in combinations_with_replacement(range(1, max_number + 1), size) if reachable(m, target, memo)]
    rng = random.Random(f"micro-fixed-target:{seed}")
    rng.shuffle(multisets)
    train, held = [], []
    for multiset in multisets:
        rows = []
        for numbers in sorted(set(permutations(multiset))):
            expression, steps = solve(list(numbers), target)
            problem = Countdown(numbers, target)
            trace = search_trace(problem, steps, search, rng)
            solution = worked_solution(problem, expression, steps)
            if answer == "line":
                solution = f"So {expression} = {target}."
            elif answer in ("steps", "after"):
                solution = steps_solution(steps)
            elif answer == "carried":
                solution = f"So {carried(steps)} = {target}."
                trace = f"{trace} {solution}"
            rows.append({"numbers": list(numbers), "target": target, "question": problem.question,
                         "answer": expression, "solution": solution, "reasoning_trace": trace})  # fmt: skip
        (held if len(held) < held_out_at_least else train).extend(rows)
    return train, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", help="a phase-1 model, to build the base from")
    parser.add_argument("--base", help="a base built before (another run's work/base): no build")
    parser.add_argument("--answer", choices=("worked", "line", "carried", "steps", "after"), default="worked",
                        help="the solution's form (`problems`)")  # fmt: skip
    parser.add_argument("--size", type=int, default=4)
    parser.add_argument("--max_number", type=int, default=6)
    parser.add_argument("--target", type=int, default=12)
    parser.add_argument("--held_out", type=int, default=500, help="at least this many held-out problems")
    parser.add_argument("--steps", type=int, default=1500, help="phase-2 steps of the base")
    parser.add_argument("--max_new_tokens", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0, help="the distillation's seed")
    parser.add_argument("--distill", default="", help="flags for rlt distill over recipes/micro/distill.yaml's, "
                        "e.g. '--num_train_epochs 16'")  # fmt: skip
    parser.add_argument("--dead_ends", type=int, default=Search.dead_ends, help="the traces' (`Search`)")
    parser.add_argument("--work", default="runs/micro-12")
    parser.add_argument("--out", default="benchmarks/results/micro_fixed_target_4x6.json")
    args = parser.parse_args()
    work = ROOT / args.work
    work.mkdir(parents=True, exist_ok=True)
    timings, record_path = work / "timings.json", work / "record.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}

    data = work / "problems.jsonl"
    if not data.exists():
        train, held = problems(args.size, args.max_number, args.target, args.held_out, seed=0,
                               answer=args.answer, search=Search(dead_ends=args.dead_ends))  # fmt: skip
        data.write_text("".join(json.dumps(row) + "\n" for row in train + held))  # the last rows are held out
        record["problems"] = {"train": len(train), "held_out": len(held)}
    world = base.World(sizes=(args.size, args.size), max_number=args.max_number)
    model_dir = Path(args.base) if args.base else work / "base"
    if not (model_dir / "model.safetensors").exists():
        if not args.start:
            raise SystemExit(f"no base in {model_dir}: give --start (a phase-1 model) to build one")
        from transformers import LlamaForCausalLM

        from rlt.micro.tokenizer import build_tokenizer

        started = time.time()
        recipe = replace(base.BaseRecipe(), world=world, steps=args.steps)
        tokenizer = build_tokenizer()
        model = LlamaForCausalLM.from_pretrained(args.start)
        base.train_world(model, tokenizer, base._blocks(base.world_lines(recipe), tokenizer, recipe.block), recipe,
                         model_dir, False)  # fmt: skip
        model.eval()
        record["base"] = {"seconds": round(time.time() - started), "facts": base.fact_accuracy(model, tokenizer, world),
                          "copy_accuracy": base.copy_accuracy(model, tokenizer, world)}  # fmt: skip
        model.save_pretrained(model_dir, safe_serialization=True)
        tokenizer.save_pretrained(model_dir)
    record["base_dir"] = str(model_dir)
    record_path.write_text(json.dumps(record, indent=1))

    held = str(record["problems"]["held_out"])
    on_data = ["--dataset", str(data), "--adapter", "countdown", "--holdout", held]
    traces, student = work / "traces.jsonl", work / "student"
    if not traces.exists():
        rlt(timings, "traces", "traces", "--config", str(RECIPES / "traces.yaml"), "--out", str(traces), *on_data)
    if not (student / "distill.json").exists():
        rlt(timings, "distill", "distill", "--config", str(RECIPES / "distill.yaml"), "--model_name_or_path",
            str(model_dir), "--traces", str(traces), "--output_dir", str(student),
            "--seed", str(args.seed), *args.distill.split())  # fmt: skip
    evals = {}
    for name, model in (("student", student), ("base", model_dir)):
        out = work / f"eval-{name}.json"
        if not out.exists():
            rlt(timings, f"eval {name}", "eval", "--config", str(RECIPES / "eval.yaml"), "--model", str(model),
                "--num_samples", "0", "--max_new_tokens", str(args.max_new_tokens), "--out", str(out),
                *on_data)  # fmt: skip
        evals[name] = json.loads(out.read_text())["pass@1_greedy"]
    result = {"command": " ".join(["python -m benchmarks.micro_fixed_target", *sys.argv[1:]]), **record,
              "greedy_pass@1": evals, "timings": json.loads(timings.read_text())}  # fmt: skip
    Path(ROOT / args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
