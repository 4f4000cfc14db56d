"""Narrow transformations: each partition of the result depends on one partition (or a fixed
set of partitions) of its parent, so they fuse into the parent's stage.

Semantics follow PySpark's RDD API, in snake_case.
"""

from __future__ import annotations

import builtins
import operator
import random
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from dagrun.api.sampling import element_sampler
from dagrun.graph.nodes import CartesianNode, CoalescedNode, MapPartitionsNode, UnionNode

if TYPE_CHECKING:
    from dagrun.api.rdd import RDD


def _pipe(rdd: "RDD", func, preserves_partitioning: bool, op_name: str, batch_func=None) -> "RDD":
    return rdd._derive(MapPartitionsNode(rdd._node, func, preserves_partitioning, op_name, batch_func))


# The batch forms of the per-record steps (``dagrun.graph.nodes.Batched``): one comprehension per
# list.  A StopIteration that f raises inside one still fails the task: the generator around it
# turns it into a RuntimeError (PEP 479), as the record-by-record form does.


def map_partitions_with_index(rdd: "RDD", f: Callable[[int, Iterator], Iterable],
                              preserves_partitioning: bool = False) -> "RDD":
    """Return a new RDD by applying ``f(index, iterator)`` to each partition.

    >>> rdd = ctx.parallelize([1, 2, 3, 4], 4)                   # doctest: +SKIP
    >>> rdd.map_partitions_with_index(lambda i, it: [i]).sum()   # doctest: +SKIP
    6
    """
    return _pipe(rdd, f, preserves_partitioning, "map_partitions_with_index")


def map_partitions(rdd: "RDD", f: Callable[[Iterator], Iterable], preserves_partitioning: bool = False) -> "RDD":
    return _pipe(rdd, lambda _, it: f(it), preserves_partitioning, "map_partitions")


def map(rdd: "RDD", f: Callable[[Any], Any], preserves_partitioning: bool = False) -> "RDD":
    """>>> ctx.parallelize(["b", "a", "c"]).map(lambda x: (x, 1)).collect()   # doctest: +SKIP
    [('b', 1), ('a', 1), ('c', 1)]"""
    def apply(_, it):
        # a generator, not builtins.map: a StopIteration that f raises then fails the task
        # (PEP 479) instead of silently ending the partition
        for x in it:
            yield f(x)

    return _pipe(rdd, apply, preserves_partitioning, "map", lambda _, bs: ([f(x) for x in b] for b in bs))


def flat_map(rdd: "RDD", f: Callable[[Any], Iterable], preserves_partitioning: bool = False) -> "RDD":
    def flat(_, it):
        for x in it:
            yield from f(x)

    return _pipe(rdd, flat, preserves_partitioning, "flat_map")


def filter(rdd: "RDD", f: Callable[[Any], bool]) -> "RDD":
    return _pipe(rdd, lambda _, it: (x for x in it if f(x)), True, "filter",  # a generator, as in map
                 lambda _, bs: ([x for x in b if f(x)] for b in bs))


# The key-value steps index a record (kv[0], kv[1]) as PySpark does, so a longer tuple keeps
# its first two items where unpacking it would fail, and a shorter one fails with IndexError.


def map_values(rdd: "RDD", f: Callable[[Any], Any]) -> "RDD":
    return _pipe(rdd, lambda _, it: ((kv[0], f(kv[1])) for kv in it), True, "map_values",
                 lambda _, bs: ([(kv[0], f(kv[1])) for kv in b] for b in bs))


def flat_map_values(rdd: "RDD", f: Callable[[Any], Iterable]) -> "RDD":
    def flat(_, it):
        for kv in it:
            k = kv[0]
            for x in f(kv[1]):
                yield (k, x)

    return _pipe(rdd, flat, True, "flat_map_values")


def key_by(rdd: "RDD", f: Callable[[Any], Any]) -> "RDD":
    def keyed(_, it):
        # one call of f per record and no wrapper lambda; a generator for map's reason
        for x in it:
            yield (f(x), x)

    return _pipe(rdd, keyed, False, "map", lambda _, bs: ([(f(x), x) for x in b] for b in bs))


def keys(rdd: "RDD") -> "RDD":
    # itemgetter never raises StopIteration, so builtins.map keeps the loop in C
    first = operator.itemgetter(0)
    return _pipe(rdd, lambda _, it: builtins.map(first, it), False, "map",
                 lambda _, bs: (list(builtins.map(first, b)) for b in bs))


def values(rdd: "RDD") -> "RDD":
    second = operator.itemgetter(1)
    return _pipe(rdd, lambda _, it: builtins.map(second, it), False, "map",
                 lambda _, bs: (list(builtins.map(second, b)) for b in bs))


def glom(rdd: "RDD") -> "RDD":
    """Each partition as one list: ``[[1, 2], [3, 4]]``."""
    return _pipe(rdd, lambda _, it: [list(it)], False, "glom")


def sample(rdd: "RDD", with_replacement: bool, fraction: float, seed: int | None = None) -> "RDD":
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
    return _pipe(rdd, sampler, True, "sample")


def union(rdd: "RDD", other: "RDD") -> "RDD":
    return rdd._derive(UnionNode(rdd.ctx, [rdd._node, other._node]))


def __add__(rdd: "RDD", other: "RDD") -> "RDD":
    return rdd.union(other)


def coalesce(rdd: "RDD", num_partitions: int, shuffle: bool = False) -> "RDD":
    """Fewer partitions without a shuffle (adjacent partitions merge), or ``repartition``."""
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be at least 1, got {num_partitions}")
    if shuffle:
        return rdd.repartition(num_partitions)
    return rdd._derive(CoalescedNode(rdd._node, num_partitions))


def cartesian(rdd: "RDD", other: "RDD") -> "RDD":
    """Every pair ``(a, b)`` with a in rdd and b in other."""
    return rdd._derive(CartesianNode(rdd.ctx, [rdd._node, other._node]))


def zip_with_index(rdd: "RDD") -> "RDD":
    """Pair each element with its index, ordered by partition then position.

    Like PySpark, this runs a job first to count each partition (unless there is one).
    """
    starts = [0]
    if rdd.get_num_partitions() > 1:
        counts = rdd.map_partitions(lambda it: [sum(1 for _ in it)]).collect()
        for n in counts[:-1]:
            starts.append(starts[-1] + n)

    def index(i: int, it: Iterator) -> Iterator:
        return ((x, k) for k, x in enumerate(it, starts[i]))

    return rdd.map_partitions_with_index(index)


def zip_with_unique_id(rdd: "RDD") -> "RDD":
    """Pair items with ids ``k*n + i`` (i the partition) without running a job."""
    n = rdd.get_num_partitions()

    def ids(i: int, it: Iterator) -> Iterator:
        return ((x, k * n + i) for k, x in enumerate(it))

    return rdd.map_partitions_with_index(ids)
