"""Every failure bounded: hanging tasks, executors that cannot start, blocks corrupt every
time, a stalled driver loop, and a Context that runs hundreds of jobs."""

from __future__ import annotations

import sys
import time

import pytest

import dagrun
from scheduler.errors import ExecutorsCannotStart, JobAborted


def test_a_hanging_task_times_out_and_the_context_stays_usable():
    def hang_on_zero(x):
        if x == 0:
            time.sleep(3600)
        return x

    conf = {"progress": "off", "task_timeout": "2s", "max_attempts": 2, "speculation": False}
    with dagrun.Context(executor="local", max_executors=2, conf=conf) as ctx:
        started = time.monotonic()
        with pytest.raises(JobAborted) as info:
            ctx.parallelize(range(4), 4).map(hang_on_zero).collect()
        assert time.monotonic() - started < 60
        assert "timed out after 2 s" in str(info.value) and "failed 2 times" in str(info.value)
        timed_out = [a for a in ctx.last_job.attempts if a.outcome == "failed"]
        assert [a.partition for a in timed_out] == [0, 0]
        assert ctx.parallelize(range(10), 2).sum() == 45


def test_executors_that_cannot_start_end_the_job_with_their_error(monkeypatch, tmp_path):
    broken = tmp_path / "python"  # an environment where every executor dies at start-up
    broken.write_text("#!/bin/sh\necho 'error while loading shared libraries: libpython3.11.so' >&2\nexit 127\n")
    broken.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(broken))
    with dagrun.Context(executor="local", max_executors=2, conf={"progress": "off"}) as ctx:
        started = time.monotonic()
        with pytest.raises(ExecutorsCannotStart) as info:
            ctx.parallelize(range(4), 2).sum()
        assert time.monotonic() - started < 60
    text = str(info.value)
    assert "ended before they registered" in text and "exited with code 127" in text
    assert "error while loading shared libraries" in text  # the executor's own words


def test_a_block_corrupt_on_every_attempt_fails_in_bounded_time():
    faults = [{"kind": "corrupt_block", "stage": 0, "partition": 1, "attempt": None}]
    conf = {"progress": "off", "faults": faults, "speculation": False}
    with dagrun.Context(executor="local", max_executors=2, conf=conf) as ctx:
        started = time.monotonic()
        with pytest.raises(JobAborted) as info:
            ctx.parallelize(range(100), 3).map(lambda x: (x % 5, x)).reduce_by_key(lambda a, b: a + b, 2).collect()
        assert time.monotonic() - started < 60
        job = ctx.last_job
    assert "could not read block" in str(info.value) and "/m1-a" in str(info.value)
    map_attempts = [a for a in job.attempts if a.stage_id == job.stages[0].stage_id and a.partition == 1]
    assert 2 <= len(map_attempts) <= 6


def test_a_stalled_driver_loop_loses_no_heartbeating_executor():
    conf = {"progress": "off", "heartbeat_interval": "0.1s", "heartbeat_timeout": "1s", "speculation": False}
    with dagrun.Context(executor="inline", max_executors=2, conf=conf) as ctx:
        driver = ctx._ensure_driver()
        stalls = []

        def stall_once(stage, key, value):  # the loop thread is stuck for 2.5 heartbeat timeouts
            if not stalls:
                stalls.append(key)
                time.sleep(2.5)

        driver._on_commit = stall_once
        assert ctx.parallelize(range(8), 8).map(lambda x: x * 2).sum() == 56
        job = ctx.last_job
    assert stalls
    assert [e for e in job.scheduler_log if e.what in ("lost", "kill")] == []
    assert {a.outcome for a in job.attempts} == {"committed"} and len(job.attempts) == 8


def test_three_hundred_jobs_in_one_context_stay_as_fast():
    with dagrun.Context(executor="inline", max_executors=1, conf={"progress": "off", "ledger": "off",
                                                                   "job_history": 0}) as ctx:
        times = []
        for n in range(300):
            started = time.perf_counter()
            assert ctx.parallelize(range(4), 2).map(lambda x: x + 1).sum() == 10
            times.append(time.perf_counter() - started)
        machine = ctx._driver.machine
        assert len(machine.tasks) == len(machine.log) == len(machine.durations) == 0
        assert ctx._driver.core.attempts == [] and not ctx._driver._finished
    first, last = sum(times[:50]), sum(times[-50:])
    assert last <= 2 * first + 1.0, (first, last)
