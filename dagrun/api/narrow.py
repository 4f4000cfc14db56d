"""Narrow transformations: each partition of the result depends on one partition (or a fixed
set of partitions) of its parent, so they fuse into the parent's stage.

Semantics follow PySpark's RDD API, in snake_case.
"""

from __future__ import annotations

import math
import operator
import random
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

if TYPE_CHECKING:
    from dagrun.graph.lineage import RDD


def _lineage():
    from dagrun.graph import lineage

    return lineage


class Transformations:
    def map_partitions_with_index(self: "RDD", f: Callable[[int, Iterator], Iterable],
                                  preserves_partitioning: bool = False) -> "RDD":
        """Return a new RDD by applying ``f(index, iterator)`` to each partition.

        >>> rdd = ctx.parallelize([1, 2, 3, 4], 4)                   # doctest: +SKIP
        >>> rdd.map_partitions_with_index(lambda i, it: [i]).sum()   # doctest: +SKIP
        6
        """
        return _lineage().MapPartitionsRDD(self, f, preserves_partitioning, "map_partitions_with_index")

    def map_partitions(self: "RDD", f: Callable[[Iterator], Iterable], preserves_partitioning: bool = False) -> "RDD":
        return _lineage().MapPartitionsRDD(self, lambda _, it: f(it), preserves_partitioning, "map_partitions")

    def map(self: "RDD", f: Callable[[Any], Any], preserves_partitioning: bool = False) -> "RDD":
        """>>> ctx.parallelize(["b", "a", "c"]).map(lambda x: (x, 1)).collect()   # doctest: +SKIP
        [('b', 1), ('a', 1), ('c', 1)]"""
        return _lineage().MapPartitionsRDD(self, lambda _, it: map(f, it), preserves_partitioning, "map")

    def flat_map(self: "RDD", f: Callable[[Any], Iterable], preserves_partitioning: bool = False) -> "RDD":
        def flat(_, it):
            for x in it:
                yield from f(x)

        return _lineage().MapPartitionsRDD(self, flat, preserves_partitioning, "flat_map")

    def filter(self: "RDD", f: Callable[[Any], bool]) -> "RDD":
        return _lineage().MapPartitionsRDD(self, lambda _, it: filter(f, it), True, "filter")

    def map_values(self: "RDD", f: Callable[[Any], Any]) -> "RDD":
        return _lineage().MapPartitionsRDD(self, lambda _, it: ((k, f(v)) for k, v in it), True, "map_values")

    def flat_map_values(self: "RDD", f: Callable[[Any], Iterable]) -> "RDD":
        def flat(_, it):
            for k, v in it:
                for x in f(v):
                    yield (k, x)

        return _lineage().MapPartitionsRDD(self, flat, True, "flat_map_values")

    def key_by(self: "RDD", f: Callable[[Any], Any]) -> "RDD":
        return self.map(lambda x: (f(x), x))

    def keys(self: "RDD") -> "RDD":
        return self.map(operator.itemgetter(0))

    def values(self: "RDD") -> "RDD":
        return self.map(operator.itemgetter(1))

    def glom(self: "RDD") -> "RDD":
        """Each partition as one list: ``[[1, 2], [3, 4]]``."""
        return _lineage().MapPartitionsRDD(self, lambda _, it: [list(it)], False, "glom")

    def sample(self: "RDD", with_replacement: bool, fraction: float, seed: int | None = None) -> "RDD":
        """A random sample: Bernoulli without replacement, Poisson with replacement.

        The generator is PySpark's (``pyspark.rddsampler.RDDSampler``): partition ``i`` draws
        from ``random.Random(seed ^ i)``, so a given seed picks the same elements as PySpark
        for the same partitioning.

        >>> 6 <= ctx.parallelize(range(100), 4).sample(False, 0.1, 81).count() <= 14   # doctest: +SKIP
        True
        """
        if fraction < 0:
            raise ValueError(f"fraction must be >= 0, got {fraction}")
        if seed is None:
            seed = random.randint(0, sys.maxsize)

        sampler = element_sampler(seed, with_replacement, lambda _x: fraction)
        return _lineage().MapPartitionsRDD(self, sampler, True, "sample")

    def union(self: "RDD", other: "RDD") -> "RDD":
        return _lineage().UnionRDD(self.ctx, [self, other])

    def __add__(self: "RDD", other: "RDD") -> "RDD":
        return self.union(other)

    def coalesce(self: "RDD", num_partitions: int, shuffle: bool = False) -> "RDD":
        """Fewer partitions without a shuffle (adjacent partitions merge), or ``repartition``."""
        if num_partitions < 1:
            raise ValueError(f"num_partitions must be at least 1, got {num_partitions}")
        if shuffle:
            return self.repartition(num_partitions)
        return _lineage().CoalescedRDD(self, num_partitions)

    def cartesian(self: "RDD", other: "RDD") -> "RDD":
        """Every pair ``(a, b)`` with a in self and b in other."""
        return _lineage().CartesianRDD(self.ctx, [self, other])

    def zip_with_index(self: "RDD") -> "RDD":
        """Pair each element with its index, ordered by partition then position.

        Like PySpark, this runs a job first to count each partition (unless there is one).
        """
        starts = [0]
        if self.get_num_partitions() > 1:
            counts = self.map_partitions(lambda it: [sum(1 for _ in it)]).collect()
            for n in counts[:-1]:
                starts.append(starts[-1] + n)

        def index(i: int, it: Iterator) -> Iterator:
            return ((x, k) for k, x in enumerate(it, starts[i]))

        return self.map_partitions_with_index(index)

    def zip_with_unique_id(self: "RDD") -> "RDD":
        """Pair items with ids ``k*n + i`` (i the partition) without running a job."""
        n = self.get_num_partitions()

        def ids(i: int, it: Iterator) -> Iterator:
            return ((x, k * n + i) for k, x in enumerate(it))

        return self.map_partitions_with_index(ids)


def element_sampler(seed: int, with_replacement: bool, fraction_of: Callable[[Any], float]
                    ) -> Callable[[int, Iterator], Iterator]:
    """PySpark's ``RDDSampler`` (and ``RDDStratifiedSampler``, with a fraction per element):
    Poisson copies with replacement, a Bernoulli draw without."""
    def sample(index: int, it: Iterator) -> Iterator:
        rng = partition_rng(seed, index)
        for x in it:
            if with_replacement:
                for _ in range(_poisson(rng, fraction_of(x))):
                    yield x
            elif rng.random() < fraction_of(x):
                yield x

    return sample


def partition_rng(seed: int, index: int) -> random.Random:
    """PySpark's ``RDDSamplerBase.initRandomGenerator``: partition ``index`` draws from
    ``random.Random(seed ^ index)``, stirred because the seeds of partitions are close."""
    rng = random.Random(seed ^ index)
    for _ in range(10):
        rng.randint(0, 1)
    return rng


def _poisson(rng: random.Random, mean: float) -> int:
    """PySpark's ``RDDSamplerBase.getPoissonSample``: Knuth below a mean of 20, else summed
    exponential gaps."""
    if mean < 20.0:
        limit, k, p = math.exp(-mean), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    k, p = 0, rng.expovariate(mean)
    while p < 1.0:
        k += 1
        p += rng.expovariate(mean)
    return k
