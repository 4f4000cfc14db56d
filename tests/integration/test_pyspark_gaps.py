"""The PySpark behaviours Spark's own test_rdd.py and test_join.py check, which dagrun lacked."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta

import pytest

from dagrun.pyspark import SparkConf, SparkContext


@pytest.fixture
def sc():
    with SparkContext("inline[4]", "gaps") as sc:
        yield sc


def test_a_union_of_rdds_with_one_partitioner_keeps_it_and_a_join_after_it_does_not_reshuffle(sc):
    rdd = sc.parallelize(range(10)).map(lambda x: (x, x))
    parted = rdd.partitionBy(2)
    assert parted.union(parted).getNumPartitions() == 2
    assert parted.union(parted).partitioner == parted.partitioner
    assert parted.union(rdd).getNumPartitions() == rdd.getNumPartitions() + 2
    tracker = sc.statusTracker()
    for group, other, stages in (("same", parted, 2), ("other", rdd, 3)):
        sc.setJobGroup(group, "join")
        assert sorted(parted.join(other).collect()) == [(i, (i, i)) for i in range(10)]
        (job,) = tracker.getJobIdsForGroup(group)
        assert len(tracker.getJobInfo(job).stageIds) == stages
    assert sorted(parted.union(parted).groupByKey().mapValues(sorted).collect()) == [(i, [i, i]) for i in range(10)]


def test_fused_narrow_steps_take_one_id_as_in_pyspark(sc):
    rdd = sc.parallelize(range(10))
    rdd2 = rdd.map(str).filter(bool)
    assert rdd2.id() == rdd.id() + 1 and rdd2.id() == rdd2.id()


def test_zip_checks_partition_counts_at_the_call(sc):
    with pytest.raises(ValueError, match="same number of partitions"):
        sc.parallelize(range(5), 2).zip(sc.parallelize(range(5), 3))


def test_to_local_iterator_prefetches_the_next_partition(sc):
    rdd = sc.parallelize(range(2), 2)
    prefetching = rdd.map(lambda x: datetime.now()).toLocalIterator(prefetchPartitions=True)
    plain = rdd.map(lambda x: datetime.now()).toLocalIterator()
    first_prefetched, first = next(prefetching), next(plain)
    time.sleep(1.5)
    assert next(plain) - first >= timedelta(seconds=1.5)
    assert next(prefetching) - first_prefetched < timedelta(seconds=1)


def test_text_file_is_named_by_its_path_and_gives_bytes_without_unicode(sc, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("h\u00e9llo\nworld\n", encoding="utf-8")
    assert sc.textFile(str(path)).name() == str(path)
    assert sc.range(5).name() is None
    assert sc.textFile(str(path), use_unicode=False).collect() == ["h\u00e9llo".encode(), b"world"]


def test_parallelize_takes_its_data_at_the_call(sc):
    data = [1, 2, 3]
    rdd = sc.parallelize(data, 2)
    data.append(4)
    data[0] = 0
    assert rdd.collect() == [1, 2, 3]


def test_tree_aggregate_uses_the_zero_once_a_partition_and_combines_in_pysparks_tree(sc):
    from operator import add

    assert sc.parallelize(range(10), 4).treeAggregate(1, add, add) == 49  # 45 + one zero for each of 4
    assert sc.emptyRDD().treeAggregate(7, add, add) == 7
    assert sc.parallelize(list("abcdefghij"), 10).treeReduce(add) == "acegibdfhj"  # two levels, as PySpark's
    assert sc.parallelize(range(100), 20).treeAggregate(0, add, add, depth=3) == 4950
    with pytest.raises(ValueError, match="Cannot reduce empty RDD"):
        sc.emptyRDD().treeReduce(add)


@pytest.mark.parametrize("action", ["stats", "mean", "variance", "stdev", "sampleStdev", "sampleVariance", "top",
                                    "countByValue", "countByKey", "reduceByKeyLocally", "histogram"])
def test_actions_that_pyspark_ends_with_reduce_raise_on_an_rdd_without_partitions(sc, action):
    from operator import add

    args = {"top": (1,), "reduceByKeyLocally": (add,), "histogram": ([0, 1, 2],)}.get(action, ())
    with pytest.raises(ValueError, match="empty RDD"):
        getattr(sc.emptyRDD(), action)(*args)
    empty_partitions = sc.parallelize([], 2)  # partitions, though empty: an answer, as in PySpark
    if action not in ("top", "reduceByKeyLocally", "countByKey", "countByValue", "histogram"):
        assert getattr(empty_partitions, action)(*args) is not None
    assert empty_partitions.histogram([0, 1, 2]) == ([0, 1, 2], [0, 0])


def test_take_ordered_refuses_a_negative_count(sc):
    with pytest.raises(ValueError, match="top N cannot be negative"):
        sc.parallelize([3, 1, 2]).takeOrdered(-1)
    assert sc.parallelize([3, 1, 2]).top(-1) == []  # PySpark's top takes nlargest(-1): nothing


def test_the_partitioner_and_stats_have_pysparks_names(sc):
    rdd = sc.parallelize([(1, 2), (3, 4)]).partitionBy(3)
    part = rdd.partitioner
    assert part.numPartitions == 3 and callable(part.partitionFunc) and part(5) == 5 % 3
    assert rdd.mapValues(str).partitioner == part and rdd.map(lambda kv: kv).partitioner is None
    stats = sc.parallelize([1.0, 2.0, 3.0]).stats()
    assert stats.asDict()["count"] == 3 and stats.sampleStdev() == 1.0 and stats.sampleVariance() == 1.0
    assert stats.copy().mergeStats(stats).count() == 6


def test_partition_by_an_equal_partitioner_is_the_rdd_itself(sc):
    parted = sc.parallelize([(1, 2), (3, 4)]).partitionBy(2)
    assert parted.partitionBy(2) is parted and parted.partitionBy(3) is not parted


def test_take_of_a_non_integer_count_is_refused_on_the_driver(sc):
    with pytest.raises(TypeError, match="int"):
        sc.parallelize(range(5)).take(2.5)
    assert sc.parallelize(range(5)).take(True) == [0]  # bool is an int, as in PySpark


def test_key_value_steps_index_a_record_as_pyspark_does(sc):
    triples = sc.parallelize([(1, 2, 3), (1, 4, 5), (2, 6, 7)], 2)
    assert triples.mapValues(str).collect() == [(1, "2"), (1, "4"), (2, "6")]
    assert triples.flatMapValues(lambda v: [v, -v]).collect() == [(1, 2), (1, -2), (1, 4), (1, -4), (2, 6), (2, -6)]
    other = sc.parallelize([(1, 0, 9)])
    assert sorted(triples.join(other).collect()) == [(1, (2, 0)), (1, (4, 0))]
    assert sorted(triples.leftOuterJoin(other).collect()) == [(1, (2, 0)), (1, (4, 0)), (2, (6, None))]
    assert triples.subtractByKey(other).collect() == [(2, 6)]
    with pytest.raises(Exception, match="IndexError"):
        sc.parallelize([(1,)]).mapValues(str).collect()


def test_stats_min_and_max_are_floats_and_a_nan_is_kept(sc):
    stats = sc.parallelize([1, 2, 3, 4], 2).stats()
    assert repr(stats) == "(count: 4, mean: 2.5, stdev: 1.118033988749895, max: 4.0, min: 1.0)"
    assert type(stats.max()) is float and type(stats.min()) is float
    with_nan = sc.parallelize([1.0, float("nan"), 3.0], 3).stats()
    assert with_nan.max() != with_nan.max() and with_nan.min() != with_nan.min()


@pytest.mark.parametrize("data, min_partitions, partitions", [
    (b"a\nb\nc", None, [["a", "b"], ["c"], []]),  # Hadoop's goal size 5 // 2, and a 1-byte tail split
    (b"0\n1\n2\n3\n4\n", 5, [["0", "1"], ["2"], ["3"], ["4"], []]),  # a line starting at a split's end is its
    (b"0\n1\n2\n3\n4\n5", 3, [["0", "1"], ["2", "3"], ["4"], ["5"]]),
    (b"a\nb\n", 0, [["a", "b"], []]),  # 0 means the default, 2
    (b"", 4, []),  # no split for an empty file
    (b"a\rb\rc\n", None, [["a", "b"], ["c"]]),  # a lone "\r" ends a line
    (b"a\rb\r", None, [["a", "b"], []]),
    (b"a\r\r\nb\n", None, [["a", ""], ["b"]]),
    (b"aaaa\rbbbb\rcccc\r", 2, [["aaaa", "bbbb"], ["cccc"], []]),
])
def test_text_file_partitions_are_hadoops(sc, tmp_path, data, min_partitions, partitions):
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    rdd = sc.textFile(str(path), min_partitions)
    assert rdd.getNumPartitions() == len(partitions)
    assert rdd.glom().collect() == partitions
    assert rdd.count() == sum(map(len, partitions))


def _files(folder, sizes):
    folder.mkdir()
    for i, size in enumerate(sizes):
        (folder / f"f{i:02d}.txt").write_bytes(b"x" * (size - 1) + b"\n" if size else b"")
    return str(folder)


# Partition sizes (files per partition) that PySpark 4.3 gave for these folders on local[2]; the files of
# a folder have equal sizes, so the order Hadoop lists them in does not change the grouping.
@pytest.mark.parametrize("sizes, min_partitions, text, binary", [
    ([10] * 4, None, [2, 2], [4]),
    ([10] * 4, 1, [4], [4]),
    ([10] * 4, 3, [2, 2], [4]),
    ([10] * 4, 5, [1, 1, 1, 1], [4]),
    ([0, 7, 0, 7], 1, [2, 2], [4]),  # the empty files go last, together
    ([0, 7, 0, 7], 2, [1, 1, 2], [4]),
    ([0, 0, 0], 3, [3], [3]),
    ([3_000_000] * 9, None, [5, 4], [9]),
    ([3_000_000] * 9, 3, [3, 3, 3], [8, 1]),
    ([3_000_000] * 9, 7, [2, 2, 2, 2, 1], [4, 4, 1]),
])
def test_whole_file_partitions_are_pysparks(tmp_path, sizes, min_partitions, text, binary):
    folder = _files(tmp_path / "in", sizes)
    with SparkContext("inline[2]", "whole files") as sc:  # binaryFiles' sizes follow the parallelism: local[2]'s
        for rdd, want in ((sc.wholeTextFiles(folder, min_partitions), text),
                          (sc.binaryFiles(folder, min_partitions), binary)):
            assert rdd.glom().map(len).collect() == want


def test_whole_text_files_replace_invalid_utf8_and_give_bytes_without_unicode(sc, tmp_path):
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\nok\n")
    name = f"file:{tmp_path}/latin1.txt"
    assert sc.wholeTextFiles(str(tmp_path)).collect() == [(name, "caf\ufffd\nok\n")]
    assert sc.wholeTextFiles(str(tmp_path), use_unicode=False).collect() == [(name.encode(), "caf\ufffd\nok\n".encode())]


def test_a_pickle_file_is_read_a_file_a_partition_empty_ones_too(sc, tmp_path):
    sc.parallelize(range(25), 3).saveAsPickleFile(str(tmp_path / "p"))
    assert sc.pickleFile(str(tmp_path / "p")).glom().map(len).collect() == [8, 8, 9]
    sc.parallelize([1], 3).saveAsPickleFile(str(tmp_path / "q"))
    assert sc.pickleFile(str(tmp_path / "q"), 1).glom().collect() == [[], [], [1]]


def test_whole_text_files_decompress_by_suffix_as_hadoop_does(sc, tmp_path):
    import gzip

    (tmp_path / "plain.txt").write_text("hello\n" * 90)
    with gzip.open(tmp_path / "packed.txt.gz", "wt") as f:
        f.write("hello\n" * 90)
    assert sorted(sc.wholeTextFiles(str(tmp_path)).mapValues(len).collect()) == [
        (f"file:{tmp_path}/packed.txt.gz", 540), (f"file:{tmp_path}/plain.txt", 540)]
    assert sc.binaryFiles(str(tmp_path / "packed.txt.gz")).mapValues(len).collect()[0][1] < 540  # bytes as stored


def test_a_folder_inside_an_input_folder_is_refused_by_text_file_and_skipped_by_whole_files(sc, tmp_path):
    (tmp_path / "top.txt").write_text("top\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.txt").write_text("deep\n")
    with pytest.raises(IsADirectoryError, match="holds the folder"):
        sc.textFile(str(tmp_path)).collect()
    assert sorted(sc.textFile(f"{tmp_path}/*").collect()) == ["deep", "top"]
    assert sc.wholeTextFiles(str(tmp_path)).collect() == [(f"file:{tmp_path}/top.txt", "top\n")]
    assert sc.binaryFiles(str(tmp_path)).keys().collect() == [f"file:{tmp_path}/top.txt"]


def test_binary_records_of_a_small_file_is_one_partition(sc, tmp_path):
    (tmp_path / "r.bin").write_bytes(bytes(range(256)) * 4)
    rdd = sc.binaryRecords(str(tmp_path / "r.bin"), 256)
    assert rdd.getNumPartitions() == 1 and rdd.count() == 4


@pytest.mark.parametrize("data, slices, want", [([], 0, 0.0), ([], 2, 0.0), ([0.1] * 10, 3, None)])
def test_finished_approximate_actions_have_confidence_one(sc, data, slices, want):
    rdd = sc.parallelize(data, slices) if slices else sc.emptyRDD()
    for value, expected in ((rdd.sumApprox(100), 1.0 if data else 0.0), (rdd.meanApprox(100), 0.1 if data else 0.0)):
        assert (float(value), value.confidence, value.low, value.high) == (expected, 1.0, expected, expected)


def test_parallelize_takes_a_slice_count_that_int_accepts(sc):
    assert sc.parallelize([1, 2, 3], "2").glom().collect() == sc.parallelize([1, 2, 3], 2.0).glom().collect() == [[1], [2, 3]]


def test_repartition_deals_batches_of_ten_from_sparks_random_start(sc):
    # PySpark 4.3's partitions, element for element (Spark's XORShiftRandom picks each map's start)
    assert sc.parallelize(range(20), 2).repartition(3).glom().collect() == [list(range(10)), list(range(10, 20)), []]
    assert sc.parallelize(range(30), 3).coalesce(5, True).glom().map(len).collect() == [0, 0, 0, 0, 30]
    assert sc.parallelize(list(range(57)), 5).repartition(4).glom().collect() == [
        [22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 43, 54, 55, 56],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 32],
        [10, 21],
        [33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53]]
    assert sc.parallelize(range(1000), 2).repartition(20).glom().map(len).collect() == [
        40, 40, 40, 40, 50, 50, 50, 50, 50, 60, 60, 60, 60, 60, 50, 50, 50, 50, 50, 40]


def test_a_sort_of_small_partitions_cuts_them_where_pyspark_does(sc):
    # PySpark 4.3's partitions (its sortByKey samples with seed 1 and cuts the sorted sample)
    assert sc.parallelize(range(20), 2).sortBy(lambda x: x).glom().collect() == [list(range(11)), list(range(11, 20))]
    assert sc.parallelize([], 2).sortByKey(numPartitions=3).getNumPartitions() == 2  # the RDD itself
    data = [(x * 7919 % 1000, x) for x in range(1000)]
    parts = sc.parallelize(data, 4).sortByKey(numPartitions=5).glom().collect()
    assert [len(p) for p in parts] == [185, 221, 164, 234, 196]
    assert [x for p in parts for x in p] == sorted(data, key=lambda kv: kv[0])


def test_a_sort_of_no_records_gives_none_on_either_path(sc, tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    assert sc.binaryRecords(str(tmp_path / "empty.bin"), 10).sortBy(lambda r: r[:2], numPartitions=3).collect() == []
    assert sc.emptyRDD().sortBy(lambda x: x).getNumPartitions() == 0
    assert sc.parallelize([], 3).map(lambda x: (x, x)).sortByKey(numPartitions=2).collect() == []


def test_checkpoint_flags_follow_spark(sc, tmp_path):
    fresh = sc.parallelize([1, 2], 2)
    if sc.getCheckpointDir() is None:
        with pytest.raises(RuntimeError, match="Checkpoint directory has not been set"):
            fresh.checkpoint()
    sc.setCheckpointDir(str(tmp_path / "ck"))
    assert sc.getCheckpointDir().startswith(f"file:{tmp_path}/ck/") and len(os.listdir(tmp_path / "ck")) == 1
    fresh.checkpoint()
    assert fresh.is_checkpointed and not fresh.isCheckpointed()  # marked, not yet computed
    assert fresh.getCheckpointFile() is None
    fresh.count()
    assert fresh.isCheckpointed()
    # as Spark's test_context.py checks: rdd-N in the application's folder of the checkpoint directory
    assert os.path.dirname(fresh.getCheckpointFile()) == sc.getCheckpointDir()
    assert sorted(sc.pickleFile(fresh.getCheckpointFile()).collect()) == [1, 2]
    local = sc.parallelize([1, 2], 2)
    local.localCheckpoint()
    assert local.isLocallyCheckpointed() and not local.isCheckpointed()
    local.count()
    assert local.isLocallyCheckpointed() and local.isCheckpointed() and not local.is_checkpointed


@pytest.mark.parametrize("shuffle", [
    lambda kv: kv.partitionBy(0), lambda kv: kv.reduceByKey(lambda a, b: a + b, 0),
    lambda kv: kv.sortByKey(True, 0), lambda kv: kv.groupByKey(0), lambda kv: kv.distinct(0),
    lambda kv: kv.join(kv, -1)])
def test_no_shuffle_makes_zero_partitions(sc, shuffle):
    # PySpark makes an RDD of no partitions there, and the data is silently gone
    with pytest.raises(ValueError, match="num_partitions must be at least 1"):
        shuffle(sc.parallelize([(1, 1)], 2))


def test_grouped_values_are_result_iterables(sc):
    from dagrun.pyspark import ResultIterable

    values = sc.parallelize([(1, 2), (1, 3)], 1).groupByKey().first()[1]
    assert isinstance(values, ResultIterable) and values.data == [2, 3] and len(values) == 2
    with pytest.raises(TypeError):
        values[0]  # as PySpark's: iterable and sized, not indexable
    x, y = sc.parallelize([("a", 1), ("b", 4)]), sc.parallelize([("a", 2)])
    (key, groups), = x.cogroup(y).filter(lambda kv: kv[0] == "a").collect()
    assert all(isinstance(g, ResultIterable) for g in groups) and [list(g) for g in groups] == [[1], [2]]
    assert sorted((k, list(v)) for k, v in sc.parallelize([1, 2, 3]).groupBy(lambda n: n % 2).collect()) == [
        (0, [2]), (1, [1, 3])]
    assert [len(g) for g in x.groupWith(y, y).lookup("a")[0]] == [1, 1, 1]


def test_the_active_context_as_spark_test_context_checks_it():
    # Spark's python/pyspark/tests/test_context.py, ContextTests
    with pytest.raises(ValueError):
        SparkContext("an-invalid-master-name")
    context = SparkContext("inline", "active")
    assert SparkContext._active_spark_context is context and context.startTime > 0 and context.resources == {}
    context.stop()
    assert SparkContext._active_spark_context is None
    with pytest.raises(RuntimeError):
        with SparkContext("inline", "raises"):
            raise RuntimeError()
    assert SparkContext._active_spark_context is None
    with SparkContext("inline", "stops") as inner:
        inner.stop()
    assert SparkContext._active_spark_context is None
    with SparkContext.getOrCreate() as made:
        assert SparkContext.getOrCreate() is made


def test_stat_counter_as_spark_test_statcounter_checks_it():
    import math

    from dagrun.pyspark import StatCounter

    for empty in ([], None):  # SPARK-38854
        stats = StatCounter(empty)
        assert math.isnan(stats.variance()) and stats.count() == 0 and stats.mean() == 0.0
        assert math.isinf(stats.max()) and math.isinf(stats.min())
    stats = StatCounter([1.0, 2.0, 3.0, 4.0])
    stats.mergeStats(stats)
    assert (stats.count(), stats.sum(), stats.variance()) == (8, 20.0, 1.25)
    assert stats.sampleVariance() == pytest.approx(1.4285714285714286)


@pytest.mark.parametrize("master, conf, calls", [
    ("local[2]", {}, 1),  # Spark's local mode: a task's first error fails the job
    ("inline[2,3]", {}, 3),  # local[N,F]: F attempts
    ("inline[2]", {"dagrun.max_attempts": "2"}, 2),  # dagrun's own setting wins
])
def test_a_local_master_fails_the_job_at_a_tasks_first_error_as_spark_does(tmp_path, master, conf, calls):
    path = tmp_path / "calls"

    def boom(x):
        with open(path, "a") as f:
            f.write("called\n")
        raise ValueError("boom")

    spark_conf = SparkConf().setMaster(master).setAppName("attempts")
    for k, v in conf.items():
        spark_conf.set(k, v)
    with SparkContext(conf=spark_conf) as sc:
        with pytest.raises(Exception, match="boom"):
            sc.parallelize([1], 1).map(boom).collect()
    assert len(path.read_text().splitlines()) == calls
