"""The rest of PySpark's RDD API that a PySpark user reaches for: ``zip``, ``histogram``,
tree aggregations, ``take_sample``, ``random_split``, ``sample_by_key``, ``pipe``,
``to_local_iterator`` and the approximate actions.

Each follows PySpark's own algorithm (``pyspark/core/rdd.py``, ``pyspark/rddsampler.py``),
so that a given seed and partitioning pick what PySpark picks.  The approximate actions
run to completion, so their answers are exact: well inside PySpark's documented bounds.
"""

from __future__ import annotations

import builtins
import copy
import bisect
import contextvars
import math
import random
import shlex
import subprocess
import sys
import threading
from itertools import chain
from typing import TYPE_CHECKING, Any, Callable, Iterator

from dagrun.graph.partitioners import portable_hash
from dagrun.api.actions import reduced_partitions, run_partitions
from dagrun.api.statcounter import StatCounter
from dagrun.api.sampling import element_sampler, fraction_for_sample_size, range_sampler
from dagrun.graph.nodes import ZippedNode

if TYPE_CHECKING:
    from dagrun.api.rdd import RDD


class BoundedFloat(float):
    """A float with the confidence interval of an approximate action (PySpark's)."""

    def __new__(cls, mean: float, confidence: float, low: float, high: float) -> "BoundedFloat":
        value = super().__new__(cls, mean)
        value.confidence, value.low, value.high = confidence, low, high
        return value


def zip(rdd: "RDD", other: "RDD") -> "RDD":
    """Pairs ``(x, y)`` of the i-th elements; both sides need the same number of
    partitions and of elements in each partition, as in PySpark.

    >>> x = ctx.parallelize(range(0, 5))                       # doctest: +SKIP
    >>> x.zip(ctx.parallelize(range(1000, 1005))).collect()    # doctest: +SKIP
    [(0, 1000), (1, 1001), (2, 1002), (3, 1003), (4, 1004)]
    """
    if rdd.get_num_partitions() != other.get_num_partitions():  # at the call, as PySpark checks
        raise ValueError(f"Can only zip with RDD which has the same number of partitions "
                         f"({rdd.get_num_partitions()} and {other.get_num_partitions()}); repartition one side first")
    return rdd._derive(ZippedNode(rdd.ctx, [rdd._node, other._node]))


def histogram(rdd: "RDD", buckets: int | list | tuple) -> tuple[Any, list[int]]:
    """Counts in buckets: ``n`` even buckets between min and max, or the given sorted
    bounds (the last bucket includes its upper bound).

    >>> ctx.parallelize(range(51)).histogram(2)                # doctest: +SKIP
    ([0, 25, 50], [25, 26])
    """
    if isinstance(buckets, int):
        buckets, low, high, inc = _even_buckets(rdd, buckets)
        if inc is None:  # one value, or one bucket
            return buckets, [rdd.filter(_comparable).count()]
        even = True
    elif isinstance(buckets, (list, tuple)):
        low, high, inc = _given_buckets(buckets)
        even = inc is not None
    else:
        raise TypeError("buckets should be a list or tuple or number(int or long)")

    def count(it: Iterator) -> list[int]:
        counters = [0] * len(buckets)
        for x in it:
            if not _comparable(x) or x > high or x < low:
                continue
            counters[int((x - low) / inc) if even else bisect.bisect_right(buckets, x) - 1] += 1
        last = counters.pop()  # the top bound belongs to the last bucket
        counters[-1] += last
        return counters

    parts = reduced_partitions(rdd, count)
    return buckets, [sum(column) for column in builtins.zip(*parts)]


def tree_aggregate(rdd: "RDD", zero_value: Any, seq_op: Callable, comb_op: Callable, depth: int = 2) -> Any:
    """``aggregate`` with the partial results combined in a tree of shuffles, as PySpark does:
    ``zero_value`` starts each partition (and is the answer when there is none), while the
    partials are only combined with each other, so the levels meet in PySpark's order.

    >>> ctx.parallelize(range(10), 4).tree_aggregate(0, operator.add, operator.add)   # doctest: +SKIP
    45
    """
    if depth < 1:
        raise ValueError(f"Depth cannot be smaller than 1 but got {depth}.")
    if rdd.get_num_partitions() == 0:
        return zero_value

    def aggregate_partition(it: Iterator) -> Iterator:
        acc = copy.deepcopy(zero_value)  # each partition its own zero, as each PySpark task unpickles one
        for x in it:
            acc = seq_op(acc, x)
        yield acc

    partials = rdd.map_partitions(aggregate_partition)
    n: float = partials.get_num_partitions()
    scale = builtins.max(int(math.ceil(n ** (1.0 / depth))), 2)
    while n > scale + n / scale:  # another level still shortens the driver's part
        n /= scale
        level = int(n)
        partials = (partials.map_partitions_with_index(lambda i, it, level=level: ((i % level, x) for x in it))
                    .reduce_by_key(comb_op, level).values())
    return partials.reduce(comb_op)


