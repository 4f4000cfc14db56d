"""PySpark's documented RDD examples, in snake_case, run on dagrun.

Every docstring example of ``pyspark/core/rdd.py`` and ``pyspark/core/context.py`` (PySpark
4.x) whose API dagrun has is translated here: ``sc`` -> ``ctx``, camelCase -> snake_case,
``numSlices`` / ``numPartitions`` -> ``num_partitions``.  The expected values are PySpark's
documented outputs, and every one was checked by running the same code on a real PySpark
4.3 ``SparkContext("local[2]")`` (and ``local[4]``, the doctests' own master); where the doc
elides part of an output (``0.666...``, ``[...]``) the full value PySpark printed is used.

The ``ctx`` fixture has default parallelism 2.  None of the documented outputs below depends
on the parallelism (PySpark gives the same at local[2] and local[4]); the section "beyond the
docstrings" pins down partition layouts and orders that do, against PySpark at the same
parallelism.

Not translated, because dagrun has no such API: checkpoint / localCheckpoint, getStorageLevel
and StorageLevel, barrier, mapPartitionsWithSplit, toDebugString's JVM format, the Hadoop and
sequence file readers and writers, addFile, addArchive, job groups and tags, getOrCreate and
the other JVM properties, and runJob (dagrun's ``run_job`` is an internal with another
signature).  The examples of zip, histogram, the tree aggregations, takeSample,
randomSplit, sampleByKey, pipe, the approximate actions, toLocalIterator, id, broadcast,
accumulator, wholeTextFiles, binaryFiles and saveAsPickleFile / pickleFile are in
``test_pyspark_examples_more.py``.
"""

from __future__ import annotations

import gzip
import os
from fileinput import hook_compressed
from fileinput import input as file_input
from glob import glob
from operator import add

import pytest

import dagrun


@pytest.fixture
def ctx4():
    """Like ``ctx`` with parallelism 4: the master the PySpark doctests use (local[4])."""
    with dagrun.Context(executor="inline", max_executors=4, conf={"progress": "off"}) as c:
        yield c


# ---- pyspark.core.rdd: PipelinedRDD, context, cache, persist, unpersist -----------------------


def test_pipelined_rdd(ctx):
    rdd = ctx.parallelize([1, 2, 3, 4])
    assert rdd.map(lambda x: 2 * x).cache().map(lambda x: 2 * x).collect() == [4, 8, 12, 16]
    assert rdd.map(lambda x: 2 * x).map(lambda x: 2 * x).collect() == [4, 8, 12, 16]
    assert rdd.map(lambda x: 2 * x).reduce(add) == 20
    assert rdd.flat_map(lambda x: [x, x]).reduce(add) == 20


def test_context(ctx):
    rdd = ctx.range(5)
    assert rdd.context is ctx


def test_cache(ctx):
    rdd = ctx.range(5)
    rdd2 = rdd.cache()
    assert rdd2 is rdd
    _ = rdd.unpersist()


def test_persist(ctx):
    rdd = ctx.parallelize(["b", "a", "c"])
    assert rdd.persist().is_cached is True
    _ = rdd.unpersist()
    assert rdd.is_cached is False


def test_unpersist(ctx):
    rdd = ctx.range(5)
    assert rdd.is_cached is False
    _ = rdd.unpersist()
    assert rdd.is_cached is False
    _ = rdd.cache()
    assert rdd.is_cached is True
    _ = rdd.unpersist()
    assert rdd.is_cached is False
    _ = rdd.unpersist()


# ---- narrow transformations -------------------------------------------------------------------


def test_map(ctx):
    rdd = ctx.parallelize(["b", "a", "c"])
    assert sorted(rdd.map(lambda x: (x, 1)).collect()) == [("a", 1), ("b", 1), ("c", 1)]


def test_flat_map(ctx):
    rdd = ctx.parallelize([2, 3, 4])
    assert sorted(rdd.flat_map(lambda x: range(1, x)).collect()) == [1, 1, 1, 2, 2, 3]
    assert sorted(rdd.flat_map(lambda x: [(x, x), (x, x)]).collect()) == [
        (2, 2), (2, 2), (3, 3), (3, 3), (4, 4), (4, 4)]


def test_map_partitions(ctx):
    rdd = ctx.parallelize([1, 2, 3, 4], 2)

    def f(iterator):
        yield sum(iterator)

    assert rdd.map_partitions(f).collect() == [3, 7]


def test_map_partitions_with_index(ctx):
    rdd = ctx.parallelize([1, 2, 3, 4], 4)

    def f(split_index, iterator):
        yield split_index

    assert rdd.map_partitions_with_index(f).sum() == 6


def test_get_num_partitions(ctx):
    rdd = ctx.parallelize([1, 2, 3, 4], 2)
    assert rdd.get_num_partitions() == 2


