"""Intervals for the measures: percentile bootstrap over problems, paired differences, and the two-level bootstrap
over problems and training seeds that a distillation comparison needs.

Missing values (NaN or None: a sample that could not be scored, a problem with no scored sample) are never averaged
in: they are dropped and counted (`dropped`), so a summary says how many values it rests on (`n`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def present(value: float | None) -> bool:
    """Whether a value is there to be averaged: not None, not NaN."""
    return value is not None and not math.isnan(value)


def bootstrap(values: Sequence[float | None], resamples: int = 2000, seed: int = 0) -> dict[str, float] | None:
    """Mean with a 95 % percentile-bootstrap interval over the present values; `n` of them, `dropped` missing ones.
    None when no value is present."""
    kept = [v for v in values if present(v)]
    if not kept:
        return None
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(kept, k=len(kept))) / len(kept) for _ in range(resamples))
    low, high = means[int(0.025 * resamples)], means[int(0.975 * resamples)]
    return {"mean": sum(kept) / len(kept), "low": low, "high": high, "n": len(kept), "dropped": len(values) - len(kept)}


def paired(
    first: Sequence[float | None],
    second: Sequence[float | None],
    resamples: int = 2000,
    seed: int = 0,
    lower_is_better: bool = False,
) -> dict | None:
    """first − second per position where both are present, bootstrapped; `wins`: positions where the first is
    better. None when no position has both."""
    diffs = [a - b if present(a) and present(b) else None for a, b in zip(first, second, strict=True)]
    stat = bootstrap(diffs, resamples, seed)
    if stat is not None:
        sign = -1 if lower_is_better else 1
        stat["wins"] = sum(sign * d > 0 for d in diffs if d is not None)
    return stat


def ci(stat: dict | None, signed: bool = False) -> str:
    """A `bootstrap` result as "mean [low, high]", or a dash for a statistic with no values."""
    if stat is None:
        return "—"
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(stat['mean'])} [{f.format(stat['low'])}, {f.format(stat['high'])}]"


def seeded_difference(
    first: Sequence[Sequence[float | None]],
    second: Sequence[Sequence[float | None]],
    resamples: int = 2000,
    seed: int = 0,
) -> dict | None:
    """Mean difference between two arms of students, each arm a list of seeds and each seed a list of per-problem
    values over the same problems, with a 95 % interval whose units are the problems and each arm's seeds.

    The statistic is the mean over problems of (the arm's mean over its seeds) for the first arm minus the second:
    each problem weighs the same, however many seeds measured it. Each resample draws the problems with replacement
    (one draw for both arms: they are paired by problem) and, independently for each arm, its seeds with
    replacement, as the two-stage bootstrap of a nested design does; a drawn problem none of an arm's drawn seeds
    measured is left out of that resample. Seeds and problems are never pooled into cells, which would treat one
    student's 500 answers as 500 independent students. `wins`: problems where the first arm's seed mean is higher.
    """
    n = len(first[0]) if first else 0
    if not first or not second or any(len(run) != n for run in (*first, *second)):
        raise ValueError("every seed of both arms needs one value per problem, over the same problems")

    def seed_mean(arm: Sequence[Sequence[float | None]], seeds: Sequence[int], problem: int) -> float | None:
        values = [arm[s][problem] for s in seeds if present(arm[s][problem])]
        return sum(values) / len(values) if values else None

    def difference(seeds_a: Sequence[int], seeds_b: Sequence[int], problems: Sequence[int]) -> float | None:
        gaps = [
            (a - b)
            for i in problems
            if (a := seed_mean(first, seeds_a, i)) is not None and (b := seed_mean(second, seeds_b, i)) is not None
        ]
        return sum(gaps) / len(gaps) if gaps else None

    every_a, every_b = range(len(first)), range(len(second))
    problems = [i for i in range(n) if seed_mean(first, every_a, i) is not None
                and seed_mean(second, every_b, i) is not None]  # fmt: skip
    if not problems:
        return None
    rng = random.Random(seed)
    stats = []
    for _ in range(resamples):
        drawn = rng.choices(problems, k=len(problems))
        stat = difference(rng.choices(every_a, k=len(first)), rng.choices(every_b, k=len(second)), drawn)
        if stat is not None:
            stats.append(stat)
    stats.sort()
    per_problem = [seed_mean(first, every_a, i) - seed_mean(second, every_b, i) for i in problems]
    return {
        "mean": sum(per_problem) / len(per_problem),
        "low": stats[int(0.025 * len(stats))],
        "high": stats[min(len(stats) - 1, int(0.975 * len(stats)))],
        "n": len(problems),
        "dropped": n - len(problems),
        "seeds": [len(first), len(second)],
        "wins": sum(d > 0 for d in per_problem),
    }
