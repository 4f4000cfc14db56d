"""``StatCounter``: count, mean and variance in one pass, mergeable across partitions.

PySpark's ``pyspark/statcounter.py`` with the same arithmetic, so ``stats()`` and its
derived actions give PySpark's numbers.  It knows nothing of RDDs.
"""

from __future__ import annotations

import copy
import math
from typing import Iterable


def _maximum(a, b):
    # numpy's ``maximum``, which PySpark's StatCounter uses: a NaN on either side is the
    # answer, and an int comes back as a float (it met the float starting value)
    if a != a or b != b:
        return math.nan
    m = a if a >= b else b
    return float(m) if type(m) in (int, bool) else m


def _minimum(a, b):
    if a != a or b != b:
        return math.nan
    m = a if a <= b else b
    return float(m) if type(m) in (int, bool) else m


class StatCounter:
    """Count, mean and variance in one pass (Welford), mergeable across partitions."""

    def __init__(self, values: Iterable[float] | None = None):
        self.n, self.mu, self.m2 = 0, 0.0, 0.0
        self.max_value, self.min_value = float("-inf"), float("inf")
        for v in values or ():  # None too, as PySpark's (SPARK-38854)
            self.merge(v)

    def merge(self, value: float) -> "StatCounter":
        self.n += 1
        delta = value - self.mu
        self.mu += delta / self.n
        self.m2 += delta * (value - self.mu)
        self.max_value, self.min_value = _maximum(self.max_value, value), _minimum(self.min_value, value)
        return self

    def merge_stats(self, other: "StatCounter") -> "StatCounter":
        """Merge another counter into this one (PySpark's ``mergeStats``, same arithmetic)."""
        if other is self:
            other = copy.deepcopy(other)
        if self.n == 0:
            self.n, self.mu, self.m2 = other.n, other.mu, other.m2
            self.max_value, self.min_value = other.max_value, other.min_value
        elif other.n != 0:
            delta = other.mu - self.mu
            total = self.n + other.n
            if other.n * 10 < self.n:
                self.mu = self.mu + (delta * other.n) / total
            elif self.n * 10 < other.n:
                self.mu = other.mu - (delta * self.n) / total
            else:
                self.mu = (self.mu * self.n + other.mu * other.n) / total
            self.max_value = _maximum(self.max_value, other.max_value)
            self.min_value = _minimum(self.min_value, other.min_value)
            self.m2 += other.m2 + (delta * delta * self.n * other.n) / total
            self.n = total
        return self

    def count(self) -> int:
        return self.n

    def mean(self) -> float:
        """The mean; 0.0 for no values, as in PySpark."""
        return self.mu

    def sum(self) -> float:
        return self.n * self.mu

    def min(self) -> float:
        return self.min_value

    def max(self) -> float:
        return self.max_value

    def variance(self) -> float:
        return self.m2 / self.n if self.n else float("nan")

    def sample_variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else float("nan")

    def stdev(self) -> float:
        return math.sqrt(self.variance())

    def sample_stdev(self) -> float:
        return math.sqrt(self.sample_variance())

    def as_dict(self, sample: bool = False) -> dict[str, float]:
        """The members as a dict, exactly as PySpark's ``asDict``: note that PySpark reports the
        *sample* stdev and variance when ``sample`` is False, and the population ones when True.

        >>> StatCounter([1., 2., 3., 4.]).as_dict()["variance"]
        1.6666666666666667
        """
        return {
            "count": self.count(),
            "mean": self.mean(),
            "sum": self.sum(),
            "min": self.min(),
            "max": self.max(),
            "stdev": self.stdev() if sample else self.sample_stdev(),
            "variance": self.variance() if sample else self.sample_variance(),
        }

    def copy(self) -> "StatCounter":
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        return f"(count: {self.n}, mean: {self.mean()}, stdev: {self.stdev()}, max: {self.max_value}, min: {self.min_value})"

    # PySpark's names for the same methods (``rdd.stats()`` returns this class to PySpark scripts too)
    mergeStats = merge_stats
    sampleVariance = sample_variance
    sampleStdev = sample_stdev
    asDict = as_dict
