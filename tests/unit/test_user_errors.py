"""A function that raises fails the job with its traceback; nothing ends a partition early."""

from __future__ import annotations

import os
import pickle
import threading

import pytest

import dagrun
from scheduler.errors import JobAborted


def _stop(x):
    if x == 3:
        raise StopIteration("user code")
    return x


@pytest.fixture
def ictx():
    with dagrun.Context(executor="inline", conf={"progress": "off", "ledger": "off", "max_attempts": 1}) as c:
        yield c


@pytest.mark.parametrize("build", [
    lambda r: r.map(_stop),
    lambda r: r.filter(lambda x: _stop(x) >= 0),
    lambda r: r.flat_map(lambda x: [_stop(x)]),
    lambda r: r.map(lambda x: (x, x)).map_values(_stop),
    lambda r: r.map(lambda x: (x, x)).flat_map_values(lambda v: [_stop(v)]),
    lambda r: r.key_by(_stop),
    lambda r: r.sort_by(_stop),
    lambda r: r.map(lambda x: (x % 2, x)).reduce_by_key(lambda a, b: _stop(b) + a),
], ids=["map", "filter", "flat_map", "map_values", "flat_map_values", "key_by", "sort_by", "reduce_by_key"])
def test_stop_iteration_in_user_code_fails_the_job(ictx, build):
    with pytest.raises(dagrun.JobFailed) as info:
        build(ictx.parallelize(range(10), 2)).collect()
    assert "StopIteration" in str(info.value) and "user code" in str(info.value)


@pytest.mark.parametrize("action", [lambda r: r.reduce(lambda a, b: _stop(b)), lambda r: r.foreach(_stop),
                                    lambda r: r.fold(0, lambda a, b: _stop(b))], ids=["reduce", "foreach", "fold"])
def test_stop_iteration_in_an_action_fails_the_job(ictx, action):
    with pytest.raises(dagrun.JobFailed, match="StopIteration"):
        action(ictx.parallelize(range(10), 2))


def test_the_context_is_usable_after_a_failed_job(ictx):
    with pytest.raises(dagrun.JobFailed):
        ictx.parallelize(range(10), 2).map(_stop).collect()
    assert ictx.parallelize(range(10), 2).map(lambda x: x * 2).sum() == 90


def _unpicklable_jobs(ctx, inner):
    lock = threading.Lock()
    return {
        "a lock in a closure": lambda: ctx.parallelize([1]).map(lambda x: (lock, x)).collect(),
        "the context in a closure": lambda: ctx.parallelize([1]).map(lambda x: ctx.parallelize([x])).collect(),
        "an RDD in a closure": lambda: ctx.parallelize([1]).map(lambda x: inner.count()).collect(),
        "an RDD in parallelize's data": lambda: ctx.parallelize([inner, inner]).collect(),
    }


@pytest.mark.parametrize("case", ["a lock in a closure", "the context in a closure", "an RDD in a closure",
                                  "an RDD in parallelize's data"])
def test_what_cannot_be_pickled_raises_pysparks_pickling_error_and_says_what(ictx, case):
    job = _unpicklable_jobs(ictx, ictx.parallelize([2]))[case]
    with pytest.raises(pickle.PicklingError, match="cannot serialize") as info:
        job()
    assert isinstance(info.value, TypeError)  # what dagrun raised before, still caught the same way
    assert {"a lock in a closure": "_thread.lock", "the context in a closure": "SPARK-5063"}.get(case, "RDD") \
        in str(info.value)
    assert ictx.parallelize([1, 2]).sum() == 3


def test_a_sparkcontext_in_a_closure_names_spark_5063():
    from dagrun.pyspark import SparkContext

    sc = SparkContext("local[1]", "closure")
    try:
        with pytest.raises(pickle.PicklingError, match="reference the SparkContext.*SPARK-5063"):
            sc.parallelize(range(3)).map(lambda _: sc.parallelize([1])).collect()
    finally:
        sc.stop()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_full_disk_says_so_instead_of_blaming_the_function(ictx):
    def write(x):  # the kernel's own "No space left on device", as a full store volume gives it
        with open("/dev/full", "wb", buffering=0) as f:
            f.write(b"x")

    with pytest.raises(JobAborted, match=r"No space left on device[\s\S]*A disk is full: the shuffle store"):
        ictx.parallelize([1]).map(write).collect()
    with pytest.raises(JobAborted, match="Fix the function or the input that raised it"):
        ictx.parallelize([1]).map(lambda x: 1 / 0).collect()