def test_filter(ctx):
    rdd = ctx.parallelize([1, 2, 3, 4, 5])
    assert rdd.filter(lambda x: x % 2 == 0).collect() == [2, 4]


def test_distinct(ctx):
    assert sorted(ctx.parallelize([1, 1, 2, 3]).distinct().collect()) == [1, 2, 3]


def test_sample(ctx):
    rdd = ctx.parallelize(range(100), 4)
    assert 6 <= rdd.sample(False, 0.1, 81).count() <= 14


def test_union(ctx):
    rdd = ctx.parallelize([1, 1, 2, 3])
    assert rdd.union(rdd).collect() == [1, 1, 2, 3, 1, 1, 2, 3]


def test_intersection(ctx):
    rdd1 = ctx.parallelize([1, 10, 2, 3, 4, 5])
    rdd2 = ctx.parallelize([1, 6, 2, 3, 7, 8])
    assert rdd1.intersection(rdd2).collect() == [1, 2, 3]


def test_add(ctx):
    rdd = ctx.parallelize([1, 1, 2, 3])
    assert (rdd + rdd).collect() == [1, 1, 2, 3, 1, 1, 2, 3]


def test_glom(ctx):
    rdd = ctx.parallelize([1, 2, 3, 4], 2)
    assert sorted(rdd.glom().collect()) == [[1, 2], [3, 4]]


def test_cartesian(ctx):
    rdd = ctx.parallelize([1, 2])
    assert sorted(rdd.cartesian(rdd).collect()) == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_group_by(ctx):
    rdd = ctx.parallelize([1, 1, 2, 3, 5, 8])
    result = rdd.group_by(lambda x: x % 2).collect()
    assert sorted([(x, sorted(y)) for (x, y) in result]) == [(0, [2, 8]), (1, [1, 1, 3, 5])]


def test_key_by(ctx):
    rdd1 = ctx.parallelize(range(0, 3)).key_by(lambda x: x * x)
    rdd2 = ctx.parallelize(zip(range(0, 5), range(0, 5)))
    assert [(x, list(map(list, y))) for x, y in sorted(rdd1.cogroup(rdd2).collect())] == [
        (0, [[0], [0]]), (1, [[1], [1]]), (2, [[], [2]]), (3, [[], [3]]), (4, [[2], [4]])]


def test_keys(ctx):
    rdd = ctx.parallelize([(1, 2), (3, 4)]).keys()
    assert rdd.collect() == [1, 3]


def test_values(ctx):
    rdd = ctx.parallelize([(1, 2), (3, 4)]).values()
    assert rdd.collect() == [2, 4]


def test_flat_map_values(ctx):
    rdd = ctx.parallelize([("a", ["x", "y", "z"]), ("b", ["p", "r"])])

    def f(x):
        return x

    assert rdd.flat_map_values(f).collect() == [("a", "x"), ("a", "y"), ("a", "z"), ("b", "p"), ("b", "r")]


def test_map_values(ctx):
    rdd = ctx.parallelize([("a", ["apple", "banana", "lemon"]), ("b", ["grapes"])])

    def f(x):
        return len(x)

    assert rdd.map_values(f).collect() == [("a", 3), ("b", 1)]


def test_coalesce(ctx):
    assert ctx.parallelize([1, 2, 3, 4, 5], 3).glom().collect() == [[1], [2, 3], [4, 5]]
    assert ctx.parallelize([1, 2, 3, 4, 5], 3).coalesce(1).glom().collect() == [[1, 2, 3, 4, 5]]


def test_repartition(ctx):
    rdd = ctx.parallelize([1, 2, 3, 4, 5, 6, 7], 4)
    assert sorted(rdd.glom().collect()) == [[1], [2, 3], [4, 5], [6, 7]]
    assert len(rdd.repartition(2).glom().collect()) == 2
    assert len(rdd.repartition(10).glom().collect()) == 10


def test_zip_with_index(ctx):
    assert ctx.parallelize(["a", "b", "c", "d"], 3).zip_with_index().collect() == [
        ("a", 0), ("b", 1), ("c", 2), ("d", 3)]


def test_zip_with_unique_id(ctx):
    assert ctx.parallelize(["a", "b", "c", "d", "e"], 3).zip_with_unique_id().collect() == [
        ("a", 0), ("b", 1), ("c", 4), ("d", 2), ("e", 5)]


def test_set_name(ctx):
    rdd = ctx.parallelize([1, 2])
    assert rdd.set_name("I am an RDD").name() == "I am an RDD"


def test_set_name_returns_self(ctx):
    rdd = ctx.parallelize([1, 2])
    assert rdd.set_name("I am an RDD") is rdd


# ---- shuffles -----------------------------------------------------------------------------------


