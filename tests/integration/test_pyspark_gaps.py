"""The PySpark behaviours Spark's own test_rdd.py and test_join.py check, which dagrun lacked."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from dagrun.pyspark import SparkContext


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