def tree_reduce(rdd: "RDD", f: Callable[[Any, Any], Any], depth: int = 2) -> Any:
    """``reduce`` in a tree of shuffles (``tree_aggregate``); an empty RDD raises ValueError."""
    if depth < 1:
        raise ValueError(f"Depth cannot be smaller than 1 but got {depth}.")

    def op(x: tuple, y: tuple) -> tuple:  # (value, is the dummy zero)
        if x[1]:
            return y
        if y[1]:
            return x
        return f(x[0], y[0]), False

    value, empty = rdd.map(lambda x: (x, False)).tree_aggregate((None, True), op, op, depth)
    if empty:
        raise ValueError("Cannot reduce empty RDD.")
    return value


def to_local_iterator(rdd: "RDD", prefetch_partitions: bool = False) -> Iterator:
    """Every element, one partition (one job) at a time, so the driver holds at most
    one partition; with ``prefetch_partitions`` the next partition's job runs while this
    one's elements are consumed (the driver then holds at most two)."""
    count = rdd.get_num_partitions()
    if not prefetch_partitions:
        for index in range(count):
            yield from run_partitions(rdd, list, [index])[0]
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="dagrun-prefetch") as pool:
        pending = pool.submit(run_partitions, rdd, list, [0]) if count else None
        for index in range(count):
            part = pending.result()[0]
            pending = pool.submit(run_partitions, rdd, list, [index + 1]) if index + 1 < count else None
            yield from part


def take_sample(rdd: "RDD", with_replacement: bool, num: int, seed: int | None = None) -> list:
    """``num`` elements drawn at random (PySpark's algorithm: oversample, then shuffle).

    >>> len(ctx.parallelize(range(10)).take_sample(False, 15, 3))   # doctest: +SKIP
    10
    """
    if num < 0:
        raise ValueError("Sample size cannot be negative.")
    if num > sys.maxsize - int(10.0 * math.sqrt(sys.maxsize)):
        raise ValueError("Sample size cannot be greater than the maximum sample size.")
    if num == 0 or rdd.get_num_partitions() == 0:
        return []
    total = rdd.count()
    if total == 0:
        return []
    rng = random.Random(seed)
    if not with_replacement and num >= total:
        everything = rdd.collect()
        rng.shuffle(everything)
        return everything
    fraction = fraction_for_sample_size(num, total, with_replacement)
    samples = rdd.sample(with_replacement, fraction, seed).collect()
    while len(samples) < num:  # rare: the oversampling fell short
        samples = rdd.sample(with_replacement, fraction, rng.randint(0, sys.maxsize)).collect()
    rng.shuffle(samples)
    return samples[:num]


def random_split(rdd: "RDD", weights: list[float], seed: int | None = None) -> list["RDD"]:
    """Disjoint random parts in proportion to ``weights`` (normalised to sum to 1).

    >>> a, b = ctx.parallelize(range(500), 1).random_split([2, 3], 17)   # doctest: +SKIP
    """
    if any(w < 0.0 for w in weights):
        raise ValueError("Weights must be nonnegative")
    total = float(sum(weights))
    if not total > 0:
        raise ValueError("Sum of weights must be positive")
    bounds = [0.0]
    for w in weights:
        bounds.append(bounds[-1] + w / total)
    if seed is None:
        seed = random.randint(0, 2**32 - 1)
    return [rdd.map_partitions_with_index(range_sampler(low, high, seed), True)
            for low, high in builtins.zip(bounds, bounds[1:])]


def sample_by_key(rdd: "RDD", with_replacement: bool, fractions: dict, seed: int | None = None) -> "RDD":
    """A sample of (k, v) pairs with a fraction per key (stratified sampling)."""
    for fraction in fractions.values():
        if fraction < 0.0:
            raise ValueError(f"Negative fraction value: {fraction}")
    if seed is None:
        seed = random.randint(0, sys.maxsize)

    return rdd.map_partitions_with_index(element_sampler(seed, with_replacement, lambda kv: fractions[kv[0]]),
                                          True)


