"""Wide transformations: each cuts a stage at a shuffle dependency.

Combiners run on the map side wherever the operation allows it (``combine_by_key`` and the
operations built on it).  Joins and cogroup tag values by side, group, and dispatch, as
PySpark does, so the shape of their output is PySpark's: ``(k, (v, w))`` with ``None`` on
the missing side of an outer join, and ``(k, (list, list))`` for ``cogroup``.
"""

from __future__ import annotations

import bisect
import copy
import functools
import itertools
import math
import random
from functools import reduce
from typing import TYPE_CHECKING, Any, Callable, Iterator

from shuffle.writer import Aggregator

from dagrun.graph.partitioners import HashPartitioner, RangePartitioner, identity as _identity, portable_hash

from dagrun.api.jvm_random import XORShiftRandom
from dagrun.graph.nodes import BinaryRecordsNode, ShuffledNode
from dagrun.graph.prefix_sort import prefix_sorted
from dagrun.runtime.prefix_sort import KeyPrefix

if TYPE_CHECKING:
    from dagrun.api.rdd import RDD


def _shuffled(rdd: "RDD", partitioner, **kwargs) -> "RDD":
    """A shuffle by ``partitioner``; none when ``rdd`` is already partitioned so (as PySpark's
    ``partitionBy`` returns the RDD itself), the aggregation then runs within each partition.
    None either when the count is dagrun's (``adaptive``) and the parent has no partition: PySpark's
    default count is then 0, so an empty RDD's ``reduce_by_key`` or ``distinct`` has no partition."""
    if kwargs.get("adaptive") and not rdd.get_num_partitions():
        return rdd
    if rdd.partitioner is not None and rdd.partitioner == partitioner and kwargs.get("sort_key") is None:
        aggregator = kwargs.get("reduce_aggregator")
        if aggregator is None:
            return rdd
        return rdd.map_partitions(functools.partial(_combine_in_partition, aggregator), preserves_partitioning=True)
    return rdd._derive(ShuffledNode(rdd._node, partitioner, **kwargs))


def _combine_in_partition(aggregator: Aggregator, it: Iterator) -> Iterator:
    combined: dict = {}
    for k, v in it:
        combined[k] = aggregator.merge_value(combined[k], v) if k in combined else aggregator.create_combiner(v)
    return iter(combined.items())


def _defaulted(rdd: "RDD", num_partitions: int | None) -> bool:
    """Whether a shuffle's partition count is dagrun's choice, so its reduce tasks may be right-sized
    (``scheduler.core.coalesce``); a count the user gave, here or as default_parallelism, is kept."""
    return not num_partitions and not rdd.ctx.config.default_parallelism


def _reduce_partitions(rdd: "RDD", num_partitions: int | None) -> int:
    if num_partitions is not None:
        if num_partitions < 1:  # PySpark makes an RDD of no partitions, and the data is gone
            raise ValueError(f"num_partitions must be at least 1 (or None for the default), got {num_partitions}")
        return num_partitions
    if rdd.ctx.config.default_parallelism:
        return rdd.ctx.config.default_parallelism
    return max(1, rdd.get_num_partitions())


def partition_by(rdd: "RDD", num_partitions: int | None = None,
                 partition_func: Callable[[Any], int] = portable_hash) -> "RDD":
    """Redistribute (k, v) pairs so that partition ``partition_func(k) % n`` holds key k."""
    partitioner = HashPartitioner(_reduce_partitions(rdd, num_partitions), partition_func)
    return _shuffled(rdd, partitioner, op_name="partition_by", adaptive=_defaulted(rdd, num_partitions))


def combine_by_key(rdd: "RDD", create_combiner: Callable, merge_value: Callable, merge_combiners: Callable,
                   num_partitions: int | None = None, partition_func: Callable = portable_hash) -> "RDD":
    """The general per-key aggregation; the others are built on it.

    >>> x = ctx.parallelize([("a", 1), ("b", 1), ("a", 2)])        # doctest: +SKIP
    >>> sorted(x.combine_by_key(str, lambda c, v: c + str(v), lambda a, b: a + b).collect())
    [('a', '12'), ('b', '1')]
    """
    aggregator = Aggregator(create_combiner, merge_value, merge_combiners)
    partitioner = HashPartitioner(_reduce_partitions(rdd, num_partitions), partition_func)
    return _shuffled(rdd, partitioner, map_side_aggregator=aggregator, reduce_aggregator=aggregator,
                     combined=True, op_name="combine_by_key", adaptive=_defaulted(rdd, num_partitions))


