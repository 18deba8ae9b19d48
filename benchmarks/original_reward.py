"""rlt's reward against the original implementation's, on identical texts, with SmolLM2-135M as teacher and student.

The original is SakanaAI/RLT's `trainers/teacher_rewards.py::TeacherKLBasedReward` (spec §2). It is imported at run
time from a checkout the user names (nothing of it is copied here) and fed the columns its data pipeline builds
(spec §1.5), with the RL run's settings: coefficients [1, 0.01] / [3, 0.03], reductions [mean, min] / [mean, max],
no normalisation, student and teacher temperature 0.7, missing-tag penalty -1, teacher entropy included.

Both implementations see the same strings: the teacher prompt is `rlt.reward.formats.teacher_prompt` (ending after the
opening explanation tag and its padding), the completion is the row's explanation (ending with the closing tag),
the student system prompt is rlt's, and the original's tagged solution is rlt's `solution_block`, so its student
chat equals `rlt.reward.formats.student_text`. Per row the script records both sets of components, checks that the texts
and token ids agree, shows which characters only one side scores, and splits each component's difference into a
span effect (the original's own per-token log-probs reduced over the characters rlt scores instead of its own) and
a residual (the rest: how each side tokenises the sequences, batching, float rounding).

The original module needs only torch, numpy and transformers; what it cannot have is `trainers/__init__.py`, which
imports its GRPO trainer (trl, vllm, deepspeed), so the package is bypassed rather than stubbed. Its trainer
callbacks (temperature, logging) come from a small stand-in subclass of its own `TeacherTrainer`.

Framings: `rationale` (solution = the GSM8K rationale ending in "The answer is N.", explanation = the rationale)
and `answer` (solution = "The answer is N.", explanation = the rationale).

    git --git-dir=<bare clone of SakanaAI/RLT> archive HEAD | tar -x -C /work/sakana-rlt   # once
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \\
        .venv/bin/python benchmarks/original_reward.py --original /work/sakana-rlt --framing rationale --n 32 \\
            --out benchmarks/results/original_reward_rationale.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import types
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from gsm8k_rows import gsm8k_rows  # sibling script: run as `python benchmarks/original_reward.py`

from rlt.models import load_model
from rlt.reward import RewardConfig, RLTReward
from rlt.reward.formats import (
    PADDING,
    STRATOS,
    parse_explanation,
    solution_block,
    student_system_prompt,
    student_text,
    teacher_prompt,
)

Span = tuple[int, int]  # [start, end): token indices, or characters
GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"
COMPONENTS = ("reward", "solution_logprob_mean", "solution_logprob_min", "kl_mean", "kl_max")
# The original's logged names for the same components (its reduction names, spec §2.7).
ORIGINAL_NAMES = {
    "reward": "total_teacher_likelihood_reward",
    "solution_logprob_mean": "answer_log_prob_mean",
    "solution_logprob_min": "answer_log_prob_min",
    "kl_mean": "reasoning_kl_mean",
    "kl_max": "reasoning_kl_max",
}
# cfgs/run_cfg/teacher_rlt.yaml on top of cfgs/trainer_cfg/reward_cfg/teacher_logprob_kl.yaml.
ORIGINAL_SETTINGS: dict[str, Any] = {
    "answer_log_prob_coeff": [1, 0.01],
    "kl_penalty_reward_coeff": [3, 0.03],
    "normalize_log_prob_fn": None,
    "clip_log_prob": 100000,
    "normalize_kl_fn": None,
    "clip_kl": 100000,
    "reduction_log_prob_fn": ["mean", "min"],
    "reduction_kl_fn": ["mean", "max"],
    "use_schulman_kl_estimation": False,
    "not_matched_penalty": -1.0,
    "unbias_teacher_log_probs": True,
    "unbias_student_log_probs_temp": 0.7,
    "include_teacher_think_entropy": True,
}
TEACHER_TEMPERATURE = 0.7  # the GRPO sampling temperature, which the original reads off its trainer


# --------------------------------------------------------------------------------------- the original, plumbed in


def import_original(root: Path) -> types.ModuleType:
    """`trainers.teacher_rewards` from a SakanaAI/RLT checkout, without running `trainers/__init__.py`.

    That `__init__` imports the GRPO trainer (trl, vllm, deepspeed); the reward module itself needs only torch,
    numpy and transformers. A bare package object pointing at the folder lets its relative imports resolve.
    """
    folder = root / "trainers"
    if not (folder / "teacher_rewards.py").is_file():
        raise SystemExit(f"{folder / 'teacher_rewards.py'} not found; pass --original <SakanaAI/RLT checkout>")
    package = types.ModuleType("_sakana_trainers")
    package.__path__ = [str(folder)]
    sys.modules[package.__name__] = package
    return importlib.import_module(f"{package.__name__}.teacher_rewards")


def original_reward(module: types.ModuleType, model: torch.nn.Module, tokenizer) -> Any:
    """The original reward class linked to a stand-in trainer that offers what the reward calls back into."""

    class StandInTrainer(module.TeacherTrainer):
        def __init__(self, reward: Any):
            self.gen_temperature = TEACHER_TEMPERATURE
            self.accelerator = SimpleNamespace(is_main_process=True)
            self.state = SimpleNamespace(global_step=0)
            self._metrics: dict[str, list[float]] = defaultdict(list)
            super().__init__(model, model, tokenizer, reward_functions=[reward], output_dir=None)

        def _print_debugging_logs(self, to_print: str) -> None:
            pass

    reward = module.TeacherKLBasedReward(
        student_model=model, teacher_model=model, tokenizer=tokenizer, **ORIGINAL_SETTINGS
    )
    StandInTrainer(reward)
    return reward


def original_columns(tokenizer, row: dict) -> dict[str, list[str]]:
    """One row as the original's data pipeline hands it to the reward (spec §1.5), batch of one."""
    (think_open, think_close), (sol_open, sol_close), (exp_open, exp_close) = (
        STRATOS.thought,
        STRATOS.solution,
        STRATOS.explanation,
    )
    tagged = solution_block(row["solution"], STRATOS)  # sol_open + "\n\n" + solution + "\n\n" + sol_close
    columns = {
        "prompts": teacher_prompt(tokenizer, row["question"], row["solution"]),
        "completions": row["explanation"],
        "student_system_prompts": student_system_prompt(STRATOS),
        "start_think_teacher_tags": exp_open,
        "end_think_teacher_tags": exp_close,
        "start_think_student_tags": think_open,
        "end_think_student_tags": think_close,
        "start_solution_tags": sol_open,
        "end_solution_tags": sol_close,
        "think_prefixes": "",
        "think_solution_delimiters": PADDING,
        "questions": row["question"],
        "solutions": tagged,
        "solutions_content": tagged[len(sol_open) : -len(sol_close)],
        "delimiters_padding": PADDING,
        "masked_out_think_prefix": exp_open + PADDING,
    }
    return {k: [v] for k, v in columns.items()}