def test_repartition_and_sort_within_partitions(ctx):
    rdd = ctx.parallelize([(0, 5), (3, 8), (2, 6), (0, 8), (3, 8), (1, 3)])
    rdd2 = rdd.repartition_and_sort_within_partitions(2, lambda x: x % 2, True)
    assert rdd2.glom().collect() == [[(0, 5), (0, 8), (2, 6)], [(1, 3), (3, 8), (3, 8)]]


def test_sort_by_key(ctx):
    tmp = [("a", 1), ("b", 2), ("1", 3), ("d", 4), ("2", 5)]
    assert ctx.parallelize(tmp).sort_by_key().first() == ("1", 3)
    assert ctx.parallelize(tmp).sort_by_key(True, 1).collect() == [("1", 3), ("2", 5), ("a", 1), ("b", 2), ("d", 4)]
    assert ctx.parallelize(tmp).sort_by_key(True, 2).collect() == [("1", 3), ("2", 5), ("a", 1), ("b", 2), ("d", 4)]
    tmp2 = [("Mary", 1), ("had", 2), ("a", 3), ("little", 4), ("lamb", 5)]
    tmp2.extend([("whose", 6), ("fleece", 7), ("was", 8), ("white", 9)])
    assert ctx.parallelize(tmp2).sort_by_key(True, 3, keyfunc=lambda k: k.lower()).collect() == [
        ("a", 3), ("fleece", 7), ("had", 2), ("lamb", 5), ("little", 4), ("Mary", 1), ("was", 8),
        ("white", 9), ("whose", 6)]


def test_sort_by(ctx):
    tmp = [("a", 1), ("b", 2), ("1", 3), ("d", 4), ("2", 5)]
    assert ctx.parallelize(tmp).sort_by(lambda x: x[0]).collect() == [("1", 3), ("2", 5), ("a", 1), ("b", 2), ("d", 4)]
    assert ctx.parallelize(tmp).sort_by(lambda x: x[1]).collect() == [("a", 1), ("b", 2), ("1", 3), ("d", 4), ("2", 5)]


def test_reduce_by_key(ctx):
    rdd = ctx.parallelize([("a", 1), ("b", 1), ("a", 1)])
    assert sorted(rdd.reduce_by_key(add).collect()) == [("a", 2), ("b", 1)]


def test_reduce_by_key_locally(ctx):
    rdd = ctx.parallelize([("a", 1), ("b", 1), ("a", 1)])
    assert sorted(rdd.reduce_by_key_locally(add).items()) == [("a", 2), ("b", 1)]


def test_count_by_key(ctx):
    rdd = ctx.parallelize([("a", 1), ("b", 1), ("a", 1)])
    assert sorted(rdd.count_by_key().items()) == [("a", 2), ("b", 1)]


def test_join(ctx):
    rdd1 = ctx.parallelize([("a", 1), ("b", 4)])
    rdd2 = ctx.parallelize([("a", 2), ("a", 3)])
    assert sorted(rdd1.join(rdd2).collect()) == [("a", (1, 2)), ("a", (1, 3))]


def test_left_outer_join(ctx):
    rdd1 = ctx.parallelize([("a", 1), ("b", 4)])
    rdd2 = ctx.parallelize([("a", 2)])
    assert sorted(rdd1.left_outer_join(rdd2).collect()) == [("a", (1, 2)), ("b", (4, None))]


def test_right_outer_join(ctx):
    rdd1 = ctx.parallelize([("a", 1), ("b", 4)])
    rdd2 = ctx.parallelize([("a", 2)])
    assert sorted(rdd2.right_outer_join(rdd1).collect()) == [("a", (2, 1)), ("b", (None, 4))]


def test_full_outer_join(ctx):
    rdd1 = ctx.parallelize([("a", 1), ("b", 4)])
    rdd2 = ctx.parallelize([("a", 2), ("c", 8)])
    assert sorted(rdd1.full_outer_join(rdd2).collect()) == [("a", (1, 2)), ("b", (4, None)), ("c", (None, 8))]


def test_partition_by(ctx):
    pairs = ctx.parallelize([1, 2, 3, 4, 2, 4, 1]).map(lambda x: (x, x))
    sets = pairs.partition_by(2).glom().collect()
    assert len(set(sets[0]).intersection(set(sets[1]))) == 0


def test_combine_by_key(ctx):
    rdd = ctx.parallelize([("a", 1), ("b", 1), ("a", 2)])

    def to_list(a):
        return [a]

    def append(a, b):
        a.append(b)
        return a

    def extend(a, b):
        a.extend(b)
        return a

    assert sorted(rdd.combine_by_key(to_list, append, extend).collect()) == [("a", [1, 2]), ("b", [1])]


