"""The intervals every report number carries: coverage, pairing, and the statistics bootstrap would bias."""

from __future__ import annotations

import numpy as np

from tonetune import stats
from tonetune.evaluation.metrics import distinct_n


def test_bootstrap_interval_of_a_share_covers_the_truth_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):
        sample = (rng.random(60) < 0.3).astype(float)
        estimate = stats.mean(sample, stats.resample_indices(60, resamples=500, seed=trial))
        covered += estimate.low <= 0.3 <= estimate.high
    assert 0.88 <= covered / 200 <= 0.99


def test_paired_difference_sees_a_small_shift_that_unpaired_intervals_overlap() -> None:
    rng = np.random.default_rng(2)
    question_difficulty = rng.normal(0, 1, 48)
    a = question_difficulty + 0.3 + rng.normal(0, 0.1, 48)
    b = question_difficulty + rng.normal(0, 0.1, 48)
    alone_a, alone_b = stats.mean(a), stats.mean(b)
    assert alone_a.low < alone_b.high  # each on its own: overlapping intervals
    difference = stats.paired_difference(a, b)
    assert difference.significant and 0.2 < difference.value < 0.4 and difference.n == 48


def test_identical_contestants_differ_by_an_interval_around_zero() -> None:
    a = np.random.default_rng(3).random(30)
    difference = stats.paired_difference(a, a.copy())
    assert (difference.value, difference.low, difference.high) == (0.0, 0.0, 0.0)
    assert not difference.significant


def test_wilson_interval_stays_inside_0_1_and_narrows_with_the_count() -> None:
    few, many = stats.wilson(1, 1), stats.wilson(100, 100)
    assert few.value == 1.0 and 0.0 < few.low < 0.3 and few.high == 1.0
    assert many.low > 0.95
    assert stats.wilson(0, 0).n == 0


def test_distinct_n_interval_contains_its_value_where_a_bootstrap_would_not() -> None:
    rng = np.random.default_rng(4)
    words = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(words, 12)) for _ in range(48)]
    statistic = lambda idx: distinct_n([texts[i] for i in idx], 2)  # noqa: E731
    biased = stats.bootstrap(statistic, len(texts), stats.resample_indices(len(texts), 300))
    assert biased.high < biased.value  # duplicated answers repeat their n-grams: the whole interval below
    fair = stats.jackknife(statistic, len(texts))
    assert fair.low <= fair.value <= fair.high and fair.n == 48
    assert fair.high - fair.low < 0.05
