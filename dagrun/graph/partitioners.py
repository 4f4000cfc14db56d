"""Partitioners: which reduce partition a key goes to, the same in every process.

State: none; partitioners are frozen values that ship with tasks and compare equal when they
partition alike, so the planner can tell when data is already partitioned as needed.

Policy (invariant 1 in docs/architecture.md): ``portable_hash`` follows PySpark's rule for the
types where that rule is stable across processes, and replaces it where it is not.  PySpark
hashes str and bytes with the built-in ``hash()`` and fixes ``PYTHONHASHSEED`` on its workers;
executors here may be Lambda functions we do not start, so str and bytes hash by the CRC-32 of
their (UTF-8) bytes instead, and so does every other type whose built-in hash is salted (date,
datetime, time, Enum members).  CRC-32 rather than a cryptographic digest because it is one C
call (zlib runs it at GB/s) where blake2b cost ~5x as much per short key: partitioning needs
a spread, not collision resistance, and CRC-32 mod n spreads sequential and random keys within
sampling noise of uniform.  ``HashPartitioner.partition_many`` hashes a chunk of str (or int)
keys with C-level ``map`` calls and no Python frame per key.  Keys that compare equal hash equal: ``1``, ``1.0`` and ``True`` all hash
as CPython's numeric hash, as do IntEnum members; StrEnum members hash as their text.

Promise: ``portable_hash(x)`` is the same number in every process, whatever ``PYTHONHASHSEED``,
for None, bool, int, float, complex, Decimal, Fraction, str, bytes, date, datetime, time,
timedelta, Enum members, and tuples and frozensets of these.  Other objects fall back to their
own ``__hash__``, which is only as stable as the class makes it.
"""

from __future__ import annotations

import datetime as dt
import enum
import numbers
import sys
import zlib
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any


def portable_hash(x: Any) -> int:
    """A hash of ``x`` that does not depend on the process; see the module docstring."""
    t = type(x)
    if t is int or t is bool:
        return hash(x)
    if t is str:
        return _digest(x.encode("utf-8", "surrogatepass"))
    if t is bytes:
        return _digest(x)
    if t is float:
        return 0 if x != x else hash(x)  # since 3.10 a NaN hashes by its id()
    if x is None:
        return 0
    if isinstance(x, tuple):
        return _combine(x)
    if isinstance(x, str):  # subclasses, e.g. StrEnum, equal their text and must hash like it
        return _digest(str.encode(x, "utf-8", "surrogatepass"))
    if isinstance(x, bytes):
        return _digest(bytes(x))
    if isinstance(x, numbers.Number):  # CPython's numeric hash is unsalted, except for NaN
        return 0 if x != x else hash(x)
    if isinstance(x, frozenset):
        # Order-free: the same set may iterate in another order in another process.
        return _combine(("frozenset", *sorted(portable_hash(e) for e in x)))
    if isinstance(x, dt.datetime):  # before date: a datetime is a date
        if x.utcoffset() is not None:  # aware datetimes equal across time zones hash alike
            x = (x - x.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]
        return _combine(("datetime", x.toordinal(), x.hour, x.minute, x.second, x.microsecond))
    if isinstance(x, dt.date):
        return _combine(("date", x.toordinal()))
    if isinstance(x, dt.time):
        offset = x.utcoffset()
        shift = 0 if offset is None else offset // dt.timedelta(microseconds=1)
        micros = ((x.hour * 60 + x.minute) * 60 + x.second) * 1_000_000 + x.microsecond
        return _combine(("time", micros - shift, offset is None))
    if isinstance(x, dt.timedelta):
        return _combine(("timedelta", x.days, x.seconds, x.microseconds))
    if isinstance(x, enum.Enum):  # plain members compare by identity; their hash uses hash(str)
        return _combine((type(x).__module__, type(x).__qualname__, x.name))
    return hash(x)


_digest = zlib.crc32  # bytes -> int in [0, 2**32); see the module docstring for why CRC-32