def test_aggregate_by_key(ctx):
    rdd = ctx.parallelize([("a", 1), ("b", 1), ("a", 2)])
    seq_func = (lambda x, y: (x[0] + y, x[1] + 1))
    comb_func = (lambda x, y: (x[0] + y[0], x[1] + y[1]))
    assert sorted(rdd.aggregate_by_key((0, 0), seq_func, comb_func).collect()) == [("a", (3, 2)), ("b", (1, 1))]


def test_fold_by_key(ctx):
    rdd = ctx.parallelize([("a", 1), ("b", 1), ("a", 1)])
    assert sorted(rdd.fold_by_key(0, add).collect()) == [("a", 2), ("b", 1)]


def test_group_by_key(ctx):
    rdd = ctx.parallelize([("a", 1), ("b", 1), ("a", 1)])
    assert sorted(rdd.group_by_key().map_values(len).collect()) == [("a", 2), ("b", 1)]
    assert sorted(rdd.group_by_key().map_values(list).collect()) == [("a", [1, 1]), ("b", [1])]


def test_group_with(ctx):
    rdd1 = ctx.parallelize([("a", 5), ("b", 6)])
    rdd2 = ctx.parallelize([("a", 1), ("b", 4)])
    rdd3 = ctx.parallelize([("a", 2)])
    rdd4 = ctx.parallelize([("b", 42)])
    assert [(x, tuple(map(list, y))) for x, y in sorted(list(rdd1.group_with(rdd2, rdd3, rdd4).collect()))] == [
        ("a", ([5], [1], [2], [])), ("b", ([6], [4], [], [42]))]


def test_cogroup(ctx):
    rdd1 = ctx.parallelize([("a", 1), ("b", 4)])
    rdd2 = ctx.parallelize([("a", 2)])
    assert [(x, tuple(map(list, y))) for x, y in sorted(list(rdd1.cogroup(rdd2).collect()))] == [
        ("a", ([1], [2])), ("b", ([4], []))]


def test_subtract_by_key(ctx):
    rdd1 = ctx.parallelize([("a", 1), ("b", 4), ("b", 5), ("a", 2)])
    rdd2 = ctx.parallelize([("a", 3), ("c", None)])
    assert sorted(rdd1.subtract_by_key(rdd2).collect()) == [("b", 4), ("b", 5)]


def test_subtract(ctx):
    rdd1 = ctx.parallelize([("a", 1), ("b", 4), ("b", 5), ("a", 3)])
    rdd2 = ctx.parallelize([("a", 3), ("c", None)])
    assert sorted(rdd1.subtract(rdd2).collect()) == [("a", 1), ("b", 4), ("b", 5)]


# ---- actions ----------------------------------------------------------------------------------


def test_foreach(ctx):
    def f(x):
        print(x)

    assert ctx.parallelize([1, 2, 3, 4, 5]).foreach(f) is None


def test_foreach_partition(ctx):
    def f(iterator):
        for x in iterator:
            print(x)

    assert ctx.parallelize([1, 2, 3, 4, 5]).foreach_partition(f) is None


def test_collect(ctx):
    assert ctx.range(5).collect() == [0, 1, 2, 3, 4]
    assert ctx.parallelize(["x", "y", "z"]).collect() == ["x", "y", "z"]


def test_reduce(ctx):
    assert ctx.parallelize([1, 2, 3, 4, 5]).reduce(add) == 15
    assert ctx.parallelize((2 for _ in range(10))).map(lambda x: 1).cache().reduce(add) == 10
    with pytest.raises(ValueError, match=r"Can not reduce\(\) empty RDD"):
        ctx.parallelize([]).reduce(add)


def test_fold(ctx):
    assert ctx.parallelize([1, 2, 3, 4, 5]).fold(0, add) == 15


def test_aggregate(ctx):
    seq_op = (lambda x, y: (x[0] + y, x[1] + 1))
    comb_op = (lambda x, y: (x[0] + y[0], x[1] + y[1]))
    assert ctx.parallelize([1, 2, 3, 4]).aggregate((0, 0), seq_op, comb_op) == (10, 4)
    assert ctx.parallelize([]).aggregate((0, 0), seq_op, comb_op) == (0, 0)


def test_max(ctx):
    rdd = ctx.parallelize([1.0, 5.0, 43.0, 10.0])
    assert rdd.max() == 43.0
    assert rdd.max(key=str) == 5.0


def test_min(ctx):
    rdd = ctx.parallelize([2.0, 5.0, 43.0, 10.0])
    assert rdd.min() == 2.0
    assert rdd.min(key=str) == 10.0


def test_sum(ctx):
    assert ctx.parallelize([1.0, 2.0, 3.0]).sum() == 6.0


def test_count(ctx):
    assert ctx.parallelize([2, 3, 4]).count() == 3


def test_mean(ctx):
    assert ctx.parallelize([1, 2, 3]).mean() == 2.0


