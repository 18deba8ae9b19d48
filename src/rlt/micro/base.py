"""The micro-world's base model: a tiny Llama built from scratch on text that teaches the facts, not the skill.

In the paper every model starts pretrained: Qwen2.5 knows arithmetic before R1's traces teach it to search. A model
from scratch must get that knowledge somewhere, and on two cores arithmetic is what it learns last (probes in
`shared/notes`). So the base reads a corpus the countdown generator writes, over the numbers the world's problems
use, holding what a pretrained model would know and nothing of the task:

    facts        every operation of a pair of numbers, in random order:  "9 + 3 = 12, 9 - 3 = 6, 9 * 3 = 27."
    bookkeeping  a pool, one operation on it, the pool after:            "9, 3, 5: 9 - 3 = 6, left 5, 6."
    copying      a list, repeated:                                       "12, 5, 40. Again: 12, 5, 40."
    reading      a question, restated:                                   "Make 30 from ... Numbers 9, 3, 5. Target 30."
                                                                         "Make 30 from ... Target 30, numbers 9, 3, 5."
    checking     a question's goal, results judged against it:           "Make 30 from the numbers 9, 3, 5.
                                                                          9 + 3 = 12. No. 6 * 5 = 30. Yes!"

The pairs are drawn uniformly from every pair a search over the world's problems can reach, and the pools from the
world's numbers, so every fact a search trace can state is in the corpus, the rare ones as often as the common. A
pretrained model can also read a question, say what it asks and tell whether a number is it; none can have seen its
solution: no trace, worked solution or answer is in the corpus (the results checked are any of the world's, not moves
on the question's numbers). What to try, in which order, and how to write the answer is what distillation has
to teach.

Every one of these but the facts needs the model to find something earlier in its text and copy it, and a model from
scratch cannot: copying appears in a sudden drop after a long plateau, later than the facts and than a short build
lasts (BENCHMARKS §12b). So the build has two phases: copying alone first, lists repeated in short sequences, until
the plateau breaks; then the world's text above, copying kept in the mix. Which copying the plateau ends in depends
on the draw: most draws tried repeat only the lists of one length, and some repeat lists of any length, 0.98 of
unseen lists by step 2,250 with this recipe's shape and seed (2 layers, seed 1); the build checks it
(`copy_checks`). Either kind copies in order from an anchor ("Again:", the start of a question), not by content: the
base cannot continue a list from one of its numbers, nor recall the number paired with another (a lookup by
content stays at chance for 2,500 steps of its own training text; §12f). Telling whether a result is a question's
target is such a lookup, and the checking lines have not taught it (§12c, §12f).

With one target for every problem (as in the 24 game) the verdict needs no such lookup: "= 2" ends a search whatever
the question, a fact like "6 / 3 = 2". So the world of `countdown-tiny` is three numbers from 1 to 13 and the
target 2 (`recipes/micro/`), its answers the steps the search walked ("So 13 - 10 = 3, 6 / 3 = 2.", which a student
copies, where an expression would have to be rebuilt by content); phase 1 keeps the first world's copying lists
(`FIRST_WORLD`), whose draw is known to copy lists of every length (BENCHMARKS §12g).

`build` trains it with transformers' Trainer (seeded: the same weights for the same seed on one machine) and
`ensure_base` caches it under the embedded name, like the GGUF models in `rlt.models`. A build that outlasts a first
use's 15 minutes ships its weights in the package (`SHIPPED`), with the `build.json` of the build that made them;
`build(RECIPES[name], DIR)` makes them again.
"""

from __future__ import annotations

import json
import logging
import random
import resource
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rlt.data import countdown

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    """The micro-world's problem range: how many numbers a problem has and how large they are."""

    sizes: tuple[int, int] = (3, 3)
    max_number: int = 13