def pipe(rdd: "RDD", command: str, env: dict | None = None, check_code: bool = False) -> "RDD":
    """Each partition's elements, one per line, through an external command; its output
    lines are the new elements.  As in PySpark, the command gets only ``env``.

    >>> ctx.parallelize(["1", "2", "", "3"]).pipe("cat").collect()   # doctest: +SKIP
    ['1', '2', '', '3']
    """
    def run(it: Iterator) -> Iterator[str]:
        proc = subprocess.Popen(shlex.split(command), env=env or {}, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)

        failed: list[BaseException] = []

        def feed() -> None:
            try:
                for x in it:
                    proc.stdin.write((str(x).rstrip("\n") + "\n").encode("utf-8"))
            except BrokenPipeError:
                pass  # the command stopped reading; its exit code says why
            except BaseException as e:  # the upstream function raised: fail the task with it
                failed.append(e)
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass

        # the copied context carries the task's request counting into the thread
        feeder = threading.Thread(target=contextvars.copy_context().run, args=(feed,), daemon=True)
        feeder.start()

        def finish() -> Iterator[bytes]:  # runs once the output is read to its end
            proc.wait()
            feeder.join()
            if failed:
                raise failed[0]
            if check_code and proc.returncode:
                raise RuntimeError(f"Pipe function `{command}' exited with error code {proc.returncode}")
            yield from ()

        lines = chain(iter(proc.stdout.readline, b""), finish())
        return (line.rstrip(b"\n").decode("utf-8") for line in lines)

    return rdd.map_partitions(run)


def count_approx(rdd: "RDD", timeout: int, confidence: float = 0.95) -> int:
    """The count; exact, since the job runs to the end."""
    return rdd.count()


def _exact(value: float) -> BoundedFloat:
    # a finished approximate job: confidence 1 and no interval, as PySpark reports it
    return BoundedFloat(value, 1.0, value, value)


def _merged_stats(values: list[float]) -> StatCounter:
    total = StatCounter()
    for value in values:
        total.merge(value)
    return total


def sum_approx(rdd: "RDD", timeout: int, confidence: float = 0.95) -> BoundedFloat:
    """The sum as a ``BoundedFloat``; exact, since the job runs to the end.

    As PySpark computes it: each partition's ``float(sum(...))``, merged into a StatCounter
    whose count times mean is the sum (0.0 for no partitions).
    """
    return _exact(_merged_stats(run_partitions(rdd, lambda it: float(builtins.sum(it)))).sum())


def mean_approx(rdd: "RDD", timeout: int, confidence: float = 0.95) -> BoundedFloat:
    """The mean as a ``BoundedFloat``; exact, since the job runs to the end (0.0 for no values)."""
    parts = run_partitions(rdd, lambda it: StatCounter(map(float, it)))
    total = StatCounter()
    for part in parts:
        total.merge_stats(part)
    return _exact(total.mean())


def count_approx_distinct(rdd: "RDD", relative_sd: float = 0.05) -> int:
    """How many distinct elements, by their 32-bit portable hashes (PySpark hashes them
    the same way before its HyperLogLog); exact, not estimated."""
    if relative_sd < 0.000017:
        raise ValueError("relativeSD should be greater than 0.000017")
    return rdd.map(lambda x: portable_hash(x) & 0xFFFFFFFF).distinct().count()


def _comparable(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _even_buckets(rdd: "RDD", count: int) -> tuple[list, Any, Any, Any]:
    """PySpark's evenly spaced buckets: ints stay ints when they divide evenly."""
    if count < 1:
        raise ValueError("number of buckets must be >= 1")
    values = rdd.filter(_comparable)
    try:
        low, high = values.map(lambda x: (x, x)).reduce(lambda a, b: (min(a[0], b[0]), max(a[1], b[1])))
    except ValueError as e:
        raise ValueError("can not generate buckets from empty RDD") from e
    if low == high or count == 1:
        return [low, high], low, high, None
    try:
        inc = (high - low) / count
    except TypeError as e:
        raise TypeError("Can not generate buckets with non-number in RDD") from e
    if math.isinf(inc):
        raise ValueError("Can not generate buckets with infinite value")
    inc = int(inc)
    if inc * count != high - low:
        inc = (high - low) * 1.0 / count
    buckets = [i * inc + low for i in range(count)]
    buckets.append(high)  # no accumulated rounding at the top
    return buckets, low, high, inc


def _given_buckets(buckets: list | tuple) -> tuple[Any, Any, Any]:
    if len(buckets) < 2:
        raise ValueError("buckets should have more than one value")
    if any(b is None or (isinstance(b, float) and math.isnan(b)) for b in buckets):
        raise ValueError("can not have None or NaN in buckets")
    if sorted(buckets) != list(buckets):
        raise ValueError("buckets should be sorted")
    if len(set(buckets)) != len(buckets):
        raise ValueError("buckets should not contain duplicated values")
    low, high = buckets[0], buckets[-1]
    try:
        steps = [buckets[i + 1] - buckets[i] for i in range(len(buckets) - 1)]
    except TypeError:  # bounds without "-" (strings): placed by binary search
        return low, high, None
    if max(steps) - min(steps) < 1e-10:  # evenly spaced, up to rounding
        return low, high, (high - low) / (len(buckets) - 1)
    return low, high, None