def test_variance(ctx):
    # documented as 0.666...
    assert ctx.parallelize([1, 2, 3]).variance() == 0.6666666666666666


def test_stdev(ctx):
    # documented as 0.816...
    assert ctx.parallelize([1, 2, 3]).stdev() == 0.816496580927726


def test_sample_stdev(ctx):
    assert ctx.parallelize([1, 2, 3]).sample_stdev() == 1.0


def test_sample_variance(ctx):
    assert ctx.parallelize([1, 2, 3]).sample_variance() == 1.0


def test_stats_as_dict(ctx):
    # pyspark/statcounter.py StatCounter.asDict (its doc writes 4L for the count)
    assert ctx.parallelize([1., 2., 3., 4.]).stats().as_dict() == {
        "count": 4, "mean": 2.5, "sum": 10.0, "min": 1.0, "max": 4.0,
        "stdev": 1.2909944487358056, "variance": 1.6666666666666667}


def test_count_by_value(ctx):
    assert sorted(ctx.parallelize([1, 2, 1, 2, 2], 2).count_by_value().items()) == [(1, 2), (2, 3)]


def test_top(ctx):
    assert ctx.parallelize([10, 4, 2, 12, 3]).top(1) == [12]
    assert ctx.parallelize([2, 3, 4, 5, 6], 2).top(2) == [6, 5]
    assert ctx.parallelize([10, 4, 2, 12, 3]).top(3, key=str) == [4, 3, 2]


def test_take_ordered(ctx):
    assert ctx.parallelize([10, 1, 2, 9, 3, 4, 5, 6, 7]).take_ordered(6) == [1, 2, 3, 4, 5, 6]
    assert ctx.parallelize([10, 1, 2, 9, 3, 4, 5, 6, 7], 2).take_ordered(6, key=lambda x: -x) == [10, 9, 7, 6, 5, 4]
    assert ctx.empty_rdd().take_ordered(3) == []


def test_take(ctx):
    assert ctx.parallelize([2, 3, 4, 5, 6]).cache().take(2) == [2, 3]
    assert ctx.parallelize([2, 3, 4, 5, 6]).take(10) == [2, 3, 4, 5, 6]
    assert ctx.parallelize(range(100), 100).filter(lambda x: x > 90).take(3) == [91, 92, 93]


def test_first(ctx):
    assert ctx.parallelize([2, 3, 4]).first() == 2
    with pytest.raises(ValueError, match="RDD is empty"):
        ctx.parallelize([]).first()


def test_is_empty(ctx):
    assert ctx.parallelize([]).is_empty() is True
    assert ctx.parallelize([1]).is_empty() is False


def test_collect_as_map(ctx):
    m = ctx.parallelize([(1, 2), (3, 4)]).collect_as_map()
    assert m[1] == 2
    assert m[3] == 4


def test_lookup(ctx):
    keys = range(1000)
    rdd = ctx.parallelize(zip(keys, keys), 10)
    assert rdd.lookup(42) == [42]  # slow
    sorted_rdd = rdd.sort_by_key()
    assert sorted_rdd.lookup(42) == [42]  # fast
    assert sorted_rdd.lookup(1024) == []
    rdd2 = ctx.parallelize([(("a", "b"), "c")]).group_by_key()
    assert list(rdd2.lookup(("a", "b"))[0]) == ["c"]


def test_save_as_text_file(ctx, tmp_path):
    path1 = os.path.join(tmp_path, "text_file1")
    ctx.parallelize(range(10)).save_as_text_file(path1)
    assert "".join(sorted(file_input(glob(path1 + "/part-0000*")))) == "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n"

    path2 = os.path.join(tmp_path, "text2_file2")
    ctx.parallelize(["", "foo", "", "bar", ""]).save_as_text_file(path2)
    assert "".join(sorted(file_input(glob(path2 + "/part-0000*")))) == "\n\n\nbar\nfoo\n"

    path3 = os.path.join(tmp_path, "text3")
    codec = "org.apache.hadoop.io.compress.GzipCodec"
    ctx.parallelize(["foo", "bar"]).save_as_text_file(path3, codec)
    result = sorted(file_input(glob(path3 + "/part*.gz"), openhook=hook_compressed))
    assert "".join([r.decode("utf-8") if isinstance(r, bytes) else r for r in result]) == "bar\nfoo\n"


