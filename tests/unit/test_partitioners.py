"""Partitioners: portable_hash is the same in every process, and the partitioners follow PySpark."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from dagrun.graph import partitioners
from dagrun.graph.partitioners import HashPartitioner, RangePartitioner, portable_hash, range_bounds

# Built in a child process too, so every value here must be constructible from this source.
VALUES_SOURCE = textwrap.dedent(
    """
    import datetime as dt, decimal, enum, fractions
    class Color(enum.Enum):
        RED = 1
    class Size(enum.IntEnum):
        BIG = 7
    class Name(enum.StrEnum):
        ALICE = "alice"
    utc, plus2 = dt.timezone.utc, dt.timezone(dt.timedelta(hours=2))
    VALUES = [
        None, 0, 1, -1, -2, 2**61 - 1, 2**64 + 5, -(2**70), True, False,
        0.0, -0.0, 1.5, -2.25, 1e300, float("inf"), float("-inf"), float("nan"), 3 + 4j,
        decimal.Decimal("1.25"), fractions.Fraction(1, 3),
        "", "a", "abc", "héllo", "日本語", "🎉", "\\ud800",
        b"", b"a", b"\\x00\\xff" * 10,
        (), (1,), (1, 2), ("a", b"b", None), ((1, "x"), (2.5, ("nested", None))),
        frozenset(), frozenset({"a", "b", "c", 1, 2}),
        dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 12, 30, 5, 7),
        dt.datetime(2024, 2, 29, 12, 30, tzinfo=plus2), dt.time(23, 59, 1), dt.time(1, 2, tzinfo=utc),
        dt.timedelta(days=-3, seconds=5), Color.RED, Size.BIG, Name.ALICE,
    ]
    """
)
namespace: dict = {"__name__": "__main__"}  # as in the child, so Enum classes have the same module
exec(VALUES_SOURCE, namespace)
VALUES: list = namespace["VALUES"]

CHILD = VALUES_SOURCE + textwrap.dedent(
    """
    import importlib.util, json, sys
    # Load the module by path: `import dagrun` would import the whole package, and the child
    # needs only this file (which imports nothing from dagrun).
    spec = importlib.util.spec_from_file_location("partitioners", sys.argv[1])
    module = sys.modules["partitioners"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    spec.loader.exec_module(module)
    HashPartitioner, portable_hash = module.HashPartitioner, module.portable_hash
    print(json.dumps({"hashes": [portable_hash(v) for v in VALUES],
                      "partitions": [HashPartitioner(7)(v) for v in VALUES],
                      "builtin_str_hash": hash("abc")}))
    """
)


def run_children(seeds: list[str]) -> list[dict]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, partitioners.__file__],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in seeds
    ]
    outputs = [child.communicate(timeout=60)[0] for child in children]
    assert [child.returncode for child in children] == [0] * len(seeds)
    return [json.loads(out) for out in outputs]


def test_portable_hash_is_identical_across_hash_seeds() -> None:
    results = run_children(["0", "1", "12345", "random"])
    # the check means something only if the built-in str hash does differ between these processes
    assert len({r["builtin_str_hash"] for r in results}) > 1
    assert all(r["hashes"] == results[0]["hashes"] for r in results)
    assert all(r["partitions"] == results[0]["partitions"] for r in results)
    assert results[0]["hashes"] == [portable_hash(v) for v in VALUES]  # and equal to this process


def test_pyspark_rules_for_none_ints_and_tuples() -> None:
    assert portable_hash(None) == 0
    assert portable_hash(5) == 5
    assert portable_hash(-1) == -2  # CPython's hash(-1)
    assert portable_hash(True) == 1
    assert portable_hash(1.5) == hash(1.5)
    h = 0x345678
    for item in (1, 2):
        h = ((h ^ item) * 1000003) & sys.maxsize
    assert portable_hash((1, 2)) == h ^ 2


def test_matches_pyspark_where_pyspark_is_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    rdd = pytest.importorskip("pyspark.rdd")
    monkeypatch.setenv("PYTHONHASHSEED", "0")  # PySpark refuses to hash without it
    for value in [None, 0, 7, -1, 2**64, 1.5, True, (), (1, 2), (None, (3, -1), 2.5), tuple(range(40))]:
        assert portable_hash(value) == rdd.portable_hash(value), value


def test_equal_keys_hash_equal() -> None:
    import datetime as dt
    import decimal
    import fractions

    assert portable_hash(1) == portable_hash(1.0) == portable_hash(True) == portable_hash(decimal.Decimal(1))
    assert portable_hash(0.5) == portable_hash(fractions.Fraction(1, 2))
    assert portable_hash(namespace["Size"].BIG) == portable_hash(7)
    assert portable_hash(namespace["Name"].ALICE) == portable_hash("alice")
    assert portable_hash((1, "a")) == portable_hash((1.0, "a"))
    assert portable_hash(frozenset({"x", "y", 3})) == portable_hash(frozenset({3, "y", "x"}))
    plus2 = dt.timezone(dt.timedelta(hours=2))
    aware = dt.datetime(2024, 1, 1, 12, tzinfo=plus2)
    assert aware == aware.astimezone(dt.timezone.utc)
    assert portable_hash(aware) == portable_hash(aware.astimezone(dt.timezone.utc))
    assert portable_hash(dt.time(12, tzinfo=plus2)) == portable_hash(dt.time(10, tzinfo=dt.timezone.utc))
    assert portable_hash(float("nan")) == portable_hash(float("nan")) == 0


def test_str_and_bytes_spread_over_partitions() -> None:
    partitioner = HashPartitioner(16)
    for keys in ([f"key-{i}" for i in range(4000)], [f"key-{i}".encode() for i in range(4000)]):
        counts = [0] * 16
        for key in keys:
            counts[partitioner(key)] += 1
        assert min(counts) > 4000 / 16 * 0.7, counts


def test_hash_partitioner() -> None:
    p = HashPartitioner(5)
    assert [p(k) for k in (0, 1, 4, 5, -1, -5)] == [0, 1, 4, 0, 3, 0]  # -1 -> hash -2 -> 3
    assert all(0 <= p(v) < 5 for v in VALUES)
    assert p == HashPartitioner(5) and p != HashPartitioner(6)
    assert pickle.loads(pickle.dumps(p)) == p
    assert HashPartitioner(3, partition_func=len)("abcd") == 1
    with pytest.raises(ValueError, match="num_partitions"):
        HashPartitioner(0)


def test_only_one_partition_with_the_default_hash_needs_no_hashing() -> None:
    assert HashPartitioner(1).partition_of_hashable == 0
    assert HashPartitioner(2).partition_of_hashable is None
    assert HashPartitioner(1, partition_func=len).partition_of_hashable is None  # the user's function still runs


def test_a_partition_function_that_raises_fails_a_one_partition_combine(ctx) -> None:
    import operator

    def broken(key):
        raise ZeroDivisionError(f"no partition for {key!r}")

    pairs = ctx.parallelize([("a", 1), ("b", 2), ("a", 3)], 1)
    assert dict(pairs.reduce_by_key(operator.add, 1).collect()) == {"a": 4, "b": 2}
    with pytest.raises(Exception, match="no partition for"):
        pairs.reduce_by_key(operator.add, 1, partition_func=broken).collect()


def test_range_bounds_follow_pyspark() -> None:
    assert range_bounds(list(range(100)), 4) == (25, 50, 75)
    assert range_bounds(list(reversed(range(100))), 4) == (25, 50, 75)  # sorted first
    assert range_bounds([3, 1, 2], 2) == (2,)
    assert range_bounds([], 4) == ()
    assert range_bounds([1, 2, 3], 1) == ()
    assert range_bounds([5], 3) == (5, 5)  # fewer keys than partitions: PySpark repeats bounds
    assert range_bounds(["b", "a", "c", "d"], 2) == ("c",)


@pytest.mark.parametrize("ascending", [True, False])
def test_range_partitioner_orders_partitions(ascending: bool) -> None:
    keys = list(range(-50, 150))
    bounds = range_bounds(keys[::7], 5)
    p = RangePartitioner(bounds, ascending, lambda k: k)
    assert p.num_partitions == len(bounds) + 1 == 5
    parts = [p(k) for k in keys]
    assert set(parts) == set(range(5))
    step = 1 if ascending else -1
    assert parts == sorted(parts)[::step]  # sorted keys land in non-decreasing (descending: non-increasing) order
    for key, part in zip(keys, parts):
        index = part if ascending else 4 - part  # partition p holds bounds[p-1] < key <= bounds[p]
        assert index == 0 or bounds[index - 1] < key
        assert index == len(bounds) or key <= bounds[index]


def test_range_partitioner_keyfunc_and_defaults() -> None:
    p = RangePartitioner(("m",), True, str.lower)
    assert [p(k) for k in ("A", "M", "n", "Z")] == [0, 0, 1, 1]
    default = RangePartitioner((10, 20))
    assert [default(k) for k in (5, 10, 11, 20, 21)] == [0, 0, 1, 1, 2]
    assert pickle.loads(pickle.dumps(default)) == default
    assert RangePartitioner((), False)(42) == 0


@pytest.mark.parametrize("keys", [
    [f"k{i}" for i in range(3000)],
    ["caf\u00e9", "\U0001f600", "", "a" * 300],
    ["ok", "lone \ud800 surrogate"],  # strict UTF-8 refuses it: the general path must take over
    [i * 7919 - 10**20 for i in range(500)] + [True, False],
    [b"bytes", "str", 3, 2.5, None, ("t", 1)],
])
def test_partition_many_equals_one_call_per_key(keys: list) -> None:
    for n in (1, 7, 16):
        p = HashPartitioner(n)
        assert p.partition_many(keys) == [p(k) for k in keys]


def test_str_hash_is_crc32_of_utf8_and_equal_keys_agree() -> None:
    import zlib

    assert portable_hash("abc") == zlib.crc32(b"abc") == portable_hash(b"abc")
    assert portable_hash("\ud800") == zlib.crc32("\ud800".encode("utf-8", "surrogatepass"))
