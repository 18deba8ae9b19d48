"""Who teaches held-out problems best? Explanation sources compared problem by problem, with paired intervals.

On the same held-out problems a frozen student reads explanations from several sources: none (an empty think
section), the dataset's reference explanation, and each teacher's own samples. Every explanation is scored with the
RLT reward. Because the sources share their problems, differences are taken per problem and bootstrapped, which
removes the problem-to-problem spread that dwarfs any teacher effect at this size. The comparison that isolates RL
is the RL teacher against its own warm-up start; teachers are sampled with the same seed, so their samples share
random numbers too.

    r_SS    coefficient-weighted mean and min of the student's solution log-probs (higher: the student follows)
    KL      mean teacher − student log-prob over the explanation (lower: the student could have thought it)
    reward  r_SS − λ·r_KL, the quantity RL maximises
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from rlt.data import Problem
from rlt.generation import SamplingConfig
from rlt.reward import RewardBreakdown, RewardConfig, RLTReward
from rlt.reward_check import bootstrap, ci, completion, leaks, r_ss, references

METRICS = ("r_ss", "reward", "kl_mean", "solution_logprob_mean")


def fixed_sources(problems: Sequence[Problem], reward: RLTReward) -> dict[str, list[dict]]:
    """`none` and `reference` (the trace or worked solution, as the warm-up teaches it), scored per problem."""
    end = reward.style.explanation[1]
    texts = {"none": ["" for _ in problems], "reference": [reference for _, reference in references(problems)]}
    sources = {}
    for name, explanations in texts.items():
        rows = [{"question": p.question, "solution": p.solution, "explanation": completion(e, end)}
                for p, e in zip(problems, explanations, strict=True)]  # fmt: skip
        scored, _ = reward.score_texts(rows)
        sources[name] = [{"index": i, "explanation": e, **b.to_dict()}
                         for i, (e, b) in enumerate(zip(explanations, scored, strict=True))]  # fmt: skip
    return sources


def teacher_source(
    problems: Sequence[Problem], reward: RLTReward, path: Path, sampling: SamplingConfig, samples: int = 1
) -> list[dict]:
    """A teacher's scored samples (`samples` per problem; resumable at `path`), sorted by problem and sample."""
    from rlt.traces import collect_traces

    rows = collect_traces(list(problems), reward.teacher, reward, path, sampling, num_samples=samples)
    return sorted(rows, key=lambda r: (r["index"], r["sample"]))


def per_problem(rows: list[dict], config: RewardConfig, answers: Sequence[str | None]) -> dict[str, list[float]]:
    """Each metric averaged over a problem's samples (NaN where no sample has it: the KL of empty explanations)."""
    by_problem: dict[int, list[dict]] = {}
    for row in rows:
        by_problem.setdefault(row["index"], []).append(row)
    out: dict[str, list[float]] = {m: [] for m in (*METRICS, "leaks")}
    for index in range(len(answers)):
        group = by_problem[index]
        values = {
            "r_ss": [r_ss(RewardBreakdown.from_dict(r), config) for r in group],
            "reward": [r["reward"] for r in group],
            "kl_mean": [r["kl_mean"] for r in group if r["kl_mean"] is not None and not math.isnan(r["kl_mean"])],
            "solution_logprob_mean": [r["solution_logprob_mean"] for r in group],
            "leaks": [float(leaks(r["explanation"], answers[index])) for r in group],
        }
        for metric, found in values.items():
            out[metric].append(sum(found) / len(found) if found else math.nan)
    return out