def test_save_as_text_file_writes_bytes_as_utf8_text(ctx, tmp_path):
    # PySpark yields bytes elements as they are and the JVM decodes them as UTF-8 (BytesToString):
    # valid UTF-8 comes out unchanged, a broken sequence as U+FFFD; other types go through str().
    path = os.path.join(tmp_path, "bytes")
    ctx.parallelize([b"caf\xc3\xa9", b"bad\xff", "s", 7, bytearray(b"x"), None], 1).save_as_text_file(path)
    with open(os.path.join(path, "part-00000"), "rb") as f:
        lines = f.read().decode("utf-8").splitlines()
    assert lines == ["caf\u00e9", "bad\ufffd", "s", "7", "bytearray(b'x')", "None"]
    path2 = os.path.join(tmp_path, "all-bytes")
    ctx.parallelize([b"b\xff", b"a\xe2\x82", b"ok"], 1).save_as_text_file(path2)
    with open(os.path.join(path2, "part-00000"), "rb") as f:
        assert f.read().decode("utf-8").splitlines() == ["b\ufffd", "a\ufffd", "ok"]


# ---- pyspark.core.context ---------------------------------------------------------------------


def test_default_parallelism(ctx):
    assert ctx.default_parallelism > 0


def test_empty_rdd(ctx):
    assert ctx.empty_rdd().count() == 0


def test_range(ctx):
    assert ctx.range(5).collect() == [0, 1, 2, 3, 4]
    assert ctx.range(2, 4).collect() == [2, 3]
    assert ctx.range(1, 7, 2).collect() == [1, 3, 5]
    assert ctx.range(5, 0, -1).collect() == [5, 4, 3, 2, 1]
    assert ctx.range(0, 5, -1).collect() == []
    assert ctx.range(5, num_partitions=1).get_num_partitions() == 1
    assert ctx.range(5, num_partitions=10).get_num_partitions() == 10


def test_range_num_slices_spelling(ctx):
    # PySpark's keyword is numSlices; its snake_case spelling is accepted too
    assert ctx.range(5, num_slices=1).get_num_partitions() == 1
    assert ctx.range(5, num_slices=10).get_num_partitions() == 10
    assert ctx.parallelize([0, 2, 3, 4, 6], num_slices=5).glom().collect() == [[0], [2], [3], [4], [6]]


def test_parallelize(ctx):
    assert ctx.parallelize([0, 2, 3, 4, 6], 5).glom().collect() == [[0], [2], [3], [4], [6]]
    assert ctx.parallelize(range(0, 6, 2), 5).glom().collect() == [[], [0], [], [2], [4]]
    strings = ["a", "b", "c"]
    assert ctx.parallelize(strings, 2).glom().collect() == [["a"], ["b", "c"]]


def test_text_file(ctx, tmp_path):
    path1 = os.path.join(tmp_path, "text1")
    path2 = os.path.join(tmp_path, "text2")
    ctx.parallelize(["x", "y", "z"]).save_as_text_file(path1)
    ctx.parallelize(["aa", "bb", "cc"]).save_as_text_file(path2)
    collected1 = sorted(ctx.text_file(path1, 3).collect())
    collected2 = sorted(ctx.text_file(path2, 4).collect())
    collected3 = sorted(ctx.text_file("{},{}".format(path1, path2), 5).collect())
    assert collected1 == ["x", "y", "z"]
    assert collected2 == ["aa", "bb", "cc"]
    assert collected3 == ["aa", "bb", "cc", "x", "y", "z"]
    # a list names several inputs too
    assert sorted(ctx.text_file([path1, path2]).collect()) == ["aa", "bb", "cc", "x", "y", "z"]


def test_context_union(ctx, tmp_path):
    d = str(tmp_path)
    with open(os.path.join(d, "union-text.txt"), "w") as f:
        _ = f.write("Hello")
    text_rdd = ctx.text_file(d)
    parallelized = ctx.parallelize(["World!"])
    assert sorted(ctx.union([text_rdd, parallelized]).collect()) == ["Hello", "World!"]


def test_binary_records(ctx, tmp_path):
    d = str(tmp_path)
    with open(os.path.join(d, "1.bin"), "w") as f:
        for i in range(3):
            _ = f.write("%04d" % i)
    with open(os.path.join(d, "2.bin"), "w") as f:
        for i in [-1, -2, -10]:
            _ = f.write("%04d" % i)
    assert sorted(ctx.binary_records(d, 4).collect()) == [b"-001", b"-002", b"-010", b"0000", b"0001", b"0002"]


# ---- beyond the docstrings: layouts, orders and numbers checked against PySpark -------------------
# Each expected value below is what PySpark 4.3 returned for the same code at the same default
# parallelism (local[2] for ``ctx``, local[4] for ``ctx4``), with PYTHONHASHSEED=0.


