"""When does a model from scratch learn to copy? The plateau before an induction head (BENCHMARKS §12b).

Trains a fresh `countdown-tiny`-shaped Llama on copying alone (`rlt.micro.base.copy_lines`: a list of numbers, then
"Again:" and the list once more) with transformers' Trainer, and every --every steps records the share of unseen
lists it repeats exactly (`rlt.micro.base.copy_accuracy`). The loss sits on a plateau, then drops when copying by
content appears; how long the plateau lasts is what the base recipe's first phase must outlast.

    python benchmarks/micro_copy.py --layers 2 --hidden 128 --heads 4 --block 64 --steps 3000 \\
        --out benchmarks/results/micro_copy_2x128.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from datasets import Dataset
from transformers import (
    DataCollatorForLanguageModeling,
    LlamaForCausalLM,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from rlt.micro.base import RECIPES, _blocks, copy_accuracy, copy_lines, model_config
from rlt.micro.tokenizer import build_tokenizer


def train_measured(
    model,
    tokenizer,
    blocks: list[list[int]],
    *,
    steps: int,
    batch: int,
    learning_rate: float,
    seed: int,
    every: int,
    measure,
    output_dir: str,
) -> list[dict]:
    """Train `model` on `blocks` as the build's copying phase does (transformers' Trainer, the learning rate constant
    after a warm-up of a twentieth of the steps) and, every `every` steps, record the seconds so far, the last logged
    loss and what `measure(model)` returns (a dict)."""
    started, curve = time.time(), []

    class Probe(TrainerCallback):
        def on_step_end(self, _args, state, _control, model=None, **_):
            if state.global_step % every == 0:
                losses = [h["loss"] for h in state.log_history if "loss" in h]
                measured = measure(model.eval())
                model.train()
                curve.append({"step": state.global_step, "seconds": round(time.time() - started, 1),
                              "loss": losses[-1] if losses else None, **measured})  # fmt: skip
                print(curve[-1], flush=True)

    training = TrainingArguments(
        output_dir=output_dir, max_steps=steps, per_device_train_batch_size=batch, learning_rate=learning_rate,
        lr_scheduler_type="constant_with_warmup", warmup_steps=steps // 20, weight_decay=0.0, seed=seed,
        use_cpu=True, bf16=False, save_strategy="no", report_to="none", logging_steps=max(1, every // 5),
        disable_tqdm=True, dataloader_drop_last=True,
    )  # fmt: skip
    tokenizer.padding_side = "right"
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    Trainer(model=model, args=training, train_dataset=Dataset.from_dict({"input_ids": blocks}), data_collator=collator,
            callbacks=[Probe()]).train()  # fmt: skip
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--block", type=int, default=64, help="tokens per training sequence")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--longest", type=int, default=8, help="numbers in the longest list")
    parser.add_argument("--seed", type=int, default=0, help="the draw of the lists and of the weights")
    parser.add_argument("--out", default="benchmarks/results/micro_copy.json")
    parser.add_argument("--save", help="also save the trained model (and the tokenizer) here")
    args = parser.parse_args()
    recipe = replace(RECIPES["countdown-tiny"], layers=args.layers, hidden=args.hidden, heads=args.heads)
    tokenizer = build_tokenizer()
    lines = copy_lines(recipe.copy_world, args.steps * args.batch * args.block // 16 + 64, args.seed, args.longest)
    blocks = _blocks(lines, tokenizer, args.block)
    set_seed(args.seed)
    model = LlamaForCausalLM(model_config(recipe, tokenizer))
    curve = train_measured(
        model, tokenizer, blocks, steps=args.steps, batch=args.batch, learning_rate=args.learning_rate,
        seed=args.seed, every=args.every, output_dir="runs/bench/micro_copy",
        measure=lambda model: {"copies": copy_accuracy(model, tokenizer, recipe.copy_world)},
    )  # fmt: skip
    record = {"command": "python benchmarks/micro_copy.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if k not in ("out", "save")), "parameters": model.num_parameters(),
        "curve": curve}  # fmt: skip
    Path(args.out).write_text(json.dumps(record, indent=1))
    if args.save:
        model.save_pretrained(args.save, safe_serialization=True)
        tokenizer.save_pretrained(args.save)


if __name__ == "__main__":
    main()