def reduce_by_key(rdd: "RDD", func: Callable[[Any, Any], Any], num_partitions: int | None = None,
                  partition_func: Callable = portable_hash) -> "RDD":
    """Merge the values of each key with an associative ``func``, combining on the map side."""
    rdd = rdd.combine_by_key(_identity, func, func, num_partitions, partition_func)
    rdd._node.op_name = "reduce_by_key"
    return rdd


def aggregate_by_key(rdd: "RDD", zero_value: Any, seq_func: Callable, comb_func: Callable,
                     num_partitions: int | None = None, partition_func: Callable = portable_hash) -> "RDD":
    def create(v):
        return seq_func(copy.deepcopy(zero_value), v)

    return rdd.combine_by_key(create, seq_func, comb_func, num_partitions, partition_func)


def fold_by_key(rdd: "RDD", zero_value: Any, func: Callable, num_partitions: int | None = None,
                partition_func: Callable = portable_hash) -> "RDD":
    def create(v):
        return func(copy.deepcopy(zero_value), v)

    return rdd.combine_by_key(create, func, func, num_partitions, partition_func)


def group_by_key(rdd: "RDD", num_partitions: int | None = None, partition_func: Callable = portable_hash) -> "RDD":
    """Group the values of each key into a list, in the order they were read."""
    aggregator = Aggregator(_new_list, _append, _extend)
    partitioner = HashPartitioner(_reduce_partitions(rdd, num_partitions), partition_func)
    return _shuffled(rdd, partitioner, reduce_aggregator=aggregator, combined=False, op_name="group_by_key",
                     adaptive=_defaulted(rdd, num_partitions))


def group_by(rdd: "RDD", f: Callable, num_partitions: int | None = None,
             partition_func: Callable = portable_hash) -> "RDD":
    return rdd.map(lambda x: (f(x), x)).group_by_key(num_partitions, partition_func)


def distinct(rdd: "RDD", num_partitions: int | None = None) -> "RDD":
    return rdd.map(lambda x: (x, None)).reduce_by_key(lambda x, _: x, num_partitions).map(lambda kv: kv[0])


_DEAL_BATCH = 10  # PySpark's repartition pickles batches of 10 elements: the JVM deals whole batches


def repartition(rdd: "RDD", num_partitions: int) -> "RDD":
    """Exactly ``num_partitions`` partitions, dealt through a shuffle as PySpark deals them: each
    map task deals batches of 10 elements round-robin, starting after a partition drawn by
    Spark's ``XORShiftRandom(map index)``, so the partitions are PySpark's, element for element."""
    def spread(index: int, it: Iterator) -> Iterator:
        position, records = XORShiftRandom(index).next_int(num_partitions), iter(it)
        for batch in iter(lambda: list(itertools.islice(records, _DEAL_BATCH)), []):
            position += 1
            target = position % num_partitions
            for x in batch:
                yield (target, x)

    keyed = rdd.map_partitions_with_index(spread)
    return _shuffled(keyed, HashPartitioner(num_partitions, _identity), op_name="repartition").values()


def sort_by_key(rdd: "RDD", ascending: bool = True, num_partitions: int | None = None,
                keyfunc: Callable[[Any], Any] = _identity) -> "RDD":
    """Sort (k, v) pairs by key; partitions hold contiguous key ranges from a sample.

    Like PySpark, this runs a job to sample the keys first (two, as PySpark does, when the
    partitions are small: see ``_sample_bounds``).  Equal keys keep their order.
    """
    if not rdd.get_num_partitions():
        return rdd  # PySpark's count finds no record: the RDD itself
    n = _reduce_partitions(rdd, num_partitions)
    bounds = _sample_bounds(rdd, n, keyfunc) if n > 1 else ()
    if bounds is None:  # no record: PySpark returns the RDD itself, with its partitions
        return rdd
    partitioner = RangePartitioner(tuple(bounds), ascending, keyfunc)
    return _shuffled(rdd, partitioner, sort_key=keyfunc, ascending=ascending, op_name="sort_by_key",
                     adaptive=_defaulted(rdd, num_partitions))