def test_unsorted_orders_match_pyspark_local2(ctx):
    # Int keys hash as in PySpark, so hash-partitioned outputs come out in PySpark's order.
    assert ctx.parallelize([1, 1, 2, 3]).distinct().collect() == [2, 1, 3]
    assert ctx.parallelize([5, 1, 1, 2, 3, 9, 4, 4]).distinct().collect() == [2, 4, 5, 1, 3, 9]
    assert ctx.parallelize([(i % 5, i) for i in range(20)]).group_by_key().map_values(list).collect() == [
        (0, [0, 5, 10, 15]), (2, [2, 7, 12, 17]), (4, [4, 9, 14, 19]), (1, [1, 6, 11, 16]), (3, [3, 8, 13, 18])]
    assert ctx.parallelize([(i % 7, i) for i in range(50)], 3).reduce_by_key(add).collect() == [
        (0, 196), (3, 168), (6, 189), (1, 154), (4, 175), (2, 161), (5, 182)]
    assert ctx.parallelize([(i % 4, i) for i in range(8)]).join(
        ctx.parallelize([(1, "a"), (2, "b"), (5, "c")])).collect() == [
        (1, (1, "a")), (1, (5, "a")), (2, (2, "b")), (2, (6, "b"))]
    assert ctx.parallelize([1, 2, 3, 4, 5, 6]).subtract(ctx.parallelize([2, 4])).collect() == [1, 5, 6, 3]
    assert ctx.parallelize([5, 4, 3, 2, 1, 6]).intersection(ctx.parallelize([6, 4, 2])).collect() == [4, 2, 6]
    assert [(x, list(y)) for x, y in ctx.parallelize([1, 1, 2, 3, 5, 8]).group_by(lambda x: x % 2).collect()] == [
        (0, [2, 8]), (1, [1, 1, 3, 5])]
    pairs = ctx.parallelize([1, 2, 3, 4, 2, 4, 1]).map(lambda x: (x, x))
    assert pairs.partition_by(2).glom().collect() == [[(2, 2), (4, 4), (2, 2), (4, 4)], [(1, 1), (3, 3), (1, 1)]]


def test_unsorted_orders_match_pyspark_local4(ctx4):
    assert ctx4.default_parallelism == 4
    assert ctx4.parallelize([1, 1, 2, 3]).distinct().collect() == [1, 2, 3]
    assert ctx4.parallelize([1, 10, 2, 3, 4, 5]).intersection(ctx4.parallelize([1, 6, 2, 3, 7, 8])).collect() == [1, 2, 3]
    assert ctx4.range(5).glom().collect() == [[0], [1], [2], [3, 4]]


def test_default_slicing_matches_pyspark(ctx):
    assert ctx.range(5).glom().collect() == [[0, 1], [2, 3, 4]]
    assert ctx.parallelize(range(10), 4).glom().map(len).collect() == [2, 3, 2, 3]
    assert ctx.parallelize(range(1000), 7).glom().map(len).collect() == [142, 143, 143, 143, 143, 143, 143]
    assert ctx.parallelize(list(range(7)), 4).glom().map(len).collect() == [1, 2, 2, 2]


def test_list_slicing_matches_pyspark_batches(ctx):
    assert ctx.parallelize(list(range(10)), 4).glom().collect() == [[0, 1], [2, 3], [4, 5], [6, 7, 8, 9]]
    assert ctx.parallelize(list(range(1000)), 7).glom().map(len).collect() == [142] * 6 + [148]
    assert ctx.parallelize(list(range(3000)), 2).glom().map(len).collect() == [1024, 1976]


def test_save_as_text_file_part_files(ctx, ctx4, tmp_path):
    ctx.parallelize(range(10)).save_as_text_file(str(tmp_path / "two"))
    assert [open(p).read() for p in sorted(glob(str(tmp_path / "two" / "part-*")))] == [
        "0\n1\n2\n3\n4\n", "5\n6\n7\n8\n9\n"]
    assert os.path.exists(tmp_path / "two" / "_SUCCESS")
    ctx4.parallelize(range(10)).save_as_text_file(str(tmp_path / "four"))
    assert [open(p).read() for p in sorted(glob(str(tmp_path / "four" / "part-*")))] == [
        "0\n1\n", "2\n3\n4\n", "5\n6\n", "7\n8\n9\n"]
    ctx.parallelize(["foo", "bar"]).save_as_text_file(str(tmp_path / "gz"), "org.apache.hadoop.io.compress.GzipCodec")
    names = sorted(os.path.basename(p) for p in glob(str(tmp_path / "gz" / "part-*")))
    assert names == ["part-00000.gz", "part-00001.gz"]
    assert gzip.open(tmp_path / "gz" / "part-00001.gz").read() == b"bar\n"


def test_sample_matches_pyspark_for_a_seed(ctx):
    # dagrun's sampler is PySpark's RDDSampler: same seed, same partitioning -> same sample
    assert ctx.parallelize(range(100), 4).sample(False, 0.1, 81).count() == 11
    assert ctx.parallelize(range(20), 4).sample(True, 0.5, 7).collect() == [6, 9, 10, 13, 17]
    assert ctx.parallelize(range(40), 4).sample(False, 0.3, 42).collect() == [
        0, 1, 3, 4, 7, 16, 17, 18, 19, 22, 23, 26, 29, 33, 34, 36, 39]
    assert ctx.parallelize(range(4), 2).sample(True, 25.0, 3).count() == 75


