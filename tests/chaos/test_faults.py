"""Chaos: injected failures still give exact results, and only the lost work reruns."""

from __future__ import annotations

import operator
from collections import Counter

import pytest

import dagrun

N = 4000


def three_stage_job(ctx, maps=8):
    """parallelize -> reduce_by_key -> group_by_key -> collect: three stages."""
    return sorted(ctx.parallelize(range(N), maps)
                  .map(lambda x: (x % 17, x)).reduce_by_key(operator.add, 6)
                  .map(lambda kv: (kv[0] % 3, kv[1] * 2)).reduce_by_key(operator.add, 4)
                  .collect())


def expected_three_stage():
    sums = Counter()
    for x in range(N):
        sums[x % 17] += x
    out = Counter()
    for k, v in sums.items():
        out[k % 3] += v * 2
    return sorted(out.items())


def attempts_by_task(job):
    return Counter((a.stage_id, a.partition) for a in job.attempts)


def stage_ids(job):
    return {s.stage_id: i for i, s in enumerate(job.stages)}  # id -> position in the job


def run_with(faults, executors=3, **conf):
    with dagrun.Context(executor="local", max_executors=executors,
                        conf={"progress": "off", "faults": faults, **conf}) as ctx:
        result = three_stage_job(ctx)
        return result, ctx.last_job


def test_three_executor_kills_during_a_three_stage_job():
    faults = [{"kind": "kill", "stage": 0, "partition": 1}, {"kind": "kill", "stage": 1, "partition": 2},
              {"kind": "kill", "stage": 2, "partition": 0}]
    result, job = run_with(faults)
    assert result == expected_three_stage()
    lost = [(stage_ids(job)[a.stage_id], a.partition) for a in job.attempts if a.outcome == "lost"]
    assert sorted(lost) == [(0, 1), (1, 2), (2, 0)]
    reran = {k for k, n in attempts_by_task(job).items() if n > 1}
    assert {(stage_ids(job)[s], p) for s, p in reran} == {(0, 1), (1, 2), (2, 0)}


def test_deleted_block_reruns_only_its_map_task():
    result, job = run_with([{"kind": "delete_block", "stage": 0, "partition": 3}], speculation=False)
    assert result == expected_three_stage()
    positions = stage_ids(job)
    counts = attempts_by_task(job)
    map_stage0 = {p: n for (s, p), n in counts.items() if positions[s] == 0}
    assert map_stage0 == {p: (2 if p == 3 else 1) for p in range(8)}  # not the whole stage
    assert all(n == 1 for (s, p), n in counts.items() if positions[s] == 2)
    fetch_failed = [a for a in job.attempts if a.outcome == "fetch-failed"]
    assert fetch_failed and all(positions[a.stage_id] == 1 for a in fetch_failed)


def test_corrupted_block_is_detected_and_regenerated():
    result, job = run_with([{"kind": "corrupt_block", "stage": 1, "partition": 0}], speculation=False)
    assert result == expected_three_stage()
    positions = stage_ids(job)
    counts = attempts_by_task(job)
    assert {p: n for (s, p), n in counts.items() if positions[s] == 1} == {p: (2 if p == 0 else 1) for p in range(6)}
    assert all(n == 1 for (s, p), n in counts.items() if positions[s] == 0)
    errors = [a.error for a in job.attempts if a.outcome == "fetch-failed"]
    assert errors and all("checksum" in e.lower() for e in errors)


def test_straggler_gets_a_speculative_backup_that_wins():
    faults = [{"kind": "delay", "stage": 0, "partition": 5, "seconds": 6.0}]
    result, job = run_with(faults, executors=3, speculation=True)
    assert result == expected_three_stage()
    position = stage_ids(job)
    backups = [a for a in job.attempts if a.speculative]
    assert [(position[a.stage_id], a.partition, a.outcome) for a in backups] == [(0, 5, "committed")]
    assert job.wall_seconds < 6.0  # did not wait for the straggler


def test_straggler_without_speculation_is_waited_for():
    faults = [{"kind": "delay", "stage": 0, "partition": 5, "seconds": 1.5}]
    result, job = run_with(faults, executors=2, speculation=False)
    assert result == expected_three_stage()
    assert not any(a.speculative for a in job.attempts)


def test_task_failures_are_retried_and_counted():
    faults = [{"kind": "fail", "stage": 1, "partition": 1, "attempt": a} for a in range(3)]
    result, job = run_with(faults)
    assert result == expected_three_stage()
    failed = [a for a in job.attempts if a.outcome == "failed"]
    assert len(failed) == 3 and all("injected failure" in a.error for a in failed)


def test_launch_throttles_cut_the_ramp_and_the_job_completes():
    result, job = run_with([{"kind": "throttle_launch", "count": 3}], executors=3)
    assert result == expected_three_stage()
    throttles = [e for e in job.scheduler_log if e.what == "throttle"]
    assert len(throttles) >= 1


@pytest.mark.parametrize("executor", ["inline"])
def test_faults_work_on_the_inline_backend(executor):
    faults = [{"kind": "kill", "stage": 0, "partition": 0}, {"kind": "delete_block", "stage": 1, "partition": 1}]
    with dagrun.Context(executor=executor, max_executors=2, conf={"progress": "off", "faults": faults}) as ctx:
        assert three_stage_job(ctx) == expected_three_stage()
