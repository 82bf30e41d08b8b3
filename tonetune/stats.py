"""Uncertainty for numbers a user acts on: bootstrap 95% intervals, paired differences, Wilson intervals.

Resampling is by question (an answer's metrics move together), with a fixed seed, so a report is
reproducible. A difference whose interval contains 0 is not significant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
NORMAL_QUANTILES = {0.9: 1.644854, 0.95: 1.959964, 0.99: 2.575829}


@dataclass(frozen=True)
class Estimate:
    """A value, its interval, and the count it rests on."""

    value: float
    low: float
    high: float
    n: int

    @property
    def significant(self) -> bool:
        """For a difference: the interval excludes 0."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float]:
        """JSON-friendly."""
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """``resamples`` x ``n`` indices drawn with replacement (the same draws for every metric of a run)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n)) if n else np.zeros((0, 0), int)


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap statistics (NaN-safe)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap(
    statistic: Callable[[np.ndarray], float], n: int, indices: np.ndarray | None = None
) -> Estimate:
    """``statistic(index array)`` on all ``n`` items, and its bootstrap interval over resampled items."""
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    indices = resample_indices(n) if indices is None else indices
    draws = np.array([statistic(row) for row in indices], dtype=float)
    return Estimate(float(statistic(np.arange(n))), *interval(draws), n)


def jackknife(statistic: Callable[[np.ndarray], float], n: int, level: float = LEVEL) -> Estimate:
    """``statistic`` on all ``n`` items, with a leave-one-out (jackknife) normal interval.

    For statistics that resampling with replacement would bias: a duplicated answer repeats its
    own n-grams, so bootstrapped distinct-n sits below the value on the real answers.
    """
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    value = float(statistic(np.arange(n)))
    if n < 3:
        return Estimate(value, math.nan, math.nan, n)
    leave_one_out = np.array([statistic(np.delete(np.arange(n), i)) for i in range(n)], dtype=float)
    spread = math.sqrt((n - 1) / n * float(((leave_one_out - leave_one_out.mean()) ** 2).sum()))
    z = NORMAL_QUANTILES.get(level, 1.959964)
    return Estimate(value, value - z * spread, value + z * spread, n)


def mean(values: np.ndarray, indices: np.ndarray | None = None) -> Estimate:
    """The mean (a share, for 0/1 values) with its bootstrap interval; vectorised."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    indices = resample_indices(n) if indices is None else indices
    return Estimate(float(values.mean()), *interval(values[indices].mean(axis=1)), n)


def ratio_of_means(
    numerator: np.ndarray, denominator: np.ndarray, indices: np.ndarray | None = None
) -> Estimate:
    """mean(numerator) / mean(denominator), resampling the pairs together."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    n = len(numerator)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    indices = resample_indices(n) if indices is None else indices
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = numerator[indices].mean(axis=1) / denominator[indices].mean(axis=1)
        value = numerator.mean() / denominator.mean()
    return Estimate(float(value), *interval(draws), n)


def paired_difference(a: np.ndarray, b: np.ndarray, indices: np.ndarray | None = None) -> Estimate:
    """mean(a - b) over the same questions, with its bootstrap interval."""
    return mean(np.asarray(a, float) - np.asarray(b, float), indices)


def wilson(successes: float, total: int, z: float = 1.96) -> Estimate:
    """A share with its Wilson score interval (good for small counts, as in the arena's tallies)."""
    if total == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), total)