def test_stats_match_pyspark(ctx):
    s = ctx.parallelize([1., 2., 3., 4.]).stats()
    assert (s.count(), s.mean(), s.sum(), s.min(), s.max()) == (4, 2.5, 10.0, 1.0, 4.0)
    assert (s.variance(), s.sample_variance()) == (1.25, 1.6666666666666667)
    assert (s.stdev(), s.sample_stdev()) == (1.118033988749895, 1.2909944487358056)
    assert s.as_dict(sample=True) == {"count": 4, "mean": 2.5, "sum": 10.0, "min": 1.0, "max": 4.0,
                                      "stdev": 1.118033988749895, "variance": 1.25}
    assert repr(s) == "(count: 4, mean: 2.5, stdev: 1.118033988749895, max: 4.0, min: 1.0)"
    u = ctx.parallelize([1.5] * 3 + [x / 3 for x in range(100)], 2).stats()
    assert (u.count(), u.mean(), u.variance()) == (103, 16.063106796116518, 96.24925377823877)
    empty = ctx.parallelize([]).stats()
    assert repr(empty) == "(count: 0, mean: 0.0, stdev: nan, max: -inf, min: inf)"
    assert ctx.parallelize([]).mean() == 0.0
    assert ctx.parallelize([]).sum() == 0


def test_more_actions_match_pyspark(ctx):
    assert ctx.empty_rdd().get_num_partitions() == 0
    assert ctx.empty_rdd().is_empty() is True
    assert ctx.parallelize(range(10), 4).filter(lambda x: x % 3).zip_with_index().collect() == [
        (1, 0), (2, 1), (4, 2), (5, 3), (7, 4), (8, 5)]
    assert ctx.parallelize([("a", 3), ("b", 1), ("c", 2)]).top(2, key=lambda kv: kv[1]) == [("a", 3), ("c", 2)]
    assert sorted(ctx.parallelize("abracadabra").count_by_value().items()) == [
        ("a", 5), ("b", 2), ("c", 1), ("d", 1), ("r", 2)]
    assert ctx.parallelize([1, 2], 2).cartesian(ctx.parallelize(["a", "b", "c"], 3)).glom().collect() == [
        [(1, "a")], [(1, "b")], [(1, "c")], [(2, "a")], [(2, "b")], [(2, "c")]]
    # the zero value is used once per partition and once more on the driver
    assert ctx.parallelize([1, 2, 3], 3).fold(10, add) == 46
    assert ctx.parallelize([1, 2, 3], 3).aggregate(1, lambda a, b: a * b, add) == 7


def test_a_shuffle_of_no_partitions_has_none_as_in_pyspark(ctx):
    empty = ctx.empty_rdd()
    for shuffled in (empty.reduce_by_key(add), empty.group_by_key(), empty.distinct(), empty.partition_by(),
                     empty.join(ctx.empty_rdd()), empty.repartition_and_sort_within_partitions()):
        assert shuffled.get_num_partitions() == 0
        assert shuffled.collect() == []
    assert empty.reduce_by_key(add, 3).get_num_partitions() == 3  # a count given is kept


def test_sort_by_key_descending_matches_pyspark(ctx):
    tmp = [("a", 1), ("b", 2), ("1", 3), ("d", 4), ("2", 5)]
    assert ctx.parallelize(tmp).sort_by_key().collect() == [("1", 3), ("2", 5), ("a", 1), ("b", 2), ("d", 4)]
    assert ctx.parallelize(tmp).sort_by_key(False).collect() == [("d", 4), ("b", 2), ("a", 1), ("2", 5), ("1", 3)]
    rdd = ctx.parallelize([(i % 17, i) for i in range(40)], 4).sort_by_key(False, 3)
    assert rdd.get_num_partitions() == 3
    assert rdd.collect() == sorted(((i % 17, i) for i in range(40)), key=lambda kv: -kv[0])
    assert rdd.glom().map(len).collect() == [12, 13, 15]


def test_repartition_and_coalesce_with_shuffle(ctx):
    rdd = ctx.parallelize(range(10), 3)
    assert rdd.repartition(4).get_num_partitions() == 4
    assert sorted(rdd.repartition(4).collect()) == list(range(10))
    assert rdd.coalesce(2, True).get_num_partitions() == 2
    assert sorted(rdd.coalesce(2, True).collect()) == list(range(10))
    assert sorted(ctx.parallelize([1, 2, 3, 4, 5, 6, 7], 4).repartition(3).collect()) == [1, 2, 3, 4, 5, 6, 7]
    assert ctx.parallelize([1, 2, 3, 4, 5], 3).coalesce(2).glom().collect() == [[1], [2, 3, 4, 5]]
