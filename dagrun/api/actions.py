"""Actions: they run a job and bring a result back to the driver (or write output).

Each action sends a per-partition function to the executors and combines the partial
results on the driver, as PySpark does, so the answers (and the errors on empty RDDs)
are PySpark's.
"""

from __future__ import annotations

import builtins
import copy
import heapq
import itertools
import operator
from collections import defaultdict
from functools import reduce as _reduce
from typing import TYPE_CHECKING, Any, Callable, Iterator

from dagrun.api.statcounter import StatCounter
from dagrun.graph.nodes import TextFileNode

if TYPE_CHECKING:
    from dagrun.api.rdd import RDD


def run_partitions(rdd: "RDD", func: Callable[[Iterator], Any], partitions: list[int] | None = None) -> list:
    return rdd.ctx.run_job(rdd, lambda tc, it: func(it), partitions)


def reduced_partitions(rdd: "RDD", func: Callable[[Iterator], Any]) -> list:
    """``run_partitions`` for an action that PySpark ends with ``reduce``: an RDD with no
    partition at all (``empty_rdd()``) raises ValueError there, as it does in PySpark."""
    parts = run_partitions(rdd, func)
    if not parts:
        raise ValueError("Can not reduce() empty RDD")
    return parts


def collect(rdd: "RDD") -> list:
    """Every element, in partition order."""
    return list(itertools.chain.from_iterable(run_partitions(rdd, list)))


def collect_as_map(rdd: "RDD") -> dict:
    return dict(rdd.collect())


def count(rdd: "RDD") -> int:
    if type(rdd._node) is TextFileNode and not rdd.is_cached:
        # fast path: count newline bytes instead of decoding lines
        return builtins.sum(rdd.ctx.run_job(rdd, None, count_lines=True))
    return builtins.sum(run_partitions(rdd, _count_iter))


def count_by_key(rdd: "RDD") -> dict:
    return rdd.map(lambda kv: kv[0]).count_by_value()


def count_by_value(rdd: "RDD") -> dict:
    def count_partition(it: Iterator) -> dict:
        counts: dict = defaultdict(int)
        for x in it:
            counts[x] += 1
        return counts

    total: dict = defaultdict(int)
    for part in reduced_partitions(rdd, count_partition):
        for k, v in part.items():
            total[k] += v
    return total


def take(rdd: "RDD", num: int) -> list:
    """The first ``num`` elements, scanning as few partitions as it can (PySpark's rule)."""
    try:  # refused here, as PySpark's driver does, not in a task; a numpy integer is an int
        num = operator.index(num)
    except TypeError:
        raise TypeError(f"take() needs an int count of elements, got {num!r}") from None
    items: list = []
    total = rdd.get_num_partitions()
    scanned = 0
    while len(items) < num and scanned < total:
        parts = 1
        if scanned > 0:
            parts = scanned * 4 if not items else builtins.max(1, int(1.5 * num * scanned / len(items)) - scanned)
            parts = builtins.min(builtins.max(parts, 1), scanned * 4)
        left = num - len(items)
        chunk = list(range(scanned, builtins.min(scanned + parts, total)))
        for result in run_partitions(rdd, lambda it: list(itertools.islice(it, left)), chunk):
            items.extend(result)
        scanned += len(chunk)
    return items[:num]


def first(rdd: "RDD") -> Any:
    items = rdd.take(1)
    if not items:
        raise ValueError("RDD is empty")
    return items[0]


def is_empty(rdd: "RDD") -> bool:
    return rdd.get_num_partitions() == 0 or len(rdd.take(1)) == 0


def take_ordered(rdd: "RDD", num: int, key: Callable | None = None) -> list:
    """The ``num`` smallest elements (by ``key``), ascending."""
    if num < 0:
        raise ValueError("top N cannot be negative.")
    parts = run_partitions(rdd, lambda it: heapq.nsmallest(num, it, key=key))
    return heapq.nsmallest(num, itertools.chain.from_iterable(parts), key=key)


def top(rdd: "RDD", num: int, key: Callable | None = None) -> list:
    """The ``num`` largest elements (by ``key``), descending."""
    parts = reduced_partitions(rdd, lambda it: heapq.nlargest(num, it, key=key))
    return heapq.nlargest(num, itertools.chain.from_iterable(parts), key=key)


def reduce(rdd: "RDD", f: Callable[[Any, Any], Any]) -> Any:
    """Reduce with an associative, commutative ``f``; an empty RDD raises ValueError."""
    def partial(it: Iterator) -> list:
        it = iter(it)
        try:
            first = next(it)
        except StopIteration:
            return []
        return [_reduce(f, it, first)]

    values = [v for part in run_partitions(rdd, partial) for v in part]
    if not values:
        raise ValueError("Can not reduce() empty RDD")
    return _reduce(f, values)


def fold(rdd: "RDD", zero_value: Any, op: Callable[[Any, Any], Any]) -> Any:
    parts = run_partitions(rdd, lambda it: _reduce(op, it, copy.deepcopy(zero_value)))
    return _reduce(op, parts, zero_value)


def aggregate(rdd: "RDD", zero_value: Any, seq_op: Callable, comb_op: Callable) -> Any:
    parts = run_partitions(rdd, lambda it: _reduce(seq_op, it, copy.deepcopy(zero_value)))
    return _reduce(comb_op, parts, zero_value)