def compare(
    sources: dict[str, list[dict]],
    problems: Sequence[Problem],
    config: RewardConfig,
    pairs: Sequence[tuple[str, str]],
    resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """Per source, each metric's mean with a 95 % interval; per pair (a, b), the paired difference a − b per metric,
    with its interval and how many problems a wins (for the KL, winning is being lower).

    `paired_without_answer` repeats each pair on the problems where neither source's explanations state the final
    answer. Under the answer framing the solution is "The answer is X.": an explanation that restates X makes it
    predictable, so a gain that vanishes there is leakage, not teaching.
    """
    answers = [p.answer for p in problems]
    values = {name: per_problem(rows, config, answers) for name, rows in sources.items()}

    def interval(xs: list[float]) -> dict | None:
        kept = [x for x in xs if not math.isnan(x)]
        return bootstrap(kept, resamples, seed) if kept else None

    def paired(a: str, b: str, keep: Sequence[bool]) -> dict:
        out = {}
        for metric in METRICS:
            diffs = [x - y for x, y, k in zip(values[a][metric], values[b][metric], keep, strict=True)
                     if k and not (math.isnan(x) or math.isnan(y))]  # fmt: skip
            sign = -1 if metric == "kl_mean" else 1
            out[metric] = {**bootstrap(diffs, resamples, seed), "n": len(diffs),
                           "wins": sum(sign * d > 0 for d in diffs)} if diffs else None  # fmt: skip
        return out

    summary = {name: {**{m: interval(v[m]) for m in METRICS}, "leakage_rate": interval(v["leaks"])["mean"]}
               for name, v in values.items()}  # fmt: skip
    every = [True] * len(problems)
    no_answer = {(a, b): [x == 0 and y == 0 for x, y in zip(values[a]["leaks"], values[b]["leaks"], strict=True)]
                 for a, b in pairs}  # fmt: skip
    return {"problems": len(problems), "sources": summary,
            "paired": {f"{a} - {b}": paired(a, b, every) for a, b in pairs},
            "paired_without_answer": {f"{a} - {b}": paired(a, b, no_answer[a, b]) for a, b in pairs},
            "per_problem": values}  # fmt: skip


def verdict(comparison: dict, better: str, worse: str) -> str:
    """Plain sentences: did `better` beat `worse` on r_SS and on the reward (paired interval above 0), and on the
    problems where neither states the final answer?"""

    def sentence(diff: dict) -> str:
        parts = []
        for metric, label in (("r_ss", "r_SS"), ("reward", "the reward")):
            d = diff[metric]
            if d is None:
                return "no problem to compare"
            word = "beat" if d["low"] > 0 else "lost to" if d["high"] < 0 else "did not separate from"
            parts.append(f"on {label} the {better} {word} the {worse}: {d['mean']:+.3f} [{d['low']:+.3f}, "
                         f"{d['high']:+.3f}], better on {d['wins']} of {d['n']} problems")  # fmt: skip
        return "; ".join(parts)

    key = f"{better} - {worse}"
    clean = comparison["paired_without_answer"][key]
    n = clean["r_ss"]["n"] if clean["r_ss"] else 0
    return (f"{sentence(comparison['paired'][key])}. On the {n} problems where neither states the final answer, "
            f"{sentence(clean)}.")  # fmt: skip


def markdown(comparison: dict) -> list[str]:
    """The comparison as two tables: per source, and per paired difference."""

    lines = ["| explanation source | r_SS | reward | KL (mean) | solution log-prob | states the answer |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, s in comparison["sources"].items():
        lines.append(f"| {name} | {ci(s['r_ss'])} | {ci(s['reward'])} | {ci(s['kl_mean'])} | "
                     f"{ci(s['solution_logprob_mean'])} | {s['leakage_rate']:.0%} |")  # fmt: skip
    lines += ["", "| paired difference (per problem) | r_SS | reward | KL (mean) | solution log-prob |",
              "|---|---|---|---|---|"]  # fmt: skip
    for key, d in comparison["paired"].items():
        lines.append(f"| {key} | " + " | ".join(ci(d[m]) for m in METRICS) + " |")
    for key, d in comparison["paired_without_answer"].items():
        n = d["r_ss"]["n"] if d["r_ss"] else 0
        lines.append(f"| {key}, neither states the answer ({n}) | " + " | ".join(ci(d[m]) for m in METRICS) + " |")
    return lines
