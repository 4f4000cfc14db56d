"""``binary_records(...).sort_by(key_prefix(k))``: the block fast path gives exactly what the
general path gives for ``sort_by(lambda r: r[:k])``, partition by partition, with numpy and
without, in memory and when a partition spills."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dagrun
from dagrun import optional
from dagrun.graph import prefix_sort as prefix_nodes
from dagrun.runtime import prefix_sort
from dagrun.runtime.prefix_sort import KeyPrefix, cut_runs, key_prefix, sort_block


def write_records(directory, records: list[bytes], files: int = 2) -> str:
    os.makedirs(directory, exist_ok=True)
    per_file = -(-len(records) // files) if records else 0
    for i in range(files):
        with open(os.path.join(directory, f"part-{i}.dat"), "wb") as f:
            f.write(b"".join(records[i * per_file : (i + 1) * per_file]))
    return str(directory)


def random_records(seed: int, count: int, length: int, alphabet: bytes = b"ab\x00\xff") -> list[bytes]:
    rng = random.Random(seed)
    # A small alphabet makes many equal keys, so stability is tested; the tail numbers records.
    return [bytes(rng.choice(alphabet) for _ in range(length - 4)) + b"%04d" % (i % 10000) for i in range(count)]


def _same(record):
    return record


def both_ways(ctx, path: str, length: int, key: int, ascending: bool, partitions: int, split_size: int):
    rdd = ctx.binary_records(path, length, split_size=split_size)
    fast = rdd.sort_by(key_prefix(key), ascending, partitions)
    general = rdd.map(_same).sort_by(lambda r: r[:key], ascending, partitions)  # not records: the general path
    return fast, general


@pytest.fixture(params=["numpy", "pure-python"])
def implementation(request, monkeypatch):
    if request.param == "numpy":
        pytest.importorskip("numpy")
    else:
        monkeypatch.setattr(optional, "_numpy", None)
    return request.param


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), count=st.integers(0, 400), length=st.integers(5, 24),
       key=st.integers(1, 30), ascending=st.booleans(), partitions=st.integers(1, 6),
       split_records=st.integers(1, 50))
def test_fast_path_partitions_equal_the_general_path(tmp_path_factory, implementation, seed, count, length, key,
                                                     ascending, partitions, split_records):
    path = write_records(tmp_path_factory.mktemp("records"), random_records(seed, count, length))
    with dagrun.Context(executor="inline", max_executors=2, conf={"progress": "off"}) as ctx:
        fast, general = both_ways(ctx, path, length, key, ascending, partitions, split_records * length)
        # with no record to sort, both paths give the RDD itself (as PySpark's sortByKey does)
        assert isinstance(fast._node, prefix_nodes.PrefixSortedNode) or count == 0
        assert fast.glom().collect() == general.glom().collect()


KEYS = {
    "a prefix lambda": lambda key: (lambda r: r[:key]),
    "a slice that is not a prefix": lambda key: (lambda r: r[1:key + 1]),
    "an int": lambda key: (lambda r: r[0]),
    "a tuple": lambda key: (lambda r: (r[-1], r[:key])),
    # records numbered ...7 get another key: chunks without one take the prefix path, the rest pairs
    "a prefix for some records only": lambda key: (lambda r: r[:key] if r[-1] != ord("7") else r[:key][::-1]),
}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), count=st.integers(0, 300), length=st.integers(5, 24),
       key=st.integers(1, 30), ascending=st.booleans(), partitions=st.integers(1, 5),
       split_records=st.integers(1, 50), kind=st.sampled_from(sorted(KEYS)))
def test_any_key_function_on_records_equals_the_general_path(tmp_path_factory, implementation, seed, count, length,
                                                             key, ascending, partitions, split_records, kind):
    path = write_records(tmp_path_factory.mktemp("records"), random_records(seed, count, length))
    keyfunc = KEYS[kind](key)
    with dagrun.Context(executor="inline", max_executors=2, conf={"progress": "off"}) as ctx:
        rdd = ctx.binary_records(path, length, split_size=split_records * length)
        keyed = rdd.sort_by(keyfunc, ascending, partitions)
        general = rdd.map(_same).sort_by(keyfunc, ascending, partitions)
        assert isinstance(keyed._node, prefix_nodes.PrefixSortedNode) or count == 0
        assert keyed.glom().collect() == general.glom().collect()


@pytest.mark.parametrize("later", ["another length", "not a prefix"])
def test_keys_that_stop_being_prefixes_in_a_later_piece_of_a_chunk(tmp_path, monkeypatch, later):
    # pieces of 7 records: the first three pieces' keys are 3-byte prefixes, the later ones' are not
    monkeypatch.setattr(prefix_sort, "_KEY_PASS", 7)
    head = [b"a" + bytes([i]) + b"-%03d" % i for i in range(21)]
    tail = [b"b" + bytes([255 - i]) + b"-%03d" % i for i in range(25)]
    random.Random(5).shuffle(tail)
    records = head + tail
    if later == "another length":
        keyfunc = lambda r: r[:3] if r[:1] == b"a" else r[:4]  # noqa: E731
    else:
        keyfunc = lambda r: r[:3] if r[:1] == b"a" else r[2:5]  # noqa: E731
    path = write_records(tmp_path / "in", records, files=1)
    with dagrun.Context(executor="inline", conf={"progress": "off"}) as ctx:
        rdd = ctx.binary_records(path, len(records[0]))
        for ascending in (True, False):
            got = rdd.sort_by(keyfunc, ascending, 3)
            assert got.glom().collect() == rdd.map(_same).sort_by(keyfunc, ascending, 3).glom().collect()
            assert got.collect() == sorted(records, key=keyfunc, reverse=not ascending)


def test_a_partition_over_the_memory_budget_spills_and_stays_exact(tmp_path):
    path = write_records(tmp_path / "in", random_records(7, 3000, 20))
    # 3000 x 20 bytes in 2 partitions is far over a 4 KB budget: the external sort spills
    with dagrun.Context(executor="inline", conf={"progress": "off", "shuffle_memory": 4096}) as ctx:
        for ascending in (True, False):
            fast, general = both_ways(ctx, path, 20, 6, ascending, 2, 4000)
            assert fast.glom().collect() == general.glom().collect()
            keyed = ctx.binary_records(path, 20, split_size=4000).sort_by(lambda r: r[:6], ascending, 2)
            assert keyed.glom().collect() == general.glom().collect()


def test_local_executors_sort_and_save(tmp_path, local_ctx):
    records = random_records(3, 5000, 100, alphabet=b"0123456789ABCDEF")
    path = write_records(tmp_path / "in", records, files=3)
    out = str(tmp_path / "out")
    rdd = local_ctx.binary_records(path, 100, split_size=100 * 700)
    rdd.sort_by(key_prefix(10), num_partitions=4).save_as_text_file(out)
    lines = []
    for name in sorted(os.listdir(out)):
        if name.startswith("part-"):
            with open(os.path.join(out, name), "rb") as f:
                lines.extend(f.read().splitlines())
    assert lines == [r for r in sorted(records, key=lambda r: r[:10])]


def _saved(out: str) -> dict[str, bytes]:
    return {name: open(os.path.join(out, name), "rb").read() for name in sorted(os.listdir(out))
            if name.startswith("part-")}


@pytest.mark.parametrize("ascending", [True, False])
def test_the_sorted_blocks_are_saved_as_the_general_path_saves_the_records(tmp_path, implementation, ascending):
    # bytes that are not UTF-8 (\xff) are written as the general path writes them: replaced
    records = random_records(11, 3000, 12)
    path = write_records(tmp_path / "in", records)
    with dagrun.Context(executor="inline", conf={"progress": "off"}) as ctx:
        rdd = ctx.binary_records(path, 12, split_size=12 * 700)
        for name, keyfunc in (("prefix", key_prefix(4)), ("lambda", lambda r: r[:4])):
            fast = rdd.sort_by(keyfunc, ascending, 3)
            assert isinstance(fast._node, prefix_nodes.PrefixSortedNode)
            fast.save_as_text_file(str(tmp_path / name))
        rdd.map(_same).sort_by(lambda r: r[:4], ascending, 3).save_as_text_file(str(tmp_path / "general"))
    general = _saved(str(tmp_path / "general"))
    assert len(general) == 3 and b"\xef\xbf\xbd" in b"".join(general.values())
    assert _saved(str(tmp_path / "prefix")) == _saved(str(tmp_path / "lambda")) == general


def test_sorted_records_are_taken_one_way_only():
    block = b"b1a2c3"
    taken = prefix_sort.SortedRecords(iter([block]), 2)
    assert list(taken.take_record_blocks()) == [block]
    with pytest.raises(RuntimeError, match="already taken as blocks"):
        list(taken)
    iterated = prefix_sort.SortedRecords(iter([block]), 2)
    assert list(iterated) == [b"b1", b"a2", b"c3"] and iterated.take_record_blocks() is None


def test_a_persisted_input_is_read_from_its_cache(tmp_path, ctx):
    records = random_records(5, 500, 12)
    path = write_records(tmp_path / "in", records)
    rdd = ctx.binary_records(path, 12, split_size=12 * 40).cache()
    assert rdd.count() == 500
    for name in os.listdir(path):  # the second read must come from the cache
        os.remove(os.path.join(path, name))
    assert rdd.sort_by(key_prefix(3)).collect() == sorted(records, key=lambda r: r[:3])


def test_explain_names_the_fast_path(tmp_path, ctx):
    path = write_records(tmp_path / "in", random_records(1, 100, 10))
    text = ctx.binary_records(path, 10).sort_by(key_prefix(4), num_partitions=2).explain()
    assert "byte-prefix" in text


def test_key_prefix_is_an_ordinary_key_function_elsewhere(ctx):
    words = ["pear", "apple", "peach", "apricot", "plum"]
    assert ctx.parallelize(words, 2).sort_by(key_prefix(2)).collect() == sorted(words, key=lambda w: w[:2])
    assert key_prefix(3)(b"abcdef") == b"abc" and KeyPrefix(2)("xyz") == "xy"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_key_prefix_rejects_a_bad_length(bad):
    with pytest.raises(ValueError, match="positive int"):
        key_prefix(bad)


def test_sort_block_and_cut_runs_directly(implementation):
    block = b"".join([b"b1", b"a2", b"b0", b"c9", b"a1"])
    assert sort_block(block, 2, 1) == b"a2a1b1b0c9"
    assert sort_block(block, 2, 1, reverse=True) == b"c9b1b0a2a1"
    assert sort_block(block, 2, 2) == b"a1a2b0b1c9"
    # bounds (b"a", b"b"): partition 0 holds keys <= a, 1 holds (a, b], 2 the rest
    assert list(cut_runs(block, 2, 1, (b"a", b"b"), True)) == [(0, b"a2a1"), (1, b"b1b0"), (2, b"c9")]
    assert list(cut_runs(block, 2, 1, (b"a", b"b"), False)) == [(2, b"a2a1"), (1, b"b1b0"), (0, b"c9")]


@pytest.mark.parametrize("count", [0, 1, 63, 64, 65, 5000])
@pytest.mark.parametrize("length", [1, 7, 100])
def test_split_records_cuts_every_record_whole(count, length):
    rng = random.Random(count * 1000 + length)
    # records ending in NUL bytes stay whole (a fixed-width decoding would strip them)
    records = [bytes(rng.choice(b"a\x00\xff") for _ in range(length - 1)) + b"\x00" for _ in range(count)]
    buf = b"".join(records)
    assert prefix_sort.split_records(buf, length) == records
    assert prefix_sort.split_records(buf + b"x", length) == records + [b"x"]  # a short tail stays short
