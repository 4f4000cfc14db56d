"""Executor leases: with a 3 s lifetime and ~1 s tasks, executors retire and are replaced,
and no task is ever killed by a deadline."""

from __future__ import annotations

import time

import dagrun


def test_short_lived_executors_retire_before_their_deadline():
    def slow(x):
        time.sleep(1.0)
        return x

    conf = {"progress": "off", "executor_timeout": "3s", "retire_margin": "0.4s", "speculation": False,
            "ramp.initial": 8, "ramp.slope": 8}
    with dagrun.Context(executor="local", max_executors=5, conf=conf) as ctx:
        assert ctx.parallelize(range(100), 100).map(slow).sum() == sum(range(100))
        job = ctx.last_job
    log = job.scheduler_log
    assert [a for a in job.attempts if a.outcome == "lost"] == []  # nothing killed by a deadline
    assert len(job.attempts) == 100  # every task ran exactly once
    retired = [e for e in log if e.what == "retire" and "deadline" in str(e.detail)]
    launched = [e for e in log if e.what == "launch"]
    assert len(retired) >= 10
    assert len(launched) >= 20  # retired executors were replaced while work remained
