"""A representative handful of PySpark's documented RDD examples on real executor processes.

The same examples as ``test_pyspark_examples`` (expected values checked against PySpark 4.3),
but run through ``local_ctx``: two executor subprocesses, so every function, partition and
result crosses a process boundary by pickling.  Also: a task that raises fails the job with
``dagrun.JobFailed`` carrying the original message and the remote traceback, and the Context
stays usable afterwards.
"""

from __future__ import annotations

import os
from operator import add

import pytest

import dagrun


def test_join(local_ctx):
    rdd1 = local_ctx.parallelize([("a", 1), ("b", 4)])
    rdd2 = local_ctx.parallelize([("a", 2), ("a", 3)])
    assert sorted(rdd1.join(rdd2).collect()) == [("a", (1, 2)), ("a", (1, 3))]
    assert sorted(rdd1.full_outer_join(local_ctx.parallelize([("a", 2), ("c", 8)])).collect()) == [
        ("a", (1, 2)), ("b", (4, None)), ("c", (None, 8))]


def test_sort_by_key(local_ctx):
    tmp = [("a", 1), ("b", 2), ("1", 3), ("d", 4), ("2", 5)]
    assert local_ctx.parallelize(tmp).sort_by_key().first() == ("1", 3)
    assert local_ctx.parallelize(tmp).sort_by_key(True, 2).collect() == [
        ("1", 3), ("2", 5), ("a", 1), ("b", 2), ("d", 4)]
    tmp2 = [("Mary", 1), ("had", 2), ("a", 3), ("little", 4), ("lamb", 5),
            ("whose", 6), ("fleece", 7), ("was", 8), ("white", 9)]
    assert local_ctx.parallelize(tmp2).sort_by_key(True, 3, keyfunc=lambda k: k.lower()).collect() == [
        ("a", 3), ("fleece", 7), ("had", 2), ("lamb", 5), ("little", 4), ("Mary", 1), ("was", 8),
        ("white", 9), ("whose", 6)]


def test_group_by_key(local_ctx):
    rdd = local_ctx.parallelize([("a", 1), ("b", 1), ("a", 1)])
    assert sorted(rdd.group_by_key().map_values(len).collect()) == [("a", 2), ("b", 1)]
    assert sorted(rdd.group_by_key().map_values(list).collect()) == [("a", [1, 1]), ("b", [1])]
    assert sorted(rdd.reduce_by_key(add).collect()) == [("a", 2), ("b", 1)]


def test_distinct(local_ctx):
    assert sorted(local_ctx.parallelize([1, 1, 2, 3]).distinct().collect()) == [1, 2, 3]
    # int keys hash as in PySpark: the same order as PySpark at local[2]
    assert local_ctx.parallelize([1, 1, 2, 3]).distinct().collect() == [2, 1, 3]


def test_zip_with_index(local_ctx):
    assert local_ctx.parallelize(["a", "b", "c", "d"], 3).zip_with_index().collect() == [
        ("a", 0), ("b", 1), ("c", 2), ("d", 3)]
    assert local_ctx.parallelize(["a", "b", "c", "d", "e"], 3).zip_with_unique_id().collect() == [
        ("a", 0), ("b", 1), ("c", 4), ("d", 2), ("e", 5)]


def test_take(local_ctx):
    assert local_ctx.parallelize([2, 3, 4, 5, 6]).cache().take(2) == [2, 3]
    assert local_ctx.parallelize([2, 3, 4, 5, 6]).take(10) == [2, 3, 4, 5, 6]
    assert local_ctx.parallelize(range(100), 100).filter(lambda x: x > 90).take(3) == [91, 92, 93]


def test_aggregate_and_stats(local_ctx):
    seq_op = (lambda x, y: (x[0] + y, x[1] + 1))
    comb_op = (lambda x, y: (x[0] + y[0], x[1] + y[1]))
    assert local_ctx.parallelize([1, 2, 3, 4]).aggregate((0, 0), seq_op, comb_op) == (10, 4)
    assert local_ctx.parallelize([1, 2, 3]).stdev() == 0.816496580927726
    assert local_ctx.parallelize(range(100), 4).sample(False, 0.1, 81).count() == 11


def test_text_file_round_trip(local_ctx, tmp_path):
    path1 = os.path.join(tmp_path, "text1")
    path2 = os.path.join(tmp_path, "text2")
    local_ctx.parallelize(["x", "y", "z"]).save_as_text_file(path1)
    local_ctx.parallelize(["aa", "bb", "cc"]).save_as_text_file(path2)
    assert os.path.exists(os.path.join(path1, "_SUCCESS"))
    assert sorted(local_ctx.text_file(path1, 3).collect()) == ["x", "y", "z"]
    assert sorted(local_ctx.text_file(path2, 4).collect()) == ["aa", "bb", "cc"]
    assert sorted(local_ctx.text_file("{},{}".format(path1, path2), 5).collect()) == [
        "aa", "bb", "cc", "x", "y", "z"]
    assert local_ctx.text_file(path1).collect() == ["x", "y", "z"]


def test_failing_function_raises_job_failed_and_context_survives(local_ctx):
    def explode(x):
        if x == 3:
            raise ValueError(f"cannot handle element {x} (deliberate)")
        return x

    with pytest.raises(dagrun.JobFailed) as info:
        local_ctx.parallelize(range(6), 2).map(explode).collect()
    text = str(info.value)
    assert "cannot handle element 3 (deliberate)" in text
    assert "Traceback" in text
    assert "ValueError" in text
    # the user's frame names this file and shows its line, as PySpark's traceback does
    assert f'File "{__file__}", line' in text and 'raise ValueError(f"cannot handle element' in text
    # the Context is still usable
    assert local_ctx.parallelize([1, 2, 3, 4, 5]).reduce(add) == 15
    assert sorted(local_ctx.parallelize([("a", 1), ("b", 1), ("a", 1)]).count_by_key().items()) == [
        ("a", 2), ("b", 1)]