#: The first countdown-tiny's world, numbers 1..8: phase 1 still draws its copying lists from it (numbers up to 64),
#: a draw known to end in copying lists of every length (BENCHMARKS §12a-b).
FIRST_WORLD = World(max_number=8)


@dataclass(frozen=True)
class BaseRecipe:
    """Everything that decides the base's weights: the world, the model's shape, the two phases of training.

    Phase 1 (`copy_*`) is copying alone: lists repeated, in short sequences. A model that has to find in its text
    the token after the one it just wrote (an induction head) learns it in a sudden drop after a long plateau, and
    the plateau is shorter with short sequences and nothing else to learn (BENCHMARKS §12b). How long the plateau
    lasts, and whether what ends it copies lists of every length or only short ones, varies from draw to draw; so
    with `copy_until` phase 1 stops as soon as `copy_accuracy` (lists of 3 to 6) reaches it, checked every
    `copy_check_every` steps, and `copy_steps` is only its cap. Phase 2 is the world's text (`corpus_lines`), copying
    kept in the mix so the skill stays."""

    world: World = World()
    copy_world: World = FIRST_WORLD  # the lists of phase 1: numbers up to its max_number², its draw
    layers: int = 2
    hidden: int = 128
    heads: int = 4
    copy_steps: int = 3000
    copy_block: int = 64
    copy_learning_rate: float = 1e-3
    copy_until: float | None = None  # stop phase 1 at this copy accuracy; None: run all `copy_steps`
    copy_check_every: int = 250
    block: int = 128  # tokens per training sequence (lines packed, cut at line ends)
    batch: int = 32
    steps: int = 3500
    learning_rate: float = 1e-3
    seed: int = 1

    @property
    def identity(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _pair_facts(a: int, b: int, rng: random.Random) -> str:
    moves = countdown._moves((a, b))
    rng.shuffle(moves)
    return ", ".join(f"{x} {op} {y} = {value}" for x, op, y, value, _ in moves) + "."


def _pool_step(pool: tuple[int, ...], rng: random.Random) -> tuple[str, tuple[int, ...]]:
    x, op, y, value, after = rng.choice(countdown._moves(pool))
    return f"{countdown._listed(pool)}: {x} {op} {y} = {value}, left {countdown._listed(after)}.", after


def _repeated_list(world: World, rng: random.Random, longest: int) -> str:
    listed = countdown._listed(rng.randint(1, world.max_number**2) for _ in range(rng.randint(2, longest)))
    return f"{listed}. Again: {listed}."


def copy_lines(world: World, count: int, seed: int, longest: int = 8) -> list[str]:
    """Phase 1's text: `count` lists of 2 to `longest` numbers, each repeated after "Again:"."""
    rng = random.Random(f"micro-copy:{seed}:{world}")
    return [_repeated_list(world, rng, longest=longest) for _ in range(count)]


def search_pairs(world: World) -> list[tuple[int, int]]:
    """Every pair of numbers a search over the world's problems reaches (the last two left), larger first."""
    from itertools import combinations_with_replacement

    pairs, seen = set(), set()

    def walk(pool: tuple[int, ...]) -> None:
        if pool in seen:
            return
        seen.add(pool)
        if len(pool) == 2:
            pairs.add(tuple(sorted(pool, reverse=True)))
            return
        for *_, after in countdown._moves(pool):
            walk(tuple(sorted(after)))

    low, high = world.sizes
    for size in range(low, high + 1):
        for numbers in combinations_with_replacement(range(1, world.max_number + 1), size):
            walk(numbers)
    return sorted(pairs)


def corpus_lines(world: World, count: int, seed: int) -> list[str]:
    """`count` lines: 45 % the facts of a pair drawn uniformly from those a search can reach (the rare pairs deep in
    a search, 56 and 7, as often as the common first ones), 15 % lists repeated and 12 % questions restated (reading
    needs a copy from far back, which short lines never teach), 13 % checking (a question, then results judged
    against what it asks), 15 % bookkeeping (random walks from random draws of the numbers)."""
    rng = random.Random(f"micro-corpus:{seed}:{world}")
    pairs = search_pairs(world)
    facts = [m[:4] for pair in pairs for m in countdown._moves(pair)]
    by_value: dict[int, list] = {}
    for fact in facts:
        by_value.setdefault(fact[3], []).append(fact)
    low, high = world.sizes
    lines = []
    while len(lines) < count:
        draw = rng.random()
        if draw < 0.45:
            lines.append(_pair_facts(*rng.choice(pairs), rng))
            continue
        if draw < 0.6:  # lists of 2 to 12 numbers, so no one distance back repeats them all
            lines.append(_repeated_list(world, rng, longest=12))
            continue
        numbers = [rng.randint(1, world.max_number) for _ in range(rng.randint(low, high))]
        if draw < 0.85:
            solved = countdown.solve_randomly(numbers, rng)
            if solved is None or solved[1] in numbers or not 1 <= solved[1] <= countdown.MAX_TARGET:
                continue
            target, listed = solved[1], countdown._listed(numbers)
            problem = countdown.Countdown(tuple(numbers), target)
            if draw < 0.72:  # reading a question: restated (copied from ~25 tokens back), never solved
                restated = f"Numbers {listed}. Target {target}." if rng.random() < 0.5 else \
                    f"Target {target}, numbers {listed}."  # fmt: skip
                lines.append(f"{problem.question} {restated}")
            else:  # checking: is a result the number asked for? Every verdict of a search is this comparison
                lines.append(problem.goal + "".join(
                    f" {x} {op} {y} = {value}. {'Yes!' if value == target else 'No.'}"
                    for x, op, y, value in (rng.choice(by_value[target]) if target in by_value and rng.random() < 0.4
                                            else rng.choice(facts) for _ in range(rng.randint(1, 4)))))  # fmt: skip
            continue
        pool = tuple(numbers)
        while len(pool) > 2:
            line, pool = _pool_step(pool, rng)
            lines.append(line)
    return lines[:count]


def facts_of(world: World) -> dict[str, list[tuple[int, str, int, int]]]:
    """The facts a search over the world's problems can state, "a op b = c" as (a, op, b, c): `first`, between
    two of the numbers drawn, and `deeper`, on a pair a first move leaves (the last pair of a three-number search)."""
    first = {m[:4] for a in range(1, world.max_number + 1) for b in range(1, a + 1) for m in countdown._moves((a, b))}
    deeper = {m[:4] for pair in search_pairs(world) for m in countdown._moves(pair)} - first
    return {"first": sorted(first), "deeper": sorted(deeper)}


def fact_accuracy(model, tokenizer, world: World, batch: int = 256) -> dict[str, float]:
    """The share of the world's facts whose result the model predicts greedily after "a op b =", by kind
    (`facts_of`); results past MAX_INTEGER (several tokens) are left out."""
    from rlt.micro.tokenizer import MAX_INTEGER

    accuracy = {}
    for kind, facts in facts_of(world).items():
        facts = [f for f in facts if f[3] <= MAX_INTEGER]
        right = 0
        for start in range(0, len(facts), batch):
            chunk = facts[start : start + batch]
            texts = [f"{a} {op} {b} =" for a, op, b, _ in chunk]
            encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                predicted = model(**encoded).logits[:, -1].argmax(-1).tolist()
            wanted = tokenizer.convert_tokens_to_ids([f" {c}" for *_, c in chunk])
            right += sum(p == w for p, w in zip(predicted, wanted, strict=True))
        accuracy[kind] = right / len(facts)
    return accuracy


def copy_accuracy(model, tokenizer, world: World, lists: int = 100) -> float:
    """The share of `lists` unseen lists of 3 to 6 numbers the model repeats exactly after "Again:" (each token its
    greedy prediction given the ones before): whether it can copy from earlier in its text at all."""
    rng = random.Random("micro-copy-probe")
    right = 0
    for _ in range(lists):
        listed = countdown._listed(rng.randint(1, world.max_number**2) for _ in range(rng.randint(3, 6)))
        prompt = tokenizer(f"{listed}. Again:", add_special_tokens=False)["input_ids"]
        wanted = tokenizer(f" {listed}.", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([prompt + wanted[:-1]])).logits[0, len(prompt) - 1 :]
        right += logits.argmax(-1).tolist() == wanted
    return right / lists


def _blocks(lines: list[str], tokenizer, block: int) -> list[list[int]]:
    """Lines tokenised and packed into sequences of at most `block` tokens, each starting at a line."""
    blocks, current = [], []
    for ids in tokenizer([line + "\n" for line in lines], add_special_tokens=False)["input_ids"]:
        if current and len(current) + len(ids) > block:
            blocks.append(current)
            current = []
        current = current + ids[:block]
    return [*blocks, current] if current else blocks


def model_config(recipe: BaseRecipe, tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden,
        intermediate_size=3 * recipe.hidden,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )


def _train(
    model,
    tokenizer,
    blocks: list[list[int]],
    steps: int,
    learning_rate: float,
    schedule: str,
    recipe: BaseRecipe,
    output_dir: Path,
    progress: bool,
    callbacks: list | None = None,
) -> list[dict]:
    """One phase of the build with transformers' Trainer: `steps` batches of `blocks` (fewer if a callback stops
    it); the loss log."""
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(output_dir / "trainer"),
        max_steps=steps,
        per_device_train_batch_size=recipe.batch,
        learning_rate=learning_rate,
        lr_scheduler_type=schedule,
        warmup_steps=max(1, steps // 20),
        weight_decay=0.0,
        seed=recipe.seed,
        data_seed=recipe.seed,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        save_strategy="no",
        report_to="none",
        logging_steps=max(1, steps // 20),
        disable_tqdm=not progress,
        dataloader_drop_last=True,
    )
    tokenizer.padding_side = "right"  # training pads after the text
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"input_ids": blocks}),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        callbacks=callbacks,
    )
    trainer.train()
    tokenizer.padding_side = "left"
    shutil.rmtree(output_dir / "trainer", ignore_errors=True)
    return [h for h in trainer.state.log_history if "loss" in h]


