"""Task results (issue 13, Build 4): pickled once with cloudpickle, large ones through the store,
and ``max_result_size`` as Spark's ``spark.driver.maxResultSize``."""

from __future__ import annotations

import time

import pytest

import dagrun
from scheduler.results import ResultTooLarge
from shuffle.layout import parse_block_key
from shuffle.store import BlockStore

CONF = {"progress": "off", "ledger": "off", "job_history": 0, "speculation": False}


def test_an_instance_of_a_class_defined_in_a_function_comes_back(local_ctx):
    class Person:  # defined here, so pickle by reference cannot find it
        def __init__(self, name, age):
            self.name, self.age = name, age

        def __eq__(self, other):
            return (self.name, self.age) == (other.name, other.age)

    people = local_ctx.parallelize([("ann", 31), ("bob", 42)], 2).map(lambda t: Person(*t)).collect()
    assert [(p.name, p.age) for p in people] == [("ann", 31), ("bob", 42)]


class Counted:
    """Appends a line to ``path`` each time an instance is pickled."""

    def __init__(self, path: str, n: int):
        self.path, self.n = path, n

    def __reduce__(self):
        with open(self.path, "a") as f:
            f.write(f"{self.n}\n")
        return (Counted, (self.path, self.n))


def test_a_result_is_pickled_once(tmp_path, local_ctx):
    path = str(tmp_path / "pickles")
    out = local_ctx.parallelize(range(4), 2).map(lambda n: Counted(path, n)).collect()
    assert [c.n for c in out] == [0, 1, 2, 3]
    with open(path) as f:  # once in the executor; the driver's unpickling does not add any
        assert sorted(f.read().split()) == ["0", "1", "2", "3"]


def test_large_results_travel_through_the_store_and_are_deleted(tmp_path):
    url = str(tmp_path / "store")
    with dagrun.Context(executor="local", max_executors=2, store=url, max_direct_result_size="64KiB", conf=CONF) as c:
        big = c.parallelize(range(4), 4).map(lambda i: bytes([i]) * (200 << 10)).collect()
        assert [len(b) for b in big] == [200 << 10] * 4 and [b[0] for b in big] == [0, 1, 2, 3]
        puts = sum(a.metrics.store_requests.get("put", 0) for a in c.last_job.attempts)
        assert puts == 4
        small = c.parallelize(range(4), 4).collect()
        assert small == [0, 1, 2, 3]
        assert sum(a.metrics.store_requests.get("put", 0) for a in c.last_job.attempts) == 0
        left = BlockStore(url).list("")
        assert [k for k in left if parse_block_key(k)] == []  # loaded results are deleted


def test_collect_over_max_result_size_fails_naming_the_setting(tmp_path):
    url = str(tmp_path / "store")
    with dagrun.Context(executor="local", max_executors=2, store=url, max_result_size="1MiB",
                        max_direct_result_size="64KiB", conf=CONF) as c:
        started = time.monotonic()
        with pytest.raises(ResultTooLarge, match=r"results of \d+ tasks .* bigger than max_result_size \(1.0 MiB\)"):
            c.parallelize(range(8), 8).map(lambda i: b"x" * (300 << 10)).collect()
        assert time.monotonic() - started < 60
        assert c.parallelize(range(10), 2).sum() == 45  # the Context is still usable
        # tasks still running when the job failed store their results, and the driver discards them
        deadline = time.monotonic() + 20
        while [k for k in BlockStore(url).list("") if parse_block_key(k)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [k for k in BlockStore(url).list("") if parse_block_key(k)] == []  # nothing left behind


def test_one_partition_over_the_limit_is_never_stored(tmp_path):
    url = str(tmp_path / "store")
    with dagrun.Context(executor="inline", store=url, max_result_size="100KiB", max_direct_result_size="1KiB",
                        conf=CONF) as c:
        with pytest.raises(ResultTooLarge, match="max_result_size"):
            c.parallelize([1], 1).map(lambda _: b"y" * (1 << 20)).collect()
        assert c.last_job.requests["put"] == 0
        assert sum(a.metrics.store_requests.get("put", 0) for a in c.last_job.attempts) == 0


def test_zero_means_unlimited():
    with dagrun.Context(executor="inline", max_result_size=0, conf=CONF) as c:
        assert c.parallelize(range(3), 3).map(lambda i: b"z" * (2 << 20)).map(len).collect() == [2 << 20] * 3


def test_a_result_is_loaded_as_its_task_commits_not_after_the_last(tmp_path, local_ctx):
    path = str(tmp_path / "loaded")

    class Stamp:  # notes on the driver when it is unpickled
        def __init__(self, n):
            self.n = n

        def __setstate__(self, state):
            self.__dict__.update(state)
            with open(path, "a") as f:
                f.write(f"{self.n} {time.time()}\n")

    def slow_second(i, it):
        if i == 1:
            time.sleep(1.5)
        return [Stamp(i)]

    out = local_ctx.parallelize([0, 1], 2).map_partitions_with_index(slow_second).collect()
    returned = time.time()
    assert [s.n for s in out] == [0, 1]
    loaded = dict(line.split() for line in open(path).read().splitlines())
    assert float(loaded["0"]) < returned - 1.0, "the first partition's value waited for the second's task"