def sort_by(rdd: "RDD", keyfunc: Callable, ascending: bool = True, num_partitions: int | None = None) -> "RDD":
    """Sort by ``keyfunc(x)``; equal keys keep their order.

    On ``binary_records`` the records are sorted a block at a time: ``f`` runs once per
    record, and when its keys are byte prefixes (``dagrun.key_prefix(k)``, ``lambda r: r[:k]``)
    nothing else runs per record; the result is the same.
    """
    if type(rdd._node) is BinaryRecordsNode:
        return _sort_records(rdd, keyfunc, ascending, _reduce_partitions(rdd, num_partitions),
                             _defaulted(rdd, num_partitions))
    return rdd.key_by(keyfunc).sort_by_key(ascending, num_partitions).values()


def _sort_records(rdd: "RDD", keyfunc: Callable, ascending: bool, n: int, adaptive: bool) -> "RDD":
    """The block path behind ``binary_records(...).sort_by(f)`` (``dagrun.graph.prefix_sort``)."""
    if isinstance(keyfunc, KeyPrefix):
        keyfunc = KeyPrefix(min(keyfunc.length, rdd._node.record_length))
    bounds = _sample_bounds(rdd.map(lambda r: (keyfunc(r), None)), n, _identity) if n > 1 else ()
    if bounds is None:  # no record: the RDD itself, as the general path gives it
        return rdd
    return rdd._derive(prefix_sorted(rdd._node, keyfunc, tuple(bounds), ascending, adaptive))


def repartition_and_sort_within_partitions(rdd: "RDD", num_partitions: int | None = None,
                                           partition_func: Callable = portable_hash, ascending: bool = True,
                                           keyfunc: Callable = _identity) -> "RDD":
    partitioner = HashPartitioner(_reduce_partitions(rdd, num_partitions), partition_func)
    return _shuffled(rdd, partitioner, sort_key=keyfunc, ascending=ascending,
                     op_name="repartition_and_sort_within_partitions", adaptive=_defaulted(rdd, num_partitions))

# ---- joins ---------------------------------------------------------------------------


def cogroup(rdd: "RDD", other: "RDD", num_partitions: int | None = None) -> "RDD":
    """``(k, ([values in rdd], [values in other]))`` for every key of either side."""
    return rdd.group_with(other, num_partitions=num_partitions)


def group_with(rdd: "RDD", other: "RDD", *others: "RDD", num_partitions: int | None = None) -> "RDD":
    rdds = (rdd, other, *others)
    count = len(rdds)
    tagged = [r.map_values(_tagger(i)) for i, r in enumerate(rdds)]

    def dispatch(seq):
        bufs: tuple[list, ...] = tuple([] for _ in range(count))
        for i, v in seq:
            bufs[i].append(v)
        return bufs

    return reduce(lambda a, b: a.union(b), tagged).group_by_key(num_partitions).map_values(dispatch)


def _join(rdd: "RDD", other: "RDD", num_partitions: int | None, fill_left: bool, fill_right: bool) -> "RDD":
    def dispatch(seq):
        left, right = [], []
        for i, v in seq:
            (left if i == 0 else right).append(v)
        if fill_right and not right:
            right.append(None)
        if fill_left and not left:
            left.append(None)
        return [(v, w) for v in left for w in right]

    tagged = rdd.map_values(_tagger(0)).union(other.map_values(_tagger(1)))
    return tagged.group_by_key(num_partitions).flat_map_values(dispatch)


def join(rdd: "RDD", other: "RDD", num_partitions: int | None = None) -> "RDD":
    """Inner join: ``(k, (v, w))`` for every pair of values with the same key."""
    return _join(rdd, other, num_partitions, False, False)


def left_outer_join(rdd: "RDD", other: "RDD", num_partitions: int | None = None) -> "RDD":
    return _join(rdd, other, num_partitions, False, True)


def right_outer_join(rdd: "RDD", other: "RDD", num_partitions: int | None = None) -> "RDD":
    return _join(rdd, other, num_partitions, True, False)


def full_outer_join(rdd: "RDD", other: "RDD", num_partitions: int | None = None) -> "RDD":
    return _join(rdd, other, num_partitions, True, True)


