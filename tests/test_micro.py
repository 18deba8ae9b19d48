"""The countdown micro-world: its tokenizer, its problem range, and the seeded build of its base."""

import itertools
import json
import re

import pytest
import torch
from safetensors.torch import load_file

from rlt.data.countdown import Countdown, distinct_problems, generate
from rlt.errors import UsageError
from rlt.micro import base
from rlt.micro.base import BaseRecipe, World, build, corpus_lines
from rlt.micro.tokenizer import MAX_INTEGER, build_tokenizer
from rlt.reward.formats import MICRO, student_text, teacher_prompt

TINY = BaseRecipe(layers=1, hidden=32, heads=2, copy_steps=2, copy_block=32, block=48, batch=4, steps=3)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_numbers_and_words_are_one_token_each_and_anything_else_still_encodes(tok):
    ids = tok("Try 12 * 7 = 84, left 5, 84.", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == [
        "Try",
        " 12",
        " *",
        " 7",
        " =",
        " 84",
        ",",
        " left",
        " 5",
        ",",
        " 84",
        ".",
    ]
    assert len(tok(str(MAX_INTEGER), add_special_tokens=False)["input_ids"]) == 1
    assert tok.convert_ids_to_tokens(tok("1234", add_special_tokens=False)["input_ids"]) == list("1234")
    for text in ["Zebra crossing, ünïcödé — 東京 ✓", "  indented\n\n\nthree breaks\ttab", "<think>x</think>"]:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_offsets_cover_every_character_of_a_chat_exactly_once(tok):
    row = generate(5, (3, 3), seed=1, max_number=12)[2]
    text = student_text(tok, row["question"], row["reasoning_trace"], row["solution"], MICRO)
    encoded = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    spans = encoded["offset_mapping"]
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == end  # contiguous, no gap, no overlap (ASCII: one character per token at least)
    assert tok.decode(encoded["input_ids"]) == text
    assert len(encoded["input_ids"]) < 200  # short prompts, whole numbers and words: a chat is cheap to read


def test_the_chat_template_keeps_content_verbatim_with_a_think_section(tok):
    prompt = teacher_prompt(tok, "Make 24 from 2, 3, 4.", "So (2 + 4) * 4 = 24.", MICRO)
    assert prompt.startswith("<|system|>\nExplain how to find this solution.<|end|>\n<|user|>\nMake 24")
    assert prompt.endswith("<explanation>\n\n")
    chat = student_text(tok, "Q?", "I think.", "So it is.", MICRO)
    assert "<|assistant|>\n<think>\n\nI think.</think>\n\n<solution>\n\nSo it is.\n\n</solution><|end|>\n" in chat
    assert tok.eos_token == "<|end|>" and tok.pad_token_id != tok.eos_token_id


def test_the_problem_range_is_a_knob_and_a_count_beyond_the_space_is_refused_at_once():
    rows = generate(300, (3, 3), seed=0, max_number=6)
    assert {n for r in rows for n in r["numbers"]} <= set(range(1, 7))
    assert all(Countdown(tuple(r["numbers"]), r["target"]).check(r["answer"])[0] for r in rows)
    exist = distinct_problems((3, 3), max_number=6)
    every = generate(exist, (3, 3), seed=0, max_number=6)  # all of them: the count is exact
    assert len({(tuple(sorted(r["numbers"])), r["target"]) for r in every}) == exist == 542
    with pytest.raises(UsageError, match="has 542 distinct problems; 543 asked"):
        generate(exist + 1, (3, 3), seed=0, max_number=6)
    assert distinct_problems((2, 2)) == 859  # `--dataset countdown:2` once drew for ever asking 1,000
    with pytest.raises(UsageError, match="has 859 distinct problems; 1000 asked"):
        generate(1000, (2, 2))
    assert generate(20, (3, 4), seed=0) == generate(20, (3, 4), seed=0, max_number=25)  # the default unchanged


def test_the_base_corpus_holds_facts_bookkeeping_and_checks_but_no_search():
    lines = corpus_lines(World(), 2000, seed=0)
    text = "\n".join(lines)
    for word in ("Try", "Back", "So", "Answer", "the target", "left:", "<"):  # no trace, solution or tag
        assert word not in text
    questions = [line for line in lines if line.startswith("Make ") and "Give the expression" in line]
    assert 0.05 < len(questions) / len(lines) < 0.15  # a question is read and restated, never solved
    restated = r"Give the expression\. (Numbers [\d, ]+\. Target \d+|Target \d+, numbers [\d, ]+)\.$"
    assert all(re.search(restated, q) for q in questions)
    # a question's goal, then results judged against its target: "Yes!" exactly when a result is the target
    checks = [line for line in lines if line.startswith("Make ") and "Give the expression" not in line]
    assert 0.06 < len(checks) / len(lines) < 0.2
    verdicts = []
    for line in checks:
        target = int(re.match(r"Make (\d+) from the numbers [\d, ]+\.", line)[1])
        assert re.fullmatch(r"Make \d+ from the numbers [\d, ]+\.( \d+ [-+*/] \d+ = \d+\. (Yes!|No\.)){1,4}", line)
        judged = re.findall(r" \d+ [-+*/] \d+ = (\d+)\. (Yes!|No\.)", line)
        verdicts += [(int(value) == target, said == "Yes!") for value, said in judged]
    assert all(hit == yes for hit, yes in verdicts) and 0.25 < sum(yes for _, yes in verdicts) / len(verdicts) < 0.6
    facts = [line for line in lines if ":" not in line]
    assert facts and all(line.endswith((".", "!")) for line in lines)
    # every statement is true arithmetic over the world's pools
    from rlt.data.countdown import arithmetic

    true, stated = arithmetic(text)
    assert stated > 4000 and true == stated


def test_the_build_is_seeded_and_recorded(tmp_path):
    first = build(TINY, tmp_path / "a", progress=False)
    build(TINY, tmp_path / "b", progress=False)
    build(BaseRecipe(**{**TINY.__dict__, "seed": TINY.seed + 1}), tmp_path / "c", progress=False)
    weights = [load_file(tmp_path / d / "model.safetensors") for d in "abc"]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(not torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    record = json.loads((tmp_path / "a" / "build.json").read_text())
    assert record["recipe"]["steps"] == 3 and record["parameters"] == first["parameters"] > 0
    assert record["corpus"]["copying"]["blocks"] >= 2 * TINY.batch and record["corpus"]["world"]["tokens"] > 0
    assert len(record["loss"]["copying"]) == 2 and len(record["loss"]["world"]) == 3  # both phases ran, in order


def test_the_copying_phase_stops_once_copying_is_measured_as_learnt(tmp_path, monkeypatch):
    """`copy_until`: phase 1 is measured every `copy_check_every` steps and ends at the first check that reaches it,
    so `copy_steps` is a cap; without it the phase runs to the cap, the checks still recorded."""
    measured = iter([0.1, 0.5, 0.95, 0.99, 0.99])  # three checks, then after each phase
    monkeypatch.setattr(base, "copy_accuracy", lambda *args, **kwargs: next(measured))
    recipe = BaseRecipe(**{**TINY.__dict__, "copy_steps": 8, "copy_check_every": 2, "copy_until": 0.9, "steps": 1})
    record = build(recipe, tmp_path / "until", progress=False)
    assert record["copy_checks"] == [{"step": 2, "copy_accuracy": 0.1}, {"step": 4, "copy_accuracy": 0.5},
                                     {"step": 6, "copy_accuracy": 0.95}]  # fmt: skip
    assert len(record["loss"]["copying"]) == 6 and record["copy_accuracy"]["after copying"] == 0.99  # a loss a step
    measured = iter([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    record = build(BaseRecipe(**{**recipe.__dict__, "copy_until": None}), tmp_path / "cap", progress=False)
    assert [c["step"] for c in record["copy_checks"]] == [2, 4, 6, 8] and len(record["loss"]["copying"]) == 8


def test_the_embedded_name_builds_once_and_loads_everywhere_a_model_is_named(tmp_path, monkeypatch):
    from rlt import models

    monkeypatch.setenv("RLT_CACHE", str(tmp_path))
    monkeypatch.setitem(base.RECIPES, "countdown-tiny", TINY)
    path = models.resolve("countdown-tiny")
    stamp = (tmp_path / "countdown-tiny" / "model.safetensors").stat().st_mtime_ns
    assert models.resolve("Countdown-Tiny") == path  # cached: no second build
    assert (tmp_path / "countdown-tiny" / "model.safetensors").stat().st_mtime_ns == stamp
    model, tokenizer = models.load_model("countdown-tiny")
    assert model.config.num_hidden_layers == 1 and tokenizer.eos_token == "<|end|>"
    assert "countdown-tiny" in models.embedded_names()
    # another recipe's cache (an older build) is rebuilt, not trusted
    monkeypatch.setitem(base.RECIPES, "countdown-tiny", BaseRecipe(**{**TINY.__dict__, "seed": 5}))
    models.resolve("countdown-tiny")
    assert json.loads((tmp_path / "countdown-tiny" / "build.json").read_text())["recipe"]["seed"] == 5


# ---------------------------------------------------------------------- the micro-world through every command

WORLD = ["--dataset", "countdown:3", "--countdown_max_number", "12", "--countdown_problems", "40", "--holdout", "8",
         "--style", "micro"]  # fmt: skip
FAST = ["--report_to", "none", "--logging_steps", "1", "--seed", "0", "--save_strategy", "no"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny base under the embedded name, the generator's traces of the 32 training problems, and a student
    distilled on them."""
    from rlt import models
    from rlt.cli import main

    root = tmp_path_factory.mktemp("micro")
    patch = pytest.MonkeyPatch()
    patch.setenv("RLT_CACHE", str(root / "cache"))
    patch.setitem(base.RECIPES, "countdown-tiny", BaseRecipe(**{**TINY.__dict__, "hidden": 64, "layers": 2}))
    models.resolve("countdown-tiny")
    assert main(["traces", "--teacher", "dataset:trace", "--part", "train", "--out", str(root / "traces.jsonl"),
                 *WORLD]) == 0  # fmt: skip
    assert main(["distill", "--model_name_or_path", "countdown-tiny", "--traces", str(root / "traces.jsonl"),
                 "--output_dir", str(root / "student"), "--max_steps", "2", "--per_device_train_batch_size", "8",
                 "--learning_rate", "1e-3", *FAST]) == 0  # fmt: skip
    yield root
    patch.undo()


def test_dataset_traces_are_the_generators_own_in_the_student_chat(world):
    from rlt.data.countdown import generate

    rows = [json.loads(line) for line in (world / "traces.jsonl").read_text().splitlines()]
    generated = generate(40, (3, 3), max_number=12)[::-1][:32]  # the split: newest first, the last 8 held out
    assert [r["explanation"] for r in rows] == [g["reasoning_trace"] for g in generated]
    chat = rows[0]["messages"]
    assert chat[0]["content"] == MICRO.student_system and chat[1]["content"] == generated[0]["question"]
    assert chat[2]["content"] == f"<think>\n\n{generated[0]['reasoning_trace']}</think>\n\n<solution>\n\n" \
                                 f"{generated[0]['solution']}\n\n</solution>"  # fmt: skip
    distilled = json.loads((world / "student" / "distill.json").read_text())
    assert distilled["examples"] == 32 and distilled["held_out_questions_trained_on"] == 0


def test_score_details_agree_with_an_independent_recomputation(world):
    from benchmarks.verify_scored import max_deviation, text_checks
    from rlt.cli import main
    from rlt.models import load_model
    from rlt.reward import RewardConfig

    out = world / "scored.jsonl"
    assert main(["score", str(world / "traces.jsonl"), "--teacher", "countdown-tiny", "--student",
                 str(world / "student"), "--style", "micro", "--details", "--out", str(out)]) == 0  # fmt: skip
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    student, student_tok = load_model(str(world / "student"))
    teacher, teacher_tok = load_model("countdown-tiny")
    assert len(scored) == 32 and all(r["aligned"] for r in scored)
    assert max(max_deviation(r, student, teacher, RewardConfig()) for r in scored) <= 1e-4
    assert all(text_checks(r, teacher_tok, student_tok) == (True, True) for r in scored)
    # one token a number: the student's solution span holds the worked solution's numbers as single tokens
    solution = student_tok.convert_ids_to_tokens(
        scored[0]["student_input_ids"][slice(*scored[0]["student_solution_span"])]
    )
    assert " =" in solution and all(len(t.strip()) <= 3 or not t.strip().isdigit() for t in solution)


def test_warmup_train_traces_and_eval_run_in_the_micro_world(world):
    from rlt.cli import main

    assert main(["warmup", "--model_name_or_path", "countdown-tiny", "--output_dir", str(world / "warmup"),
                 "--max_steps", "1", "--per_device_train_batch_size", "8", *WORLD, *FAST]) == 0  # fmt: skip
    assert main(["train", "--model_name_or_path", str(world / "warmup"), "--student", str(world / "student"),
                 "--output_dir", str(world / "rl"), "--max_steps", "2", "--per_device_train_batch_size", "8",
                 "--num_generations", "4", "--max_completion_length", "24", "--learning_rate", "1e-3", *WORLD,
                 *FAST]) == 0  # fmt: skip
    history = json.loads((world / "rl" / "trainer_state.json").read_text())["log_history"]
    rewards = [h["rlt/reward"] for h in history if "rlt/reward" in h]
    assert len(rewards) == 2 and all(r < 0 for r in rewards)  # log-probs and penalties: a real, negative reward
    assert main(["traces", "--teacher", str(world / "rl"), "--student", str(world / "student"), "--part", "holdout",
                 "--max_new_tokens", "24", "--out", str(world / "rl-traces.jsonl"), *WORLD]) == 0  # fmt: skip
    rows = [json.loads(line) for line in (world / "rl-traces.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(isinstance(r["reward"], float) for r in rows)
    out = world / "eval.json"
    assert main(["eval", "--model", str(world / "student"), "--part", "holdout", "--max_new_tokens", "24",
                 "--num_samples", "2", "--k", "1", "2", "--out", str(out), *WORLD]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert result["questions"] == 8 and result["checked_with_countdown"] == 8
    assert all(0 <= r["samples_correct"] <= 2 for r in result["records"])
    assert result["provenance"]["settings"]["data"]["countdown_max_number"] == 12


# ------------------------------------------------------------------------------------ the one-target world (§12h)


def test_a_fixed_target_gives_every_order_of_every_multiset_that_makes_it_side_by_side():
    from itertools import combinations_with_replacement

    from rlt.data.countdown import solve

    rows = generate(1141, (3, 3), max_number=13, target=2, solution="steps")
    assert {r["target"] for r in rows} == {2} and len({tuple(r["numbers"]) for r in rows}) == 1141
    multisets = [tuple(sorted(r["numbers"])) for r in rows]
    runs = [m for i, m in enumerate(multisets) if i == 0 or multisets[i - 1] != m]
    assert len(runs) == len(set(runs)) == 230  # each multiset's orders next to each other, once
    others = set(combinations_with_replacement(range(1, 14), 3)) - set(runs)
    assert others and all(solve(list(m), 2) is None for m in others)  # and no multiset that makes 2 is left out
    assert all(r["solution"].startswith("So ") for r in rows)
    assert all(Countdown(tuple(r["numbers"]), 2).check(r["solution"]) == (True, "correct") for r in rows)
    worked = generate(30, (3, 3), max_number=13, target=2)  # the problems do not depend on how they are written
    assert [{**r, "solution": w["solution"]} for r, w in zip(rows[:30], worked, strict=True)] == worked
    with pytest.raises(UsageError, match=r"target 2 has 1141 problems .*; 1142 asked"):
        generate(1142, (3, 3), max_number=13, target=2)
    with pytest.raises(UsageError, match="--countdown_target"):
        generate(5, target=0)
    with pytest.raises(UsageError, match="--countdown_solution"):
        generate(5, solution="prose")


def test_the_held_out_part_never_splits_a_multisets_orders():
    from rlt.configs import DataArguments
    from rlt.data import split_problems

    items = ["a1", "a2", "b1", "b2", "b3", "c1"]
    assert split_problems(items, 2, group=lambda item: item[0]) == (["a1", "a2"], ["b1", "b2", "b3", "c1"])
    assert split_problems(items, 1, group=lambda item: item[0]) == (items[:5], ["c1"])
    assert split_problems(items, 2) == (items[:4], items[4:])  # without groups, the last N
    with pytest.raises(UsageError, match="takes every problem"):
        split_problems(items[:2], 1, group=lambda item: item[0])
    data = DataArguments(dataset="countdown:3", countdown_max_number=13, countdown_target=2, countdown_problems=1141,
                         holdout=500)  # fmt: skip
    train, held, _ = data.load()
    assert len(train) + len(held) == 1141 and 500 <= len(held) <= 505
    multiset = lambda problem: tuple(sorted(problem.countdown.numbers))  # noqa: E731
    assert not {multiset(p) for p in train} & {multiset(p) for p in held}


def test_shipped_weights_are_copied_into_the_cache_not_rebuilt(tmp_path, monkeypatch):
    from rlt import models

    shipped = tmp_path / "shipped" / "countdown-tiny"
    build(TINY, shipped, progress=False)
    monkeypatch.setattr(base, "SHIPPED", tmp_path / "shipped")
    monkeypatch.setitem(base.RECIPES, "countdown-tiny", TINY)
    monkeypatch.setenv("RLT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(base, "build", lambda *args, **kwargs: pytest.fail("rebuilt"))
    path = models.resolve("countdown-tiny")
    assert path == str(tmp_path / "cache" / "countdown-tiny")
    copied = tmp_path / "cache" / "countdown-tiny" / "model.safetensors"
    assert copied.read_bytes() == (shipped / "model.safetensors").read_bytes()
    # weights shipped for another recipe are not served for this one: it is built
    monkeypatch.setitem(base.RECIPES, "countdown-tiny", BaseRecipe(**{**TINY.__dict__, "seed": 5}))
    with pytest.raises(pytest.fail.Exception, match="rebuilt"):
        models.resolve("countdown-tiny")


def test_the_shipped_base_is_the_default_recipes_build_and_small():
    shipped = base.SHIPPED / "countdown-tiny"
    record = json.loads((shipped / "build.json").read_text())
    # the default recipe (RECIPES' own, which the module's `world` fixture replaces while it lives): else it rebuilds
    assert record["recipe"] == json.loads(BaseRecipe().identity)
    assert record["fact_accuracy"] == {"first": 1.0, "deeper": 1.0} and record["copy_accuracy"]["after the world"] > 0.9
    assert sum(f.stat().st_size for f in shipped.iterdir()) < 10 * 2**20  # the 10 MB for shipped weights
    weights = load_file(shipped / "model.safetensors")
    assert sum(w.numel() for w in weights.values()) == record["parameters"] == 773_632