def sum(rdd: "RDD") -> Any:
    return builtins.sum(run_partitions(rdd, lambda it: builtins.sum(it)), 0)


def max(rdd: "RDD", key: Callable | None = None) -> Any:
    return rdd.reduce(lambda a, b: builtins.max(a, b, key=key) if key else builtins.max(a, b))


def min(rdd: "RDD", key: Callable | None = None) -> Any:
    return rdd.reduce(lambda a, b: builtins.min(a, b, key=key) if key else builtins.min(a, b))


def stats(rdd: "RDD") -> StatCounter:
    return _reduce(lambda a, b: a.merge_stats(b), reduced_partitions(rdd, StatCounter), StatCounter())


def mean(rdd: "RDD") -> float:
    return rdd.stats().mean()


def variance(rdd: "RDD") -> float:
    return rdd.stats().variance()


def stdev(rdd: "RDD") -> float:
    return rdd.stats().stdev()


def sample_variance(rdd: "RDD") -> float:
    return rdd.stats().sample_variance()


def sample_stdev(rdd: "RDD") -> float:
    return rdd.stats().sample_stdev()


def foreach(rdd: "RDD", f: Callable[[Any], Any]) -> None:
    def apply(it: Iterator) -> None:
        for x in it:
            f(x)

    run_partitions(rdd, apply)


def foreach_partition(rdd: "RDD", f: Callable[[Iterator], Any]) -> None:
    run_partitions(rdd, lambda it: (f(it), None)[1])


def lookup(rdd: "RDD", key: Any) -> list:
    """Every value for ``key``; with a known partitioner only its partition is read."""
    values = rdd.filter(lambda kv: kv[0] == key).values()
    if rdd.partitioner is not None and hasattr(rdd.partitioner, "num_partitions"):
        return values.ctx.run_job(values, lambda tc, it: list(it), [rdd.partitioner(key)])[0]
    return values.collect()


def reduce_by_key_locally(rdd: "RDD", func: Callable[[Any, Any], Any]) -> dict:
    def partial(it: Iterator) -> dict:
        out: dict = {}
        for k, v in it:
            out[k] = func(out[k], v) if k in out else v
        return out

    merged: dict = {}
    for part in reduced_partitions(rdd, partial):
        for k, v in part.items():
            merged[k] = func(merged[k], v) if k in merged else v
    return merged


def save_as_text_file(rdd: "RDD", path: str, compression: str | None = None) -> None:
    """Write one ``part-NNNNN`` file per partition (``str`` of each element per line),
    then ``_SUCCESS``.  Only the first committed attempt of each partition is kept."""
    from dagrun.api.output import save_as_text_file

    save_as_text_file(rdd, path, compression)


def save_as_pickle_file(rdd: "RDD", path: str, batch_size: int = 10) -> None:
    """Write the elements as PySpark does: pickled lists of ``batch_size`` (0: growing batches,
    as PySpark's AutoBatchedSerializer) in a Hadoop sequence file per partition, which
    ``pickle_file`` here or in PySpark reads back (committed like ``save_as_text_file``)."""
    from dagrun.api.output import save_parts
    from dagrun.graph.sequence_source import write_pickle_file

    if batch_size < 0:
        raise ValueError(f"batch_size must be 0 (automatic) or more, got {batch_size}")
    save_parts(rdd, path, lambda f, it: write_pickle_file(f, it, batch_size))


def save_as_sequence_file(rdd: "RDD", path: str, compression: str | None = None) -> None:
    """Write (key, value) pairs as Hadoop sequence files, one per partition, their Writable
    classes those of the first pair (``dagrun.runtime.writables``), as PySpark's
    ``saveAsSequenceFile``; ``compression`` is a Hadoop codec class (``DefaultCodec``,
    ``GzipCodec``, ``BZip2Codec``, ``ZStandardCodec``, short or in full), block-compressed as
    Spark writes it.

    >>> ctx.parallelize([("a", 1), ("b", 2)]).save_as_sequence_file("/tmp/counts")  # doctest: +SKIP
    """
    save_sequence_files(rdd, path, compression)


def save_sequence_files(rdd: "RDD", path: str, compression: str | None, key_class: str | None = None,
                        value_class: str | None = None) -> None:
    """``save_as_sequence_file``, with the file's Writable classes given (PySpark's
    ``saveAsHadoopFile``) or, when None, those of the first pair."""
    from dagrun.api.output import save_parts
    from dagrun.graph.sequence_source import pair_of, write_sequence_file
    from dagrun.runtime.sequence_files import CODEC_NAMES
    from dagrun.runtime.writables import writable_of

    codec = CODEC_NAMES.get(compression.rsplit(".", 1)[-1]) if compression else None
    if compression and codec is None:
        raise ValueError(f"compression={compression!r} is not a codec sequence files can use here; "
                         f"use one of {', '.join(CODEC_NAMES)}")
    if key_class is None or value_class is None:
        key, value = pair_of(rdd.first())  # PySpark takes the classes from the first pair too
        key_class, value_class = key_class or writable_of(key, "key"), value_class or writable_of(value, "value")
    save_parts(rdd, path, lambda f, it: write_sequence_file(f, it, key_class, value_class, codec))


def _count_iter(it: Iterator) -> int:
    n = 0
    for _ in it:
        n += 1
    return n

