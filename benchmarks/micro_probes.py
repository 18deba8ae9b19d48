"""What a micro-world model can read (BENCHMARKS §12c): the facts, and copying from earlier in its text.

For each model: the share of the world's arithmetic facts it completes greedily (`rlt.micro.base.fact_accuracy`);
copying a list of 3 or 6 numbers after "Again:" (the base's own corpus format, 100 lists each); for a base,
restating a question ("... Give the expression. Numbers"); for a student, the first line of its greedy trace on the
first 256 held-out problems, each of the three numbers and the target compared with the question's, and the share of
held-out problems its greedy answer solves.

    python benchmarks/micro_probes.py countdown-tiny runs/micro-yardstick/students/traces-0 \\
        --out benchmarks/results/micro_probes.json
"""

from __future__ import annotations

import argparse
import json
import random
import re

import torch

from rlt.data.countdown import Countdown, generate
from rlt.measure.evaluate import grade
from rlt.micro.base import RECIPES, fact_accuracy
from rlt.models import load_model
from rlt.reward.formats import MICRO, student_prompt
from rlt.sampling.generation import SamplingConfig, hf_generate


def greedy(model, tokenizer, texts: list[str], tokens: int) -> list[str]:
    prompts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    done = dict(hf_generate(model, tokenizer, prompts, SamplingConfig(tokens, 0.0, 1.0, 128, 0)))
    return [tokenizer.decode(done[i], skip_special_tokens=True) for i in range(len(texts))]


def probe(spec: str, problems: list[dict]) -> dict:
    model, tokenizer = load_model(spec)
    model.eval()
    world = RECIPES["countdown-tiny"].world
    result = {"model": spec, "fact_accuracy": fact_accuracy(model, tokenizer, world)}
    rng = random.Random(0)
    for length in (3, 6):
        lists = [", ".join(str(rng.randint(1, world.max_number**2)) for _ in range(length)) for _ in range(100)]
        said = greedy(model, tokenizer, [f"{items}. Again:" for items in lists], 2 * length + 1)
        result[f"copies_a_list_of_{length}"] = (
            sum(s.startswith(f" {items}.") for s, items in zip(said, lists, strict=True)) / 100
        )
    said = greedy(model, tokenizer, [p["question"] + " Numbers" for p in problems], 12)
    result["restates_a_question"] = sum(
        s.startswith(f" {', '.join(map(str, p['numbers']))}. Target {p['target']}.")
        for s, p in zip(said, problems, strict=True)
    ) / len(problems)
    if tokenizer.chat_template and "<think>" in "".join(
        greedy(model, tokenizer, [student_prompt(tokenizer, problems[0]["question"], MICRO)], 4)
    ):
        answers = greedy(model, tokenizer, [student_prompt(tokenizer, p["question"], MICRO) for p in problems], 320)
        first = [re.search(r"Make (\d+) from the numbers (\d+), (\d+), (\d+)\.", a) for a in answers]
        wanted = [[p["target"], *p["numbers"]] for p in problems]
        result["trace_first_line_copies"] = {
            name: sum(bool(m) and int(m.group(k + 1)) == w[k] for m, w in zip(first, wanted, strict=True))
            / len(problems)
            for k, name in enumerate(("target", "number 1", "number 2", "number 3"))
        }
        result["greedy_pass@1"] = sum(
            grade(a, None, Countdown(tuple(p["numbers"]), p["target"]), MICRO)[0]
            for a, p in zip(answers, problems, strict=True)
        ) / len(problems)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--problems", type=int, default=256, help="held-out problems (the first generated)")
    parser.add_argument("--out", default="benchmarks/results/micro_probes.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    problems = generate(1375, (3, 3), max_number=8)[: args.problems]  # newest-first split: these are held out
    results = [probe(spec, problems) for spec in args.models]
    with open(args.out, "w") as f:
        json.dump(
            {"command": "python benchmarks/micro_probes.py " + " ".join(args.models), "results": results}, f, indent=1
        )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
