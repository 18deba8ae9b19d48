"""Which copying text gets a model from scratch past the plateau to copying by content (BENCHMARKS §12b)?

The build's phase 1 (`rlt.micro.base.copy_lines`) repeats a list right after itself, so a list of three numbers
always sits the same number of tokens back: a head that attends a fixed distance back repeats those, and runs do
settle there (about a quarter of the probe lists: the ones of three). This trains a fresh `countdown-tiny`-shaped
Llama on one of three texts, lists of 2 to 8 numbers up to 64, each line "List …. Again: …." :

    comma   the numbers separated by ", " as in the world's text
    mixed   half the lines with the numbers separated by spaces alone: copying them needs only the token before
            (one token back), where after a comma it needs the number before the comma (two back)
    gap     commas, and "Then" plus 0 to 8 random numbers between the list and its repeat: no fixed distance
            copies any list, only finding it by content does
    recall  pairs "key value" of numbers up to 64, then the pairs again in another order, "List 12 40, 5 7. Again: 5 7,
            12 40.": each value follows its key wherever the key is, so only a lookup by content (an induction head:
            find the earlier key, say what came after it) predicts it

and every 250 steps records (`micro_copy.train_measured`, the same training) the share of 100 unseen lists of 3 to 6 it
repeats exactly, comma- and space-separated ("List …. Again:", no gap).

    python -m benchmarks.micro_copy_variants --variant gap --steps 8000 \\
        --out benchmarks/results/micro_copy_gap.json

Run from the repository root as a module (`-m`): it imports a sibling benchmark.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import replace
from pathlib import Path

import torch
from transformers import LlamaForCausalLM, set_seed

from benchmarks.micro_copy import train_measured
from rlt.micro.base import RECIPES, _blocks, model_config
from rlt.micro.tokenizer import build_tokenizer

SEPARATORS = {"comma": ", ", "space": " "}


def line(variant: str, rng: random.Random, largest: int = 64) -> str:
    numbers = [rng.randint(1, 64) for _ in range(rng.randint(2, 8))]
    separator = ", " if variant != "mixed" or rng.random() < 0.5 else " "
    listed = separator.join(map(str, numbers))
    if variant == "recall":
        keys = rng.sample(range(1, largest + 1), rng.randint(2, min(6, largest)))
        pairs = [f"{key} {rng.randint(1, largest)}" for key in keys]
        again = rng.sample(pairs, len(pairs))
        return f"List {', '.join(pairs)}. Again: {', '.join(again)}."
    if variant == "gap":
        filler = " ".join(str(rng.randint(1, 64)) for _ in range(rng.randint(0, 8)))
        return f"List {listed}. Then {filler}. Again: {listed}."
    return f"List {listed}. Again: {listed}."


def copies(model, tokenizer, lists: list[list[int]], separator: str) -> float:
    """The share of `lists` the model repeats exactly after "Again:" (each token its greedy prediction)."""
    right = 0
    for numbers in lists:
        listed = separator.join(map(str, numbers))
        prompt = tokenizer(f"List {listed}. Again:", add_special_tokens=False)["input_ids"]
        wanted = tokenizer(f" {listed}.", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([prompt + wanted[:-1]])).logits[0, len(prompt) - 1 :]
        right += logits.argmax(-1).tolist() == wanted
    return right / len(lists)


def recalls(model, tokenizer, lines: list[str]) -> float:
    """The share of values the model predicts right in unseen `recall` lines."""
    right = total = 0
    for text in lines:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        start = ids.index(tokenizer.convert_tokens_to_ids(":"))
        with torch.no_grad():
            predicted = model(torch.tensor([ids])).logits[0].argmax(-1).tolist()
        values = range(start + 2, len(ids) - 1, 3)  # in "Again: k v, k v.", every third token from the second
        right += sum(predicted[i - 1] == ids[i] for i in values)
        total += len(values)
    return right / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=("comma", "mixed", "gap", "recall"), default="gap")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--rope_theta", type=float, default=10_000.0)
    parser.add_argument("--largest", type=int, default=64, help="the largest number in a recall line")
    parser.add_argument("--out", default="benchmarks/results/micro_copy_variant.json")
    args = parser.parse_args()
    recipe = replace(RECIPES["countdown-tiny"], layers=args.layers, hidden=128, heads=4)
    tokenizer = build_tokenizer()
    rng = random.Random(f"probe:{args.seed}")
    lines = [line(args.variant, rng, args.largest) for _ in range(args.steps * 32 * 64 // 14 + 64)]
    blocks = _blocks(lines, tokenizer, 64)
    set_seed(args.seed)
    config = model_config(recipe, tokenizer)
    config.rope_parameters["rope_theta"] = args.rope_theta  # RoPE's base: larger leaves more of a head position-free
    model = LlamaForCausalLM(config)
    probe_rng = random.Random("probe-eval")
    probes = {name: [[probe_rng.randint(1, 64) for _ in range(probe_rng.randint(3, 6))] for _ in range(100)]
              for name in SEPARATORS}  # fmt: skip
    recall_rng = random.Random("probe-recall")
    recall_lines = [line("recall", recall_rng, args.largest) for _ in range(100)]
    measures = {name: (lambda m, sep=sep, name=name: copies(m, tokenizer, probes[name], sep))
                for name, sep in SEPARATORS.items()}  # fmt: skip
    measures["recall"] = lambda m: recalls(m, tokenizer, recall_lines)
    curve = train_measured(
        model, tokenizer, blocks, steps=args.steps, batch=32, learning_rate=args.learning_rate, seed=args.seed,
        every=250,
        output_dir="runs/bench/micro_copy_variants",
        measure=lambda model: {name: measure(model) for name, measure in measures.items()},
    )  # fmt: skip
    command = "python -m benchmarks.micro_copy_variants " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if k != "out")  # fmt: skip
    Path(args.out).write_text(json.dumps({"command": command, "curve": curve}, indent=1))


if __name__ == "__main__":
    main()
