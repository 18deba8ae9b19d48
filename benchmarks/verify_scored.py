"""Recompute every reward component of a `rlt score --details` output from its ids, spans and KL chunks alone.

Independent of rlt's batched, span-only log-prob code: one plain full-logits forward per sequence, and each KL
chunk summed token by token. Also checks that every student sequence is its tokenizer's own split of its text.

    python benchmarks/verify_scored.py runs/scored.jsonl --teacher smollm2-135m --student smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from rlt.reward import AlignedSample, RewardConfig
from rlt.reward.align import decode as spell


def reference_logprobs(model, ids: list[int], span: tuple[int, int], temperature: float) -> torch.Tensor:
    """Log-probs of ids[start:end], each from the full logits one position earlier."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[:-1] / temperature, dim=-1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    start, end = span
    return logp[start - 1 : end - 1]


def recompute(sample: AlignedSample, student, teacher, config: RewardConfig) -> tuple[dict[str, float], float]:
    """Components (NaN on empty spans) and the reward, from the sample's ids, spans and KL chunks."""
    t_s, t_t = config.student_temperature, config.teacher_temperature
    solution = reference_logprobs(student, sample.student_input_ids, sample.student_solution_span, t_s)
    student_lp = reference_logprobs(student, sample.student_input_ids, (1, len(sample.student_input_ids)), t_s)
    if config.teacher_entropy:
        teacher_lp = reference_logprobs(teacher, sample.teacher_input_ids, (1, len(sample.teacher_input_ids)), t_t)
    # Token i's log-prob is at i - 1 of these whole-sequence vectors; each chunk is summed token by token.

    def total(logprobs: torch.Tensor, tokens: tuple[int, int]) -> float:
        return sum(logprobs[i - 1].item() for i in range(*tokens))

    kl = torch.tensor(
        [(total(teacher_lp, t) if config.teacher_entropy else 0.0) - total(student_lp, s) for t, s in sample.kl_chunks]
    )
    if config.schulman_kl:
        kl = kl - 1 + torch.exp(-kl)
    values = {
        "solution_logprob_mean": solution.mean().item() if len(solution) else math.nan,
        "solution_logprob_min": solution.min().item() if len(solution) else math.nan,
        "kl_mean": kl.mean().item() if len(kl) else math.nan,
        "kl_max": kl.max().item() if len(kl) else math.nan,
    }
    miss = config.missing_end_tag_penalty

    def filled(name: str, fill: float) -> float:
        return fill if math.isnan(values[name]) else values[name]

    (a_mean, a_min), (b_mean, b_max) = config.solution_coeffs, config.kl_coeffs
    reward = (
        a_mean * filled("solution_logprob_mean", miss)
        + a_min * filled("solution_logprob_min", miss)
        - b_mean * filled("kl_mean", -miss)
        - b_max * filled("kl_max", -miss)
        + (0.0 if sample.matched else miss)
    )
    return values, reward


def max_deviation(record: dict, student, teacher, config: RewardConfig) -> float:
    sample = AlignedSample(**{name: record[name] for name in AlignedSample.__dataclass_fields__ if name in record})
    values, reward = recompute(sample, student, teacher, config)
    deviations = [abs(record["reward"] - reward)]
    for name, value in values.items():
        if math.isnan(value) != (record[name] is None):
            return math.inf
        if record[name] is not None:
            deviations.append(abs(record[name] - value))
    return max(deviations)


def text_checks(record: dict, teacher_tokenizer, student_tokenizer) -> tuple[bool, bool]:
    """(the student ids are the student tokenizer's own split of their decoded text, every KL chunk spells the
    same text on both sides)."""

    ids = record["student_input_ids"]
    natural = student_tokenizer(spell(student_tokenizer, ids), add_special_tokens=False)["input_ids"] == ids
    chunks_agree = all(
        spell(teacher_tokenizer, record["teacher_input_ids"][slice(*t)]) == spell(student_tokenizer, ids[slice(*s)])
        for t, s in record["kl_chunks"]
    )
    return natural, chunks_agree


def main() -> None:
    from rlt.models import load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scored")
    parser.add_argument("--teacher", default="smollm2-135m")
    parser.add_argument("--student", default="smollm2-135m")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    student, student_tokenizer = load_model(args.student)
    teacher, teacher_tokenizer = (
        (student, student_tokenizer) if args.teacher == args.student else load_model(args.teacher)
    )
    records = [json.loads(line) for line in Path(args.scored).read_text(encoding="utf-8").splitlines()]
    worst = [max_deviation(r, student, teacher, RewardConfig()) for r in records]
    checks = [text_checks(r, teacher_tokenizer, student_tokenizer) for r in records]
    summary = {
        "rows": len(records),
        "max_abs_deviation": max(worst),
        "tolerance": args.tolerance,
        "rows_not_naturally_tokenised": sum(not natural for natural, _ in checks),
        "rows_with_chunks_spelling_different_text": sum(not agree for _, agree in checks),
    }
    print(json.dumps(summary))
    if (
        max(worst) > args.tolerance
        or summary["rows_not_naturally_tokenised"]
        or summary["rows_with_chunks_spelling_different_text"]
    ):
        raise SystemExit(f"{sum(w > args.tolerance for w in worst)} rows deviate by more than {args.tolerance}; "
                         f"text checks: {summary}")  # fmt: skip


if __name__ == "__main__":
    main()