def subtract_by_key(rdd: "RDD", other: "RDD", num_partitions: int | None = None) -> "RDD":
    """Pairs of rdd whose key is not in other."""
    return (rdd.cogroup(other, num_partitions)
            .filter(lambda kv: kv[1][0] and not kv[1][1])
            .flat_map_values(lambda vs: vs[0]))


def subtract(rdd: "RDD", other: "RDD", num_partitions: int | None = None) -> "RDD":
    """Elements of rdd that are not in other (duplicates in rdd are kept)."""
    return (rdd.map(lambda x: (x, True))
            .subtract_by_key(other.map(lambda x: (x, True)), num_partitions).keys())


def intersection(rdd: "RDD", other: "RDD") -> "RDD":
    """Distinct elements present in both."""
    return (rdd.map(lambda v: (v, None)).cogroup(other.map(lambda v: (v, None)))
            .filter(lambda kv: all(kv[1])).keys())


_SAMPLE_SCAN = 50_000  # records per partition read to sample range bounds


def _tagger(i: int) -> Callable[[Any], tuple]:
    return lambda v: (i, v)


def _new_list(v: Any) -> list:
    return [v]


def _append(acc: list, v: Any) -> list:
    acc.append(v)
    return acc


def _extend(a: list, b: list) -> list:
    a.extend(b)
    return a


def _sample_bounds(rdd: "RDD", n: int, keyfunc: Callable) -> list | None:
    """Range bounds for ``n`` partitions (keys through ``keyfunc``); None when there is no record.

    One job reads up to ``_SAMPLE_SCAN`` records of each partition.  When that was all of
    every partition, the bounds are PySpark's (``_pysparks_bounds``), so ``glom`` and the
    part files after a sort are PySpark's too; otherwise they come from weighted reservoir
    samples of those first records, which reads no partition twice.
    """
    partitions = max(1, rdd.get_num_partitions())
    per_partition = max(1, math.ceil(3.0 * min(20 * n, 1_000_000) / partitions))
    scan = max(_SAMPLE_SCAN, 20 * per_partition)

    def reservoir(index: int, it: Iterator) -> list:
        # Bounds only balance the partitions; they never change the answer.  So sample the
        # first records of each partition instead of reading all of it twice.
        it = itertools.islice(it, scan)
        rng = random.Random(index)
        sample: list = []
        count = 0
        for count, kv in enumerate(it, 1):
            if len(sample) < per_partition:
                sample.append(keyfunc(kv[0]))
            else:
                j = rng.randrange(count)
                if j < per_partition:
                    sample[j] = keyfunc(kv[0])
        return [(count, sample)]

    scanned = rdd.map_partitions_with_index(reservoir).collect()
    total = sum(count for count, _ in scanned)
    if not total:
        return None
    if all(count < scan for count, _ in scanned):  # every partition was read to its end
        return _pysparks_bounds(rdd, n, keyfunc, total)
    weighted = []
    for count, sample in scanned:
        if sample:
            weight = count / len(sample)  # records scanned (at most the prefix) per sampled key
            weighted.extend((key, weight) for key in sample)
    weighted.sort(key=lambda kw: kw[0])
    total_weight = sum(w for _, w in weighted)
    cumulative, acc = [], 0.0
    for _, w in weighted:
        acc += w
        cumulative.append(acc)
    bounds = []
    for i in range(1, n):
        j = min(bisect.bisect_left(cumulative, total_weight * i / n), len(weighted) - 1)
        bounds.append(weighted[j][0])
    return bounds


def _pysparks_bounds(rdd: "RDD", n: int, keyfunc: Callable, total: int) -> list:
    """PySpark's ``sortByKey`` bounds: a ``sample(False, min(20 n / count, 1), seed=1)`` of the
    keys, sorted, cut at ``len * (i + 1) / n`` (as keys through ``keyfunc``, which PySpark
    leaves out of its bounds but applies to the keys it compares with them)."""
    fraction = min(20.0 * n / total, 1.0)
    samples = sorted(rdd.sample(False, fraction, 1).map(lambda kv: keyfunc(kv[0])).collect())
    return [samples[int(len(samples) * (i + 1) / n)] for i in range(n - 1)] if samples else []
