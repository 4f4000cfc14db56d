"""The task state machine, driven by events on a fake clock: no processes, no sleeps."""

from __future__ import annotations

import pytest

from scheduler.core.events import (
    AbortJob, Assign, Commit, Discard, ExecutorLost, ExecutorRegistered, ExecutorRetired, HeartbeatReceived,
    Kill, Launch, Refetch, Retire, TaskFailed, TaskSpec, TaskSucceeded, Throttled, Tick,
)
from scheduler.core.events import RemoteError
from scheduler.core.tasks import Policy, TaskStateMachine


def machine(**policy):
    defaults = dict(max_executors=2, ramp_initial=10, ramp_slope=0, retire_margin=1.0, idle_timeout=100,
                    heartbeat_timeout=50, speculation=False)
    defaults.update(policy)
    return TaskStateMachine(Policy(**defaults), now=0.0, id_prefix="e")


def specs(stage, n, seconds=1.0):
    return [TaskSpec((stage, p), seconds) for p in range(n)]


def of(kind, instructions):
    return [i for i in instructions if isinstance(i, kind)]


def test_submit_launches_on_the_ramp_up_to_max_executors():
    m = machine(max_executors=3)
    out = m.submit(specs(0, 5), now=0.0)
    assert out == [Launch(("e1", "e2", "e3"))]
    assert m.submit([], now=1.0) == []  # already launching enough


def test_registered_executor_gets_first_pending_task():
    m = machine()
    m.submit(specs(0, 3), now=0.0)
    out = m.handle(ExecutorRegistered("e1", now=0.5, remaining=None))
    assert out == [Assign("e1", (0, 0), 0)]
    assert m.tasks[(0, 0)].status == "running"


def test_success_commits_and_frees_the_executor_for_the_next_task():
    m = machine(max_executors=1)
    m.submit(specs(0, 2), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0))
    out = m.handle(TaskSucceeded("e1", (0, 0), 0, now=1.0))
    assert out == [Commit((0, 0), 0, "e1"), Assign("e1", (0, 1), 0)]


def test_task_error_retries_then_aborts_after_max_attempts():
    m = machine(max_executors=1, max_attempts=3)
    m.submit(specs(0, 1), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0))
    err = RemoteError("ValueError", "bad", "Traceback...")
    out = m.handle(TaskFailed("e1", (0, 0), 0, now=1.0, kind="error", error=err))
    assert out == [Assign("e1", (0, 0), 1)]
    out = m.handle(TaskFailed("e1", (0, 0), 1, now=2.0, kind="error", error=err))
    assert out == [Assign("e1", (0, 0), 2)]
    out = m.handle(TaskFailed("e1", (0, 0), 2, now=3.0, kind="error", error=err))
    assert of(AbortJob, out) == [AbortJob((0, 0), "failed 3 times (max_attempts=3)", err)]


def test_executor_lost_reschedules_without_counting_a_failure():
    m = machine(max_executors=2)
    m.submit(specs(0, 1), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0))
    m.handle(ExecutorRegistered("e2", now=0.0))
    out = m.handle(ExecutorLost("e1", now=1.0, reason="process exited"))
    assert of(Assign, out) == [Assign("e2", (0, 0), 1)]
    assert m.tasks[(0, 0)].failures == 0 and m.tasks[(0, 0)].losses == 1
    assert of(Launch, out) == []  # nothing else pending


def test_repeated_executor_loss_aborts():
    m = machine(max_executors=1, max_executor_losses=2)
    m.submit(specs(0, 1), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0))
    m.handle(ExecutorLost("e1", now=1.0, reason="killed"))
    m.handle(ExecutorRegistered("e2", now=1.0))
    out = m.handle(ExecutorLost("e2", now=2.0, reason="killed"))
    assert of(AbortJob, out) and "lost its executor 2 times" in of(AbortJob, out)[0].reason


def test_fetch_failure_parks_task_and_asks_for_map_outputs():
    m = machine(max_executors=1)
    m.submit(specs(1, 1), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0))
    err = RemoteError("FetchFailed", "missing", "", "fetch", shuffle_id=7, map_ids=(2, 3))
    out = m.handle(TaskFailed("e1", (1, 0), 0, now=1.0, kind="fetch", error=err))
    assert out == [Refetch((1, 0), 7, (2, 3), 0)]
    assert m.tasks[(1, 0)].status == "waiting" and m.tasks[(1, 0)].failures == 0
    out = m.submit([TaskSpec((1, 0))], now=2.0)  # the DAG resubmits once the maps are back
    assert out == [Assign("e1", (1, 0), 1)]


def test_stale_results_are_discarded():
    m = machine(max_executors=2)
    m.submit(specs(0, 1), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0))
    m.handle(ExecutorRegistered("e2", now=0.0))
    m.handle(ExecutorLost("e1", now=1.0, reason="missed heartbeats"))  # attempt 1 goes to e2
    out = m.handle(TaskSucceeded("e1", (0, 0), 0, now=2.0))  # the old attempt reports late
    assert out == [Discard((0, 0), 0, "e1", "stale attempt")]
    out = m.handle(TaskSucceeded("e2", (0, 0), 1, now=3.0))
    assert out == [Commit((0, 0), 1, "e2")]


def test_heartbeat_timeout_kills_and_reschedules():
    m = machine(max_executors=2, heartbeat_timeout=5)
    m.submit(specs(0, 1), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0))
    m.handle(ExecutorRegistered("e2", now=0.0))
    m.handle(HeartbeatReceived("e2", now=4.0))
    out = m.handle(Tick(now=6.0))
    assert Kill("e1", "missed heartbeats") in out
    assert Assign("e2", (0, 0), 1) in out


