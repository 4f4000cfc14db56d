"""Right-sized reduce tasks on real executor subprocesses: fewer tasks and GETs, the same partitions.

A shuffle whose partition count was not given is read by tasks that each run several
consecutive partitions (docs/architecture.md, "Right-sized shuffles"); everything a user can
see of the partitions (their count, contents, order, indexes, output files) stays as it was.
"""

from __future__ import annotations

import operator
import os
from collections import Counter

import pytest

import dagrun

N = 20_000


def _ctx(**conf):
    return dagrun.Context(executor="local", max_executors=2, conf={"progress": "off", "ledger": "off", **conf})


def _job(ctx, num_partitions=None):
    return ctx.parallelize(range(N), 8).map(lambda x: (x % 101, x)).reduce_by_key(operator.add, num_partitions)


def _reduce_attempts(job):
    result = job.stages[-1].stage_id
    return [a for a in job.attempts if a.stage_id == result]


def _expected():
    sums = Counter()
    for x in range(N):
        sums[x % 101] += x
    return sums


@pytest.fixture(scope="module")
def both():
    """What a grouped and an ungrouped run of the same jobs give."""
    out = {}
    for name, task_bytes in (("grouped", "256MiB"), ("one per partition", 0)):
        with _ctx(reduce_task_bytes=task_bytes) as ctx:
            rdd = _job(ctx)
            collected = rdd.collect()
            job = ctx.last_job
            out[name] = {
                "collected": collected, "tasks": len(_reduce_attempts(job)), "gets": job.requests.get("get", 0),
                "partitions": rdd.get_num_partitions(), "glom": rdd.glom().collect(),
                "indexed": rdd.map_partitions_with_index(lambda i, it: [(i, sorted(it))]).collect(),
            }
    return out


def test_a_small_shuffle_runs_in_fewer_tasks_with_fewer_gets(both):
    grouped, single = both["grouped"], both["one per partition"]
    assert single["tasks"] == 8
    assert grouped["tasks"] == 2  # at least one task per executor, and no more: 20k pairs are small
    assert grouped["gets"] < single["gets"]


def test_partitions_look_the_same_to_the_user(both):
    grouped, single = both["grouped"], both["one per partition"]
    assert dict(grouped["collected"]) == _expected()
    assert grouped["collected"] == single["collected"]  # the same order, partition by partition
    assert grouped["partitions"] == single["partitions"] == 8
    assert grouped["glom"] == single["glom"]
    assert grouped["indexed"] == single["indexed"] and [i for i, _ in grouped["indexed"]] == list(range(8))


def test_a_partition_count_the_user_gave_gets_a_task_per_partition():
    with _ctx() as ctx:
        assert dict(_job(ctx, 8).collect()) == _expected()
        assert len(_reduce_attempts(ctx.last_job)) == 8


def test_save_writes_a_file_per_partition_from_grouped_tasks(tmp_path):
    out = tmp_path / "out"
    with _ctx() as ctx:
        _job(ctx).save_as_text_file(str(out))
        assert len(_reduce_attempts(ctx.last_job)) == 2
    parts = sorted(p for p in os.listdir(out) if p.startswith("part-"))
    assert parts == [f"part-{i:05d}" for i in range(8)]
    lines = [line for p in parts for line in (out / p).read_text().splitlines()]
    assert sorted(lines) == sorted(str(kv) for kv in _expected().items())


def test_a_block_lost_under_a_grouped_task_reruns_its_map_only():
    # the result stage is the job's second (index 1); map 3's block is deleted once committed
    with _ctx(speculation=False, faults=[{"kind": "delete_block", "stage": 0, "partition": 3}]) as ctx:
        assert dict(_job(ctx).collect()) == _expected()
        job = ctx.last_job
    map_stage = job.stages[0].stage_id
    runs = Counter(a.partition for a in job.attempts if a.stage_id == map_stage)
    assert runs == {p: (2 if p == 3 else 1) for p in range(8)}
    assert any(a.outcome == "fetch-failed" for a in _reduce_attempts(job))
