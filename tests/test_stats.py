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