def test_lease_only_assigns_tasks_that_fit_before_the_deadline():
    m = machine(max_executors=2, retire_margin=1.0)
    m.submit([TaskSpec((0, 0), 5.0)], now=0.0)
    out = m.handle(ExecutorRegistered("e1", now=0.0, remaining=4.0))  # 5 s task + 1 s margin > 4 s
    assert of(Assign, out) == []
    assert of(Retire, out) == [Retire("e1", "too close to its deadline for any pending task")]
    out = m.handle(ExecutorRegistered("e2", now=0.0, remaining=60.0))
    assert of(Assign, out) == [Assign("e2", (0, 0), 0)]


def test_expected_time_is_the_running_median_of_the_stage():
    m = machine(max_executors=1, retire_margin=0.5)
    m.submit(specs(0, 3, seconds=10.0), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0, remaining=100.0))
    m.handle(TaskSucceeded("e1", (0, 0), 0, now=2.0))
    assert m.expected_seconds((0, 1)) == 2.0


def test_retiring_executor_is_replaced_while_work_remains():
    m = machine(max_executors=1, retire_margin=1.0)
    m.submit(specs(0, 2, seconds=1.0), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0, remaining=3.0))
    out = m.handle(TaskSucceeded("e1", (0, 0), 0, now=1.5))  # 1.5 s left < 1 s + 1 s margin
    assert of(Retire, out) == [Retire("e1", "too close to its deadline for any pending task")]
    assert of(Launch, out) == [Launch(("e2",))]
    out = m.handle(ExecutorRetired("e1", now=1.6))
    assert out == []
    assert "e1" not in m.executors


def test_idle_executor_retires_after_idle_timeout():
    m = machine(max_executors=1, idle_timeout=10)
    m.submit(specs(0, 1), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0))
    m.handle(TaskSucceeded("e1", (0, 0), 0, now=1.0))
    assert m.handle(Tick(now=5.0)) == []
    assert m.handle(Tick(now=11.5)) == [Retire("e1", "idle")]


def test_launch_timeout_kills_executor_that_never_registers():
    m = machine(max_executors=1, launch_timeout=30)
    m.submit(specs(0, 1), now=0.0)
    out = m.handle(Tick(now=31.0))
    assert Kill("e1", "it did not register within launch_timeout") in out
    assert Launch(("e2",)) in out


def test_speculation_backs_up_a_straggler_and_first_finisher_wins():
    m = machine(max_executors=2, speculation=True, speculation_quantile=0.75, speculation_multiplier=1.5)
    m.submit(specs(0, 4), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0))
    m.handle(ExecutorRegistered("e2", now=0.0))  # e1: (0,0), e2: (0,1)
    m.handle(TaskSucceeded("e2", (0, 1), 0, now=1.0))  # e2 takes (0,2)
    m.handle(TaskSucceeded("e2", (0, 2), 0, now=2.0))  # e2 takes (0,3)
    out = m.handle(TaskSucceeded("e2", (0, 3), 0, now=3.0))  # 3 of 4 done, median 1.0
    # (0,0) has run 3 s > 1.5 x the median, so idle e2 gets a backup attempt
    assert out == [Commit((0, 3), 0, "e2"), Assign("e2", (0, 0), 1, speculative=True)]
    out = m.handle(TaskSucceeded("e2", (0, 0), 1, now=3.5))
    assert out == [Commit((0, 0), 1, "e2")]
    out = m.handle(TaskSucceeded("e1", (0, 0), 0, now=4.0))
    assert out == [Discard((0, 0), 0, "e1", "another attempt committed first")]


def test_speculation_can_be_turned_off():
    m = machine(max_executors=2, speculation=False)
    m.submit(specs(0, 4), now=0.0)
    m.handle(ExecutorRegistered("e1", now=0.0))
    m.handle(ExecutorRegistered("e2", now=0.0))
    for p in (1, 2, 3):
        m.handle(TaskSucceeded("e2", (0, p), 0, now=float(p)))
    assert m.handle(Tick(now=10.0)) == []


def test_throttle_cuts_the_launch_rate():
    m = machine(max_executors=100, ramp_initial=4, ramp_slope=0)
    out = m.submit(specs(0, 100), now=0.0)
    assert len(out[0].executor_ids) == 4
    m.handle(Throttled(now=0.0, source="lambda"))
    launched = sum(len(i.executor_ids) for i in m.handle(Tick(now=1.0)) if isinstance(i, Launch))
    assert launched == 2  # rate halved from 4/s to 2/s


@pytest.mark.parametrize("initial,slope", [(1.0, 2.0), (4.0, 4.0), (0.5, 1.0)])
def test_ramp_launch_times_follow_initial_plus_slope_t(initial, slope):
    m = machine(max_executors=1000, ramp_initial=initial, ramp_slope=slope)
    m.submit(specs(0, 1000), now=0.0)
    launched_by = {}
    total = sum(len(i.executor_ids) for i in m.submit([], now=0.0) if isinstance(i, Launch))
    total = len([e for e in m.executors.values()])
    for step in range(1, 101):
        now = step * 0.05
        total += sum(len(i.executor_ids) for i in m.handle(Tick(now=now)) if isinstance(i, Launch))
        launched_by[now] = total
    for t in (1.0, 2.0, 5.0):
        expected = max(1.0, initial) + initial * t + slope * t * t / 2  # burst + integral of the rate
        assert abs(launched_by[t] - expected) <= 1.0 + 1e-9, (t, launched_by[t], expected)
