"""The state machine's cost per event does not grow with the job: counted, then timed generously.

Counting uses ``sys.setprofile`` (Python-level calls made while handling one event), which
is deterministic; the timing bound is 10x the 0.2 ms target, for a loaded test machine.
"""

from __future__ import annotations

import sys
import time

from scheduler.core.events import ExecutorRegistered, HeartbeatReceived, TaskSpec, TaskSucceeded, Tick
from scheduler.core.tasks import Policy, TaskStateMachine


def loaded_machine(executors: int, tasks: int, slots: int = 1) -> TaskStateMachine:
    m = TaskStateMachine(Policy(max_executors=executors, ramp_initial=1e9, ramp_slope=0, speculation=True,
                                heartbeat_timeout=1e9, idle_timeout=1e9, task_timeout=1e6), now=0.0)
    m.submit([TaskSpec((0, p)) for p in range(tasks)], now=0.0)
    for e in range(executors):
        m.handle(ExecutorRegistered(f"x{e + 1}", now=0.0, slots=slots))
    return m


def calls_during(fn) -> int:
    count = 0

    def profile(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def test_a_heartbeat_only_stamps_its_executor():
    m = loaded_machine(1000, 10_000)
    assert m.handle(HeartbeatReceived("x7", now=5.0)) == []
    assert m.executors["x7"].last_seen == 5.0
    small = loaded_machine(10, 100)
    assert calls_during(lambda: m.handle(HeartbeatReceived("x8", now=6.0))) \
        == calls_during(lambda: small.handle(HeartbeatReceived("x8", now=6.0))) <= 5


def test_heartbeat_cost_at_1000_executors_and_10000_tasks():
    m = loaded_machine(1000, 10_000)
    ids = [f"x{e + 1}" for e in range(1000)]
    n = 20_000
    started = time.perf_counter()
    for i in range(n):
        m.handle(HeartbeatReceived(ids[i % 1000], now=1.0 + i * 1e-4))
    per_event = (time.perf_counter() - started) / n
    assert per_event < 2e-3, f"{per_event * 1e3:.3f} ms per heartbeat"


def test_a_commit_costs_the_same_in_a_small_and_a_large_job():
    def cost(executors, tasks):
        m = loaded_machine(executors, tasks)
        (key, attempt), = m.executors["x1"].tasks
        return calls_during(lambda: m.handle(TaskSucceeded("x1", key, attempt, now=1.0)))

    small, large = cost(10, 100), cost(1000, 10_000)
    assert large <= small * 1.5 + 10, (small, large)


def test_a_tick_sweep_is_rate_limited_and_cheap():
    m = loaded_machine(1000, 10_000)
    first = calls_during(lambda: m.handle(Tick(now=1.0)))
    again = calls_during(lambda: m.handle(Tick(now=1.01)))  # within SWEEP_EVERY: no sweep
    assert again < first < 50  # the sweep loops over executors without a call per executor
    started = time.perf_counter()
    for i in range(50):
        m.handle(Tick(now=2.0 + i))
    assert (time.perf_counter() - started) / 50 < 0.05  # at most every 0.25 s: <20% of a core


def test_executors_with_several_slots_get_several_tasks_at_once():
    m = loaded_machine(3, 20, slots=4)
    assert [len(m.executors[f"x{e}"].tasks) for e in (1, 2, 3)] == [4, 4, 4]
    (key, attempt), *_ = m.executors["x2"].tasks
    out = m.handle(TaskSucceeded("x2", key, attempt, now=1.0))
    assert [type(i).__name__ for i in out] == ["Commit", "Assign"] and out[1].executor_id == "x2"
    assert len(m.executors["x2"].tasks) == 4
