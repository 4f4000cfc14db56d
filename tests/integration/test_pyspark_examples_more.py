"""More of PySpark's documented examples, in snake_case: the less common RDD methods
(``zip``, ``histogram``, tree aggregations, sampling, ``pipe``, approximate actions,
``to_local_iterator``, ``id``) and the shared variables (``broadcast``, ``accumulator``).

Expected values are PySpark's documented outputs (``pyspark/core/rdd.py``,
``pyspark/core/context.py``, ``pyspark/accumulators.py``).  Accumulators also run on real
local executors, and under forced speculation, where an update must count once per
committed task.
"""

from __future__ import annotations

import sys
from operator import add

import pytest

import dagrun


def test_zip(ctx):
    x = ctx.parallelize(range(0, 5))
    y = ctx.parallelize(range(1000, 1005))
    assert x.zip(y).collect() == [(0, 1000), (1, 1001), (2, 1002), (3, 1003), (4, 1004)]


def test_zip_needs_the_same_partitions_and_counts(ctx):
    with pytest.raises(ValueError, match="same number of partitions"):
        ctx.parallelize(range(5), 2).zip(ctx.parallelize(range(5), 3)).collect()
    with pytest.raises(dagrun.JobFailed, match="same number of elements"):
        ctx.parallelize(range(5), 1).zip(ctx.parallelize(range(6), 1)).collect()


def test_histogram(ctx):
    rdd = ctx.parallelize(range(51))
    assert rdd.histogram(2) == ([0, 25, 50], [25, 26])
    assert rdd.histogram([0, 5, 25, 50]) == ([0, 5, 25, 50], [5, 20, 26])
    assert rdd.histogram([0, 15, 30, 45, 60]) == ([0, 15, 30, 45, 60], [15, 15, 15, 6])  # evenly spaced
    rdd = ctx.parallelize(["ab", "ac", "b", "bd", "ef"])
    assert rdd.histogram(("a", "b", "c")) == (("a", "b", "c"), [2, 2])


def test_histogram_edge_cases(ctx):
    assert ctx.parallelize([1.0, 2.5, None, float("nan"), 4.0]).histogram(3) == ([1.0, 2.0, 3.0, 4.0], [1, 1, 1])
    assert ctx.parallelize([7, 7, 7]).histogram(4) == ([7, 7], [3])
    with pytest.raises(ValueError, match="empty RDD"):
        ctx.parallelize([], 2).histogram(2)
    for bad in ([1], [2, 1], [1, 1, 2], [0, None]):
        with pytest.raises(ValueError):
            ctx.parallelize([1]).histogram(bad)


def test_tree_reduce_and_tree_aggregate(ctx):
    rdd = ctx.parallelize([-5, -4, -3, -2, -1, 1, 2, 3, 4], 10)
    assert [rdd.tree_reduce(add, d) for d in (2, 1, 2, 5, 10)] == [-5] * 5
    assert [rdd.tree_aggregate(0, add, add, d) for d in (2, 1, 2, 5, 10)] == [-5] * 5
    assert ctx.parallelize([], 3).tree_aggregate(0, add, add) == 0
    with pytest.raises(ValueError, match="Depth cannot be smaller than 1"):
        rdd.tree_reduce(add, 0)


def test_to_local_iterator(ctx):
    rdd = ctx.parallelize(range(10))
    assert [x for x in rdd.to_local_iterator()] == list(range(10))


def test_take_sample(ctx):
    rdd = ctx.parallelize(range(0, 10))
    assert len(rdd.take_sample(True, 20, 1)) == 20
    assert len(rdd.take_sample(False, 5, 2)) == 5
    assert len(rdd.take_sample(False, 15, 3)) == 10
    assert sorted(rdd.take_sample(False, 15, 3)) == list(range(10))
    assert rdd.take_sample(False, 5, 2) == rdd.take_sample(False, 5, 2)  # a seed repeats
    with pytest.raises(ValueError, match="Sample size cannot be greater"):
        ctx.range(0, 10).take_sample(False, sys.maxsize)


def test_random_split(ctx):
    rdd = ctx.parallelize(range(500), 1)
    rdd1, rdd2 = rdd.random_split([2, 3], 17)
    assert len(rdd1.collect() + rdd2.collect()) == 500
    assert 150 < rdd1.count() < 250 and 250 < rdd2.count() < 350
    assert sorted(rdd1.collect() + rdd2.collect()) == list(range(500))  # disjoint and complete


def test_sample_by_key(ctx):
    fractions = {"a": 0.2, "b": 0.1}
    rdd = ctx.parallelize(fractions.keys()).cartesian(ctx.parallelize(range(0, 1000)))
    sample = dict(rdd.sample_by_key(False, fractions, 2).group_by_key().collect())
    assert 100 < len(sample["a"]) < 300 and 50 < len(sample["b"]) < 150
    assert max(sample["a"]) <= 999 and min(sample["a"]) >= 0
    assert max(sample["b"]) <= 999 and min(sample["b"]) >= 0


def test_pipe(ctx):
    assert ctx.parallelize(["1", "2", "", "3"]).pipe("cat").collect() == ["1", "2", "", "3"]
    with pytest.raises(dagrun.JobFailed, match="exited with error code"):
        ctx.parallelize(["x"]).pipe("false", check_code=True).collect()


def test_approximate_actions(ctx):
    rdd = ctx.parallelize(range(1000), 10)
    assert rdd.count_approx(1000, 1.0) == 1000
    r = sum(range(1000))
    assert abs(rdd.sum_approx(1000) - r) / r < 0.05
    r = sum(range(1000)) / 1000.0
    assert abs(rdd.mean_approx(1000) - r) / r < 0.05
    n = ctx.parallelize(range(1000)).map(str).count_approx_distinct()
    assert 900 < n < 1100
    n = ctx.parallelize([i % 20 for i in range(1000)]).count_approx_distinct()
    assert 16 < n < 24