def run_original(reward: Any, tokenizer, row: dict) -> dict[str, Any]:
    """The original's reward, logged components, raw log-prob tensors, texts and token spans for one row."""
    columns = original_columns(tokenizer, row)
    recorded: list[tuple] = []
    helper = reward.get_student_chats_and_relevant_num_tokens

    def recording(**kwargs: Any) -> tuple:  # keep the spans the call computes, to compare them with rlt's
        out = helper(**kwargs)
        recorded.append(out)
        return out

    reward.get_student_chats_and_relevant_num_tokens = recording
    try:
        rewards, logged, tensors = reward(**columns, return_info_dict=True, return_raw_tensors=True)
    finally:
        del reward.get_student_chats_and_relevant_num_tokens
    chats, _match, teacher_completions, teacher_expl, student_expl, student_sol = (x[0] for x in recorded[0])
    prefix = columns["masked_out_think_prefix"][0]
    return {
        "reward": rewards[0],
        "logged": logged[0],
        "tensors": tensors[0],
        "student_text": chats,
        "teacher_text": columns["prompts"][0].removesuffix(prefix) + teacher_completions,
        "spans": {"teacher_explanation": teacher_expl, "student_explanation": student_expl, "solution": student_sol},
    }


# --------------------------------------------------------------------------------------------------- comparing


