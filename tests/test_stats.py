"""Intervals that never average a missing value in, and the two-level bootstrap over problems and seeds."""

import math

import pytest

from rlt.measure.stats import bootstrap, ci, paired, seeded_difference


def test_bootstrap_drops_missing_values_and_counts_them():
    # the review: one NaN turned a summary into mean nan with an interval [nan, -1.4]
    stat = bootstrap([-1.0, math.nan, -2.0, None, -3.0], resamples=500)
    assert stat["mean"] == pytest.approx(-2.0) and stat["n"] == 3 and stat["dropped"] == 2
    assert -3.0 <= stat["low"] <= stat["mean"] <= stat["high"] <= -1.0
    assert bootstrap([math.nan, None]) is None and ci(None) == "—"
    assert ci({"mean": 0.5, "low": -0.25, "high": 1.0}, signed=True) == "+0.500 [-0.250, +1.000]"


def test_paired_uses_positions_where_both_are_present():
    first, second = [1.0, 2.0, math.nan, 4.0], [0.5, math.nan, 1.0, 5.0]
    stat = paired(first, second, resamples=200)
    assert stat["n"] == 2 and stat["dropped"] == 2 and stat["mean"] == pytest.approx(-0.25)
    assert stat["wins"] == 1
    assert paired([1.0, 2.0], [2.0, 3.0], resamples=50, lower_is_better=True)["wins"] == 2
    assert paired([math.nan], [1.0]) is None


def test_seeded_difference_widens_with_seed_noise_and_pairs_problems():
    problems = [float(i) for i in range(20)]  # a wide problem-to-problem spread, shared by both arms
    steady = [[p + 1.0 for p in problems] for _ in range(3)]
    base = [problems for _ in range(3)]
    exact = seeded_difference(steady, base, resamples=300)
    # paired by problem: the spread cancels, the difference is exactly 1 in every resample
    assert exact["mean"] == pytest.approx(1.0) and exact["low"] == pytest.approx(1.0)
    assert exact["high"] == pytest.approx(1.0) and exact["seeds"] == [3, 3] and exact["wins"] == 20
    noisy = [[p + shift for p in problems] for shift in (-1.0, 1.0, 3.0)]  # the same mean gain, from seed noise
    wide = seeded_difference(noisy, base, resamples=300)
    assert wide["mean"] == pytest.approx(1.0) and wide["low"] < 0.0 < 1.5 < wide["high"]
    # a problem no seed of an arm could measure is dropped, not averaged in
    holes = [[math.nan, *run[1:]] for run in steady]
    assert seeded_difference(holes, base, resamples=50)["n"] == 19
    with pytest.raises(ValueError, match="one value per problem"):
        seeded_difference([[1.0, 2.0]], [[1.0]])


def test_seeded_difference_weighs_problems_equally_and_survives_seeds_with_holes():
    """Before: a resample whose drawn seeds all missed a drawn problem raised ZeroDivisionError, and a problem kept
    by two seeds weighed twice as much as one kept by one."""
    holes = seeded_difference([[1.0, math.nan, 0.5], [math.nan, 2.0, 0.5]], [[0.0, 0.0, 0.0]], resamples=500)
    assert holes["mean"] == pytest.approx((1.0 + 2.0 + 0.5) / 3) and holes["n"] == 3  # not (1 + .5 + 2 + .5) / 4
    assert holes["low"] < holes["mean"] < holes["high"] and holes["dropped"] == 0


def test_seeded_difference_intervals_match_known_answers():
    # seeds are the only noise: one seed solves everything, the other nothing. The mean over two seeds drawn with
    # replacement is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4, so the 95 % interval is [0, 1]
    n = 300
    split = seeded_difference([[1.0] * n, [0.0] * n], [[0.0] * n], resamples=2000)
    assert split["mean"] == 0.5 and split["low"] == 0.0 and split["high"] == 1.0
    # problems are the only noise (one seed): a share p = 0.3 of n problems, whose interval is p +- 1.96 sqrt(p(1-p)/n)
    solved = [1.0 if i % 10 < 3 else 0.0 for i in range(n)]
    one = seeded_difference([solved], [[0.0] * n], resamples=4000)
    half_width = 1.96 * (0.3 * 0.7 / n) ** 0.5
    assert one["mean"] == pytest.approx(0.3)
    assert one["low"] == pytest.approx(0.3 - half_width, abs=0.012)
    assert one["high"] == pytest.approx(0.3 + half_width, abs=0.012)
    # pooling seed x problem cells as if independent would give the problem-only width to the seed-noise case too
    assert split["high"] - split["low"] > 5 * (one["high"] - one["low"])
