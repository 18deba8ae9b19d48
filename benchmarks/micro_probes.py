"""What a micro-world model can read (BENCHMARKS §12c): the facts, and copying from earlier in its text.

For each model: the share of the world's arithmetic facts it completes greedily (`rlt.micro.base.fact_accuracy`);
copying a list of 3 or 6 numbers after "Again:" (the base's own corpus format, 100 lists each); for a base,
restating a question ("... Give the expression. Numbers"); judging a result against a question's target (" Yes" or
" No" after "Make 37 from the numbers 7, 5, 2. 35 + 2 = 37."); continuing a list out of order ("12, 5, 40, 9.
Again: 40," → " 9", which only a lookup by content finds); for a student, the first line of its greedy trace on the
first 256 held-out problems, each of the three numbers and the target compared with the question's, and the share of
held-out problems its greedy answer solves; and, reading the generator's own trace and solution of each of those
problems in the distillation format, the share of each kind of token it predicts right (`token_kind`): which step
of a trace a student fails at, free of where its own earlier mistakes would lead it.

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
from rlt.micro.base import FIRST_WORLD, fact_accuracy, facts_of
from rlt.models import load_model
from rlt.reward.formats import MICRO, student_prompt, student_segments
from rlt.sampling.generation import SamplingConfig, hf_generate


def greedy(model, tokenizer, texts: list[str], tokens: int) -> list[str]:
    prompts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    done = dict(hf_generate(model, tokenizer, prompts, SamplingConfig(tokens, 0.0, 1.0, 128, 0)))
    return [tokenizer.decode(done[i], skip_special_tokens=True) for i in range(len(texts))]


def token_kind(line: str, in_solution: bool) -> str:
    """What the next token of a generator trace is, from the text of its line so far: a step the trace's reader
    must get right (the goal copied from the question, a result of arithmetic, a pool after a move or a back-up,
    the verdict after a result, the solution section), or one of the trace's own random choices (which move next)
    and the words around them."""
    if in_solution:
        return "solution section"
    if line.startswith("Make"):
        return "goal, copied"
    if line.startswith("Back to"):
        return "pool, backing up"
    if ", left" in line:
        return "pool after a move"
    if line.rstrip().endswith("="):
        return "result of arithmetic"
    if re.search(r"= \d+\.?$", line) and not line.lstrip().startswith("Try"):  # go on, or stop: Yes! or No.
        return "verdict after a result"
    return "choices and structure"


def token_accuracy(model, tokenizer, problems: list[dict]) -> dict[str, float]:
    """Each kind of token's share predicted right (greedy, teacher-forced) over the generator's traces of
    `problems`, read in the distillation format."""
    right, total = {}, {}
    for p in problems:
        prompt = student_prompt(tokenizer, p["question"], MICRO)
        text = student_segments(tokenizer, p["question"], MICRO).text(p["reasoning_trace"], p["solution"])
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            predicted = model(torch.tensor([ids])).logits[0].argmax(-1).tolist()
        for i in range(start, len(ids)):
            before = tokenizer.decode(ids[start:i])
            kind = token_kind(before.split("\n")[-1], MICRO.solution[0] in before)
            right[kind] = right.get(kind, 0) + (predicted[i - 1] == ids[i])
            total[kind] = total.get(kind, 0) + 1
    return {kind: round(right[kind] / total[kind], 3) for kind in sorted(total)}


def judges_results(model, tokenizer, problems: list[dict], world) -> float:
    """The share of results the model judges right against a question's target, "Make 37 from the numbers 7, 5, 2.
    35 + 2 = 37." → " Yes", "… 5 * 2 = 10." → " No": half of them the target (a fact of the world that makes it,
    where one does), half another result. The comparison every verdict of a search makes."""
    facts = [f for kind in facts_of(world).values() for f in kind]
    rng, texts, wanted = random.Random(1), [], []
    for p in problems:
        hits = [f for f in facts if f[3] == p["target"]]
        for fact in ([rng.choice(hits)] if hits else []) + [rng.choice([f for f in facts if f[3] != p["target"]])]:
            a, op, b, value = fact
            texts.append(f"{Countdown(tuple(p['numbers']), p['target']).goal} {a} {op} {b} = {value}.")
            wanted.append(" Yes" if value == p["target"] else " No")
    said = greedy(model, tokenizer, texts, 1)
    return sum(s == w for s, w in zip(said, wanted, strict=True)) / len(texts)


def probe(spec: str, problems: list[dict]) -> dict:
    model, tokenizer = load_model(spec)
    model.eval()
    world = FIRST_WORLD  # the probes read the first world's problems (1..8, held out as generate gives them)
    result = {"model": spec, "fact_accuracy": fact_accuracy(model, tokenizer, world),
              "judges_a_result": judges_results(model, tokenizer, problems, world)}  # fmt: skip
    rng = random.Random(0)
    for length in (3, 6):
        lists = [", ".join(str(rng.randint(1, world.max_number**2)) for _ in range(length)) for _ in range(100)]
        said = greedy(model, tokenizer, [f"{items}. Again:" for items in lists], 2 * length + 1)
        result[f"copies_a_list_of_{length}"] = (
            sum(s.startswith(f" {items}.") for s, items in zip(said, lists, strict=True)) / 100
        )
    # out of order: "12, 5, 40, 9. Again: 40," → " 9" is found only by content, never at a fixed distance back
    lists = [rng.sample(range(1, world.max_number**2 + 1), 5) for _ in range(100)]
    starts = [rng.randrange(1, 4) for _ in lists]
    prompts = [f"{', '.join(map(str, n))}. Again: {n[k]}," for n, k in zip(lists, starts, strict=True)]
    said = greedy(model, tokenizer, prompts, 1)
    result["continues_a_list_out_of_order"] = (
        sum(s == f" {n[k + 1]}" for s, n, k in zip(said, lists, starts, strict=True)) / 100
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
        result["token_accuracy"] = token_accuracy(model, tokenizer, problems)
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