def finite(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def absolute(span: Span, length: int) -> Span:
    """The original's end-relative token span as [start, end) from the front of a sequence of `length` tokens."""
    return span[0] + length, span[1] + length


def char_offsets(tokenizer, ids: list[int], text: str) -> list[Span] | None:
    """[start, end) characters of each token in `text`, by decoding growing prefixes; None if ids do not spell it.

    A token that ends inside a multi-byte character covers nothing; the token completing the character covers it.
    """
    if tokenizer.decode(ids) != text:
        return None
    offsets, end = [], 0
    for k in range(1, len(ids) + 1):
        start, end = end, max(end, len(tokenizer.decode(ids[:k]).rstrip("\ufffd")))
        offsets.append((start, end))
    return offsets


def chars_of(offsets: list[Span], tokens: Span) -> Span:
    a, b = tokens
    return (offsets[a][0], offsets[b - 1][1]) if b > a else (offsets[a][0], offsets[a][0])


def tokens_within(offsets: list[Span], chars: Span) -> list[int]:
    """Tokens whose characters all lie in `chars` (tokens covering no character excluded)."""
    return [i for i, (s, e) in enumerate(offsets) if chars[0] <= s < e <= chars[1]]


def outside(text: str, inner: Span, outer: Span) -> list[str]:
    """The text `outer` covers and `inner` does not: [before, after], empty strings where there is none."""
    return [
        text[outer[0] : max(outer[0], min(inner[0], outer[1]))],
        text[min(outer[1], max(inner[1], outer[0])) : outer[1]],
    ]


def reduced(values: torch.Tensor, extreme: str) -> tuple[float | None, float | None]:
    if values.numel() == 0:
        return None, None
    return values.mean().item(), getattr(values, extreme)().item()


def compare_row(index: int, tokenizer, row: dict, original: dict, breakdown: Any, sample: Any) -> dict[str, Any]:
    """Components side by side; where rlt's spans are known, what each side scores and a decomposition.

    span_effect: the original's own per-token log-probs reduced over the original tokens inside rlt's spans (by
    characters), minus the original's value. numeric_residual: rlt's value minus that, i.e. what is left once both
    score the same characters (tokenisation of the sequence, batching, float rounding).
    """
    logged = original["logged"]
    ours = {name: finite(getattr(breakdown, name)) for name in COMPONENTS}
    theirs = {name: finite(logged[ORIGINAL_NAMES[name]]) for name in COMPONENTS}
    out: dict[str, Any] = {
        "row": index,  # the GSM8K test row; no text of the data set is written out
        "original": {**theirs, "matched": logged["match_reward"] == 0.0},
        "rlt": {**ours, "matched": bool(breakdown.matched)},
        "diff_rlt_minus_original": {
            k: None if ours[k] is None or theirs[k] is None else ours[k] - theirs[k] for k in COMPONENTS
        },
    }
    body = parse_explanation(row["explanation"], STRATOS).text
    texts = {"student": original["student_text"], "teacher": original["teacher_text"]}
    checks: dict[str, Any] = {
        "same_student_text": texts["student"] == student_text(tokenizer, row["question"], body, row["solution"]),
        "same_teacher_text": texts["teacher"]
        == teacher_prompt(tokenizer, row["question"], row["solution"]) + row["explanation"],
    }
    out["checks"] = checks
    side = {"solution": "student", "student_explanation": "student", "teacher_explanation": "teacher"}
    ids = {k: tokenizer(t)["input_ids"] for k, t in texts.items()}  # as the original tokenises them
    spans = {k: absolute(original["spans"][k], len(ids[side[k]])) for k in side}
    fields = (
        "student_input_ids",
        "teacher_input_ids",
        "student_solution_span",
        *(f"{k}_span" for k in side if k != "solution"),
    )
    if sample is None or not all(hasattr(sample, f) for f in fields):
        return out  # rlt could not align the row, or its sample no longer exposes these fields
    rlt_ids = {"student": list(sample.student_input_ids), "teacher": list(sample.teacher_input_ids)}
    rlt_spans = {
        "solution": tuple(sample.student_solution_span),
        "student_explanation": tuple(sample.student_explanation_span),
        "teacher_explanation": tuple(sample.teacher_explanation_span),
    }
    checks["same_student_ids"] = rlt_ids["student"] == ids["student"]
    checks["same_teacher_ids"] = rlt_ids["teacher"] == ids["teacher"]
    out["tokens"] = {
        "original": {k: spans[k][1] - spans[k][0] for k in side},
        "rlt": {k: rlt_spans[k][1] - rlt_spans[k][0] for k in side},
    }
    offsets = {k: char_offsets(tokenizer, ids[k], texts[k]) for k in texts}
    rlt_offsets = {k: char_offsets(tokenizer, rlt_ids[k], texts[k]) for k in texts}
    if any(o is None for o in (*offsets.values(), *rlt_offsets.values())):
        return out
    chars = {k: chars_of(offsets[side[k]], spans[k]) for k in side}
    rlt_chars = {k: chars_of(rlt_offsets[side[k]], rlt_spans[k]) for k in side}
    out["text_only_original_scores"] = {k: outside(texts[side[k]], rlt_chars[k], chars[k]) for k in side}
    out["text_only_rlt_scores"] = {k: outside(texts[side[k]], chars[k], rlt_chars[k]) for k in side}

    # The original's own log-probs (position j predicts token j + 1) at its tokens inside rlt's spans.
    lp = {"student": original["tensors"]["student_log_probs"], "teacher": original["tensors"]["teacher_log_probs"]}

    def at(key: str) -> torch.Tensor:
        tokens = tokens_within(offsets[side[key]], rlt_chars[key])
        return lp[side[key]][[i - 1 for i in tokens]].double()

    lp_mean, lp_min = reduced(at("solution"), "min")
    teacher_expl, student_expl = at("teacher_explanation"), at("student_explanation")
    kl_mean, kl_max = (
        reduced(teacher_expl - student_expl, "max") if len(teacher_expl) == len(student_expl) else (None, None)
    )
    on_rlt_spans = {"solution_logprob_mean": lp_mean, "solution_logprob_min": lp_min, "kl_mean": kl_mean,
                    "kl_max": kl_max}  # fmt: skip
    out["original_logprobs_on_rlt_spans"] = on_rlt_spans
    out["span_effect"] = {k: None if v is None or theirs[k] is None else v - theirs[k] for k, v in on_rlt_spans.items()}
    out["numeric_residual"] = {
        k: None if v is None or ours[k] is None else ours[k] - v for k, v in on_rlt_spans.items()
    }
    return out


def summarize(rows: list[dict]) -> dict[str, Any]:
    def values(group: str, name: str) -> list[float]:
        return [r[group][name] for r in rows if r.get(group) and r[group].get(name) is not None]

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    def extent(xs: list[float]) -> list[float] | None:
        return [min(xs), max(xs)] if xs else None

    diffs = {name: values("diff_rlt_minus_original", name) for name in COMPONENTS}
    return {
        "rows": len(rows),
        "max_abs_reward_diff": max((abs(x) for x in diffs["reward"]), default=None),
        "mean_diff_rlt_minus_original": {name: mean(xs) for name, xs in diffs.items()},
        "mean_span_effect": {name: mean(values("span_effect", name)) for name in COMPONENTS[1:]},
        "numeric_residual_range": {name: extent(values("numeric_residual", name)) for name in COMPONENTS[1:]},
        "same_student_text": sum(r["checks"]["same_student_text"] for r in rows),
        "same_teacher_text": sum(r["checks"]["same_teacher_text"] for r in rows),
        "same_student_ids": sum(bool(r["checks"].get("same_student_ids")) for r in rows),
        "same_teacher_ids": sum(bool(r["checks"].get("same_teacher_ids")) for r in rows),
    }


def print_table(rows: list[dict]) -> None:
    def fmt(x: float | None) -> str:
        return f"{'-':>9}" if x is None else f"{x:>9.4f}"

    def counts(r: dict, key: str) -> str:
        tokens = r.get("tokens")
        return f"{tokens['original'][key]}/{tokens['rlt'][key]}" if tokens else "-"

    deltas = ("Δlp_mean", "Δlp_min", "Δkl_mean", "Δkl_max")
    print(f"{'row':>3} {'original':>9} {'rlt':>9} {'Δreward':>9} " + " ".join(f"{s:>9}" for s in deltas), end="")
    print("  tokens original/rlt: solution, explanation")
    for i, r in enumerate(rows):
        d = r["diff_rlt_minus_original"]
        print(
            f"{i:>3} {fmt(r['original']['reward'])} {fmt(r['rlt']['reward'])} {fmt(d['reward'])} "
            + " ".join(fmt(d[k]) for k in COMPONENTS[1:])
            + f"  {counts(r, 'solution'):>7} {counts(r, 'student_explanation'):>7}"
        )


# --------------------------------------------------------------------------------------------------------- main


def build_rows(source: Path, n: int, framing: str) -> list[dict]:
    rows = gsm8k_rows(str(source), n)
    if framing == "answer":
        rows = [{**r, "solution": f"The answer is {r['answer']}."} for r in rows]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--original", type=Path, required=True, help="a SakanaAI/RLT checkout (work tree)")
    parser.add_argument("--framing", choices=("rationale", "answer"), default="rationale")
    parser.add_argument("--n", type=int, default=32, help="GSM8K test rows")
    parser.add_argument("--data", type=Path, default=GSM8K, help="GSM8K test.jsonl")
    parser.add_argument("--model", default="smollm2-135m", help="teacher and student (one model, fp32, CPU)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out_path = args.out or Path(f"benchmarks/results/original_reward_{args.framing}.json")

    module = import_original(args.original)
    torch.manual_seed(0)
    model, tokenizer = load_model(args.model)
    model.eval()
    rows = build_rows(args.data, args.n, args.framing)

    theirs = original_reward(module, model, tokenizer)
    originals = [run_original(theirs, tokenizer, row) for row in rows]
    ours = RLTReward(model, tokenizer, teacher=model, config=RewardConfig())
    breakdowns, samples = ours.score_texts(rows)

    compared = [
        compare_row(i, tokenizer, row, o, b, s)
        for i, (row, o, b, s) in enumerate(zip(rows, originals, breakdowns, samples, strict=True))
    ]
    result = {
        "framing": args.framing,
        "model": args.model,
        "rlt_reward_module": sys.modules[RLTReward.__module__].__file__,  # which rlt was compared
        "original": str(args.original),
        "original_settings": {**ORIGINAL_SETTINGS, "teacher_temperature": TEACHER_TEMPERATURE},
        "rlt_config": asdict(RewardConfig()),
        "summary": summarize(compared),
        "rows": compared,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1) + "\n")
    print_table(compared)
    print(json.dumps(result["summary"], indent=1))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