def test_id(ctx):
    a, b = ctx.parallelize([1, 2]), ctx.parallelize([2, 3])
    assert isinstance(a.id(), int) and a.id() != b.id()


def test_broadcast(ctx):
    b = ctx.broadcast([1, 2, 3, 4, 5])
    assert b.value == [1, 2, 3, 4, 5]
    assert ctx.parallelize([0, 0]).flat_map(lambda x: b.value).collect() == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    b.unpersist()
    large_broadcast = ctx.broadcast(range(10000))
    assert ctx.parallelize([0]).map(lambda x: len(large_broadcast.value)).collect() == [10000]


class VectorAccumulatorParam(dagrun.AccumulatorParam):
    def zero(self, value):
        return [0.0] * len(value)

    def add_in_place(self, val1, val2):
        for i in range(len(val1)):
            val1[i] += val2[i]
        return val1


def accumulator_examples(ctx):
    global a, va
    a = ctx.accumulator(1)
    assert a.value == 1
    a.value = 2
    a += 5
    assert a.value == 7
    assert ctx.accumulator(1.0).value == 1.0 and ctx.accumulator(1j).value == 1j
    rdd = ctx.parallelize([1, 2, 3])

    def f(x):
        global a
        a += x

    rdd.foreach(f)
    assert a.value == 13
    b = ctx.accumulator(0)
    rdd.foreach(lambda x: b.add(x))
    assert b.value == 6
    va = ctx.accumulator([1.0, 2.0, 3.0], VectorAccumulatorParam())
    assert va.value == [1.0, 2.0, 3.0]

    def g(x):
        global va
        va += [x] * 3

    rdd.foreach(g)
    assert va.value == [7.0, 8.0, 9.0]
    with pytest.raises(dagrun.JobFailed, match="cannot be accessed inside tasks"):
        rdd.map(lambda x: a.value).collect()

    def h(x):
        global a
        a.value = 7

    with pytest.raises(dagrun.JobFailed):
        rdd.foreach(h)
    with pytest.raises(TypeError):
        ctx.accumulator([1.0, 2.0, 3.0])


def test_accumulator_inline(ctx):
    accumulator_examples(ctx)


def test_accumulator_on_local_executors(local_ctx):
    accumulator_examples(local_ctx)
    seen = local_ctx.accumulator(0)
    # updates made in a map stage come back too, once per committed map task
    pairs = local_ctx.parallelize(range(100), 4).map(lambda x: (seen.add(1), (x % 3, x))[1])
    assert pairs.reduce_by_key(add).count() == 3 and seen.value == 100


def test_accumulator_counts_each_committed_task_once_under_speculation():
    faults = [{"kind": "delay", "stage": 0, "partition": 1, "seconds": 1.5}]
    conf = {"progress": "off", "speculation": True, "speculation_quantile": 0.0,
            "speculation_multiplier": 0.01, "faults": faults}
    with dagrun.Context(executor="local", max_executors=3, conf=conf) as ctx:
        total = ctx.accumulator(0)
        ctx.parallelize(range(40), 4).foreach(lambda x: total.add(x))
        job = ctx.last_job
        assert any(a.speculative for a in job.attempts)
        assert total.value == sum(range(40))


def test_context_properties(ctx):
    assert ctx.version == dagrun.__version__ and ctx.application_id == ctx.app_id
    assert ctx.default_min_partitions == min(ctx.default_parallelism, 2)
    assert isinstance(ctx.start_time, int)
    ctx.set_log_level("WARN")


def test_whole_text_files_and_binary_files(local_ctx, tmp_path):
    d = tmp_path / "whole"
    d.mkdir()
    (d / "1.txt").write_text("123")
    (d / "2.txt").write_text("xyz")
    (d / "_hidden.txt").write_text("skipped, as Hadoop skips it")
    assert sorted(local_ctx.whole_text_files(str(d)).collect()) == [
        (f"file:{d}/1.txt", "123"), (f"file:{d}/2.txt", "xyz")]
    b = tmp_path / "bin"
    b.mkdir()
    (b / "1.bin").write_bytes(b"binary data I")
    (b / "2.bin").write_bytes(b"binary data II")
    assert sorted(local_ctx.binary_files(str(b)).collect()) == [
        (f"file:{b}/1.bin", b"binary data I"), (f"file:{b}/2.bin", b"binary data II")]


def test_save_as_pickle_file_and_pickle_file(local_ctx, tmp_path):
    name = str(tmp_path / "pickled")
    local_ctx.parallelize([1, 2, "spark", "rdd"]).save_as_pickle_file(name, 3)
    assert sorted(local_ctx.pickle_file(name, 5).map(str).collect()) == ["1", "2", "rdd", "spark"]
    rows = [(i, {"x": [i] * (i % 4)}) for i in range(1000)]
    local_ctx.parallelize(rows, 7).save_as_pickle_file(name + "2")
    assert local_ctx.pickle_file(name + "2").collect() == rows  # in order, part by part


def test_pickle_file_of_something_else_says_so(ctx, tmp_path):
    (tmp_path / "notes.txt").write_text("not a pickle\n")
    with pytest.raises(dagrun.JobFailed, match="neither a sequence file nor a file written by .*save_as_pickle_file"):
        ctx.pickle_file(str(tmp_path / "notes.txt")).collect()
