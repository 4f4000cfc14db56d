"""Actions: they run a job and bring a result back to the driver (or write output).

Each action sends a per-partition function to the executors and combines the partial
results on the driver, as PySpark does, so the answers (and the errors on empty RDDs)
are PySpark's.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import math
from collections import defaultdict
from functools import reduce as _reduce
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

if TYPE_CHECKING:
    from dagrun.graph.lineage import RDD


class StatCounter:
    """Count, mean and variance in one pass (Welford), mergeable across partitions."""

    def __init__(self, values: Iterable[float] = ()):
        self.n, self.mu, self.m2 = 0, 0.0, 0.0
        self.max_value, self.min_value = float("-inf"), float("inf")
        for v in values:
            self.merge(v)

    def merge(self, value: float) -> "StatCounter":
        self.n += 1
        delta = value - self.mu
        self.mu += delta / self.n
        self.m2 += delta * (value - self.mu)
        self.max_value, self.min_value = max(self.max_value, value), min(self.min_value, value)
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
            self.max_value, self.min_value = max(self.max_value, other.max_value), min(self.min_value, other.min_value)
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


class Actions:
    def _run(self: "RDD", func: Callable[[Iterator], Any], partitions: list[int] | None = None) -> list:
        return self.ctx.run_job(self, lambda tc, it: func(it), partitions)

    def collect(self: "RDD") -> list:
        """Every element, in partition order."""
        return list(itertools.chain.from_iterable(self._run(list)))

    def collect_as_map(self: "RDD") -> dict:
        return dict(self.collect())

    def count(self: "RDD") -> int:
        from dagrun.graph.lineage import TextFileRDD

        if type(self) is TextFileRDD and self._cache_id is None:
            # fast path: count newline bytes instead of decoding lines
            return sum(self.ctx.run_job(self, None, count_lines=True))
        return sum(self._run(_count_iter))

    def count_by_key(self: "RDD") -> dict:
        return self.map(lambda kv: kv[0]).count_by_value()

    def count_by_value(self: "RDD") -> dict:
        def count_partition(it: Iterator) -> dict:
            counts: dict = defaultdict(int)
            for x in it:
                counts[x] += 1
            return counts

        total: dict = defaultdict(int)
        for part in self._run(count_partition):
            for k, v in part.items():
                total[k] += v
        return total

    def take(self: "RDD", num: int) -> list:
        """The first ``num`` elements, scanning as few partitions as it can (PySpark's rule)."""
        items: list = []
        total = self.get_num_partitions()
        scanned = 0
        while len(items) < num and scanned < total:
            parts = 1
            if scanned > 0:
                parts = scanned * 4 if not items else max(1, int(1.5 * num * scanned / len(items)) - scanned)
                parts = min(max(parts, 1), scanned * 4)
            left = num - len(items)
            chunk = list(range(scanned, min(scanned + parts, total)))
            for result in self._run(lambda it: list(itertools.islice(it, left)), chunk):
                items.extend(result)
            scanned += len(chunk)
        return items[:num]

    def first(self: "RDD") -> Any:
        items = self.take(1)
        if not items:
            raise ValueError("RDD is empty")
        return items[0]

    def is_empty(self: "RDD") -> bool:
        return self.get_num_partitions() == 0 or len(self.take(1)) == 0

    def take_ordered(self: "RDD", num: int, key: Callable | None = None) -> list:
        """The ``num`` smallest elements (by ``key``), ascending."""
        parts = self._run(lambda it: heapq.nsmallest(num, it, key=key))
        return heapq.nsmallest(num, itertools.chain.from_iterable(parts), key=key)

    def top(self: "RDD", num: int, key: Callable | None = None) -> list:
        """The ``num`` largest elements (by ``key``), descending."""
        parts = self._run(lambda it: heapq.nlargest(num, it, key=key))
        return heapq.nlargest(num, itertools.chain.from_iterable(parts), key=key)

    def reduce(self: "RDD", f: Callable[[Any, Any], Any]) -> Any:
        """Reduce with an associative, commutative ``f``; an empty RDD raises ValueError."""
        def partial(it: Iterator) -> list:
            it = iter(it)
            try:
                first = next(it)
            except StopIteration:
                return []
            return [_reduce(f, it, first)]

        values = [v for part in self._run(partial) for v in part]
        if not values:
            raise ValueError("Can not reduce() empty RDD")
        return _reduce(f, values)

    def fold(self: "RDD", zero_value: Any, op: Callable[[Any, Any], Any]) -> Any:
        parts = self._run(lambda it: _reduce(op, it, copy.deepcopy(zero_value)))
        return _reduce(op, parts, zero_value)

    def aggregate(self: "RDD", zero_value: Any, seq_op: Callable, comb_op: Callable) -> Any:
        parts = self._run(lambda it: _reduce(seq_op, it, copy.deepcopy(zero_value)))
        return _reduce(comb_op, parts, zero_value)

    def sum(self: "RDD") -> Any:
        return sum(self._run(lambda it: sum(it)), 0)

    def max(self: "RDD", key: Callable | None = None) -> Any:
        return self.reduce(lambda a, b: max(a, b, key=key) if key else max(a, b))

    def min(self: "RDD", key: Callable | None = None) -> Any:
        return self.reduce(lambda a, b: min(a, b, key=key) if key else min(a, b))

    def stats(self: "RDD") -> StatCounter:
        return _reduce(lambda a, b: a.merge_stats(b), self._run(StatCounter), StatCounter())

    def mean(self: "RDD") -> float:
        return self.stats().mean()

    def variance(self: "RDD") -> float:
        return self.stats().variance()

    def stdev(self: "RDD") -> float:
        return self.stats().stdev()

    def sample_variance(self: "RDD") -> float:
        return self.stats().sample_variance()

    def sample_stdev(self: "RDD") -> float:
        return self.stats().sample_stdev()

    def foreach(self: "RDD", f: Callable[[Any], Any]) -> None:
        def apply(it: Iterator) -> None:
            for x in it:
                f(x)

        self._run(apply)

    def foreach_partition(self: "RDD", f: Callable[[Iterator], Any]) -> None:
        self._run(lambda it: (f(it), None)[1])

    def lookup(self: "RDD", key: Any) -> list:
        """Every value for ``key``; with a known partitioner only its partition is read."""
        values = self.filter(lambda kv: kv[0] == key).values()
        if self.partitioner is not None and hasattr(self.partitioner, "num_partitions"):
            return values.ctx.run_job(values, lambda tc, it: list(it), [self.partitioner(key)])[0]
        return values.collect()

    def reduce_by_key_locally(self: "RDD", func: Callable[[Any, Any], Any]) -> dict:
        def partial(it: Iterator) -> dict:
            out: dict = {}
            for k, v in it:
                out[k] = func(out[k], v) if k in out else v
            return out

        merged: dict = {}
        for part in self._run(partial):
            for k, v in part.items():
                merged[k] = func(merged[k], v) if k in merged else v
        return merged

    def save_as_text_file(self: "RDD", path: str, compression: str | None = None) -> None:
        """Write one ``part-NNNNN`` file per partition (``str`` of each element per line),
        then ``_SUCCESS``.  Only the first committed attempt of each partition is kept."""
        from dagrun.api.output import save_as_text_file

        save_as_text_file(self, path, compression)

    def save_as_pickle_file(self: "RDD", path: str, batch_size: int = 10) -> None:
        """Write the elements as pickled batches, one ``part-NNNNN`` file per partition, for
        ``ctx.pickle_file`` to read back (committed like ``save_as_text_file``)."""
        from dagrun.graph.file_sources import write_pickle_batches
        from dagrun.api.output import save_parts

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        save_parts(self, path, lambda f, it: write_pickle_batches(f, it, batch_size))


def _count_iter(it: Iterator) -> int:
    n = 0
    for _ in it:
        n += 1
    return n