def _combine(items: tuple[Any, ...]) -> int:
    # PySpark's tuple rule (pyspark.rdd.portable_hash), itself CPython 2's tuple hash.
    h = 0x345678
    for item in items:
        h ^= portable_hash(item)
        h *= 1000003
        h &= sys.maxsize
    h ^= len(items)
    if h == -1:
        h = -2
    return int(h)


@dataclass(frozen=True)
class HashPartitioner:
    """``partition_func(key) % num_partitions``; Python's ``%`` is never negative here."""

    num_partitions: int
    partition_func: Callable[[Any], int] = portable_hash

    def __post_init__(self) -> None:
        if self.num_partitions < 1:
            raise ValueError(f"num_partitions must be at least 1, got {self.num_partitions}")

    def __call__(self, key: Any) -> int:
        h = self.partition_func(key)
        try:
            return h % self.num_partitions
        except TypeError:
            raise self._not_a_number(key, h) from None

    def _not_a_number(self, key: Any, h: Any) -> TypeError:
        return TypeError(f"the partition function {getattr(self.partition_func, '__name__', self.partition_func)!r} "
                         f"returned {h!r} ({type(h).__name__}) for the key {key!r}; it must return an int, "
                         f"which is taken modulo the {self.num_partitions} partitions")

    @property
    def in_range(self) -> bool:
        """Whether every number it gives is an int in [0, n) by construction (the default hash)."""
        return self.partition_func is portable_hash

    @property
    def partition_of_hashable(self) -> int | None:
        """The one partition of every hashable key (0 when there is one partition and the
        default hash, which cannot fail on a hashable key), else None: keys must be hashed."""
        return 0 if self.num_partitions == 1 and self.partition_func is portable_hash else None

    def partition_many(self, keys: list) -> list[int]:
        """``[self(k) for k in keys]`` without a Python call per key for the partitioner."""
        f, n = self.partition_func, self.num_partitions
        if f is portable_hash and keys:
            types = set(map(type, keys))
            if types == {str}:
                try:  # strict UTF-8 equals "surrogatepass" for every str that it accepts
                    return [h % n for h in map(_digest, map(str.encode, keys))]
                except UnicodeEncodeError:
                    pass  # a lone surrogate: the general path below encodes it
            elif types <= _BUILTIN_HASHED:
                return [h % n for h in map(hash, keys)]
        try:
            return [f(k) % n for k in keys]
        except TypeError:
            for k in keys:
                self(k)  # raises for the key at fault (or f's own TypeError, which is the user's)
            raise


_BUILTIN_HASHED = frozenset({int, bool})  # portable_hash is hash() for exactly these


def identity(x: Any) -> Any:
    """The default key function; fast paths recognise it by identity."""
    return x


_identity = identity


@dataclass(frozen=True)
class RangePartitioner:
    """Partition ``p`` holds keys with ``bounds[p-1] < keyfunc(key) <= bounds[p]`` (PySpark's
    ``sortByKey``); descending order numbers the partitions from the other end."""

    bounds: tuple[Any, ...]
    ascending: bool = True
    keyfunc: Callable[[Any], Any] = _identity

    @property
    def num_partitions(self) -> int:
        return len(self.bounds) + 1

    def __call__(self, key: Any) -> int:
        p = bisect_left(self.bounds, self.keyfunc(key))
        return p if self.ascending else len(self.bounds) - p

    def partition_many(self, keys: list) -> list[int]:
        bounds = self.bounds
        if self.keyfunc is not identity:
            keys = list(map(self.keyfunc, keys))
        ps = list(map(partial(bisect_left, bounds), keys))
        if self.ascending:
            return ps
        last = len(bounds)
        return [last - p for p in ps]


def range_bounds(sample_keys: Iterable[Any], num_partitions: int) -> tuple[Any, ...]:
    """PySpark's bounds from a sample: ``num_partitions - 1`` evenly spaced sorted sample keys.

    Pass keys already mapped through the partitioner's ``keyfunc``.  An empty sample or one
    partition gives no bounds (a single partition).
    """
    s = sorted(sample_keys)
    if not s or num_partitions <= 1:
        return ()
    return tuple(s[int(len(s) * (i + 1) / num_partitions)] for i in range(num_partitions - 1))