def _copy_check(recipe: BaseRecipe, tokenizer, checks: list[dict]):
    """A Trainer callback that measures `copy_accuracy` every `recipe.copy_check_every` steps into `checks` and,
    once it reaches `recipe.copy_until`, ends the phase."""
    from transformers import TrainerCallback

    class CopyCheck(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % recipe.copy_check_every:
                return
            accuracy = copy_accuracy(model.eval(), tokenizer, recipe.copy_world)
            model.train()
            checks.append({"step": state.global_step, "copy_accuracy": accuracy})
            logger.info("copying, step %d: %.2f of lists repeated exactly", state.global_step, accuracy)
            if recipe.copy_until is not None and accuracy >= recipe.copy_until:
                control.should_training_stop = True

    return CopyCheck()


def world_lines(recipe: BaseRecipe) -> list[str]:
    """Phase 2's text: enough corpus lines for `recipe.steps` batches of `recipe.block` tokens (~12 tokens a line;
    packing leaves a little over, drop_last the rest)."""
    return corpus_lines(recipe.world, count=recipe.steps * recipe.batch * recipe.block // 12 + 64, seed=recipe.seed)


def train_world(model, tokenizer, blocks: list[list[int]], recipe: BaseRecipe, output_dir: Path, progress: bool):
    """Phase 2 on `blocks` (`world_lines`, packed): `recipe.steps` steps at `recipe.learning_rate`, cosine; the loss
    log. The build runs it after copying; benchmarks run it from a saved phase-1 model."""
    return _train(model, tokenizer, blocks, recipe.steps, recipe.learning_rate, "cosine", recipe, output_dir, progress)


def build(recipe: BaseRecipe, output_dir: str | Path, progress: bool = True) -> dict:
    """Train the base from scratch and save it (safetensors, tokenizer, `build.json`) to `output_dir`: the record."""
    from transformers import LlamaForCausalLM, set_seed

    from rlt.micro.tokenizer import build_tokenizer

    started = time.time()
    output_dir = Path(output_dir)
    tokenizer = build_tokenizer()
    # ~16 tokens a copy line; packing leaves a little over, drop_last the rest
    copying = _blocks(copy_lines(recipe.copy_world, recipe.copy_steps * recipe.batch * recipe.copy_block // 16 + 64,
                                 seed=recipe.seed), tokenizer, recipe.copy_block)  # fmt: skip
    lines = world_lines(recipe)
    blocks = _blocks(lines, tokenizer, recipe.block)
    set_seed(recipe.seed)
    model = LlamaForCausalLM(model_config(recipe, tokenizer))
    phases, copies, checks = {}, {}, []
    if recipe.copy_steps:
        phases["copying"] = _train(model, tokenizer, copying, recipe.copy_steps, recipe.copy_learning_rate,
                                   "constant_with_warmup", recipe, output_dir, progress,
                                   [_copy_check(recipe, tokenizer, checks)])  # fmt: skip
        copies["after copying"] = copy_accuracy(model.eval(), tokenizer, recipe.copy_world)
    phases["world"] = train_world(model, tokenizer, blocks, recipe, output_dir, progress)
    model.eval()
    facts = fact_accuracy(model, tokenizer, recipe.world)
    copies["after the world"] = copy_accuracy(model, tokenizer, recipe.world)
    model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)
    record = {
        "recipe": json.loads(recipe.identity),
        "parameters": sum(p.numel() for p in model.parameters()),
        "corpus": {
            "copying": {"blocks": recipe.copy_steps and len(copying), "tokens": sum(map(len, copying))},
            "world": {"lines": len(lines), "blocks": len(blocks), "tokens": sum(map(len, blocks))},
        },
        "fact_accuracy": facts,
        "copy_accuracy": copies,
        "copy_checks": checks,
        "loss": {phase: [round(h["loss"], 4) for h in log] for phase, log in phases.items()},
        "seconds": round(time.time() - started, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),  # the whole process's
    }
    (output_dir / "build.json").write_text(json.dumps(record, indent=1))
    return record


#: The embedded micro-world models, by name: what `--model_name_or_path countdown-tiny` (or --teacher, --student,
#: --judge) builds on first use and reads from the cache after.
RECIPES = {"countdown-tiny": BaseRecipe()}


#: Weights that ship in the package, by embedded name, each with the `build.json` of the build that made them: a base
#: whose build outlasts the 15 minutes a first use may take is copied from here, not rebuilt.
SHIPPED = Path(__file__).parent / "weights"


def _built_by(directory: Path, recipe: BaseRecipe) -> bool:
    record = directory / "build.json"
    return record.exists() and json.loads(record.read_text())["recipe"] == json.loads(recipe.identity)


def ensure_base(name: str, cache: Path) -> Path:
    """The cached base of an embedded micro-world name: copied from the package's `SHIPPED` weights when they are this
    recipe's, else built first when the cache lacks it or holds another recipe's weights (a crash mid-build leaves
    only a `.partial` directory, which the next build replaces)."""
    recipe, target = RECIPES[name], cache / name
    if _built_by(target, recipe):
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if _built_by(SHIPPED / name, recipe):
        shutil.copytree(SHIPPED / name, partial)
    else:
        logger.warning("building the micro-world base %s from scratch into %s (once; about 22 minutes on 2 cores)",
                       name, target)  # fmt: skip
        build(recipe, partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)
    return target
