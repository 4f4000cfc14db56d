"""``dagrun bench scheduler``: the driver's own cost, with tasks that do next to nothing.

    dagrun bench scheduler [--executors 16] [--tasks 10000] [--maps 2000] [--json OUT]

State: none; each part builds what it measures and prints one figure.

Policy: three parts, each timed alone.
- dispatch: ``parallelize(range(n), n).map(f).sum()`` on local executors that are already
  running (a warm-up job launches them first), so tasks/s is the scheduler's throughput.
- shuffle: ``reduce_by_key`` over ``--maps`` map partitions into as many reduce partitions,
  with four records per map: the M x M bookkeeping, not the data, is what costs.
- state machine: no processes.  A ``TaskStateMachine`` holding 1,000 registered executors
  and 10,000 tasks handles heartbeats, commits and ticks; the figure is the mean per event.

Promise: it reports and asserts nothing; the targets it prints beside the figures are the
project's (1,500 tasks/s, aim 3,000; 20 s for 2,000 x 2,000; 0.2 ms per heartbeat).
"""

from __future__ import annotations

import argparse
import json
import operator
import time
from typing import Any

TARGETS = {"dispatch_tasks_per_s": 1500.0, "shuffle_seconds": 20.0, "heartbeat_ms": 0.2}


def _context(executors: int):
    from dagrun.api.context import Context

    conf = {"progress": "off", "ledger": "off", "job_history": 0, "speculation": False}
    return Context(executor="local", max_executors=executors, conf=conf)


def dispatch(executors: int, tasks: int) -> dict[str, Any]:
    with _context(executors) as ctx:
        started = time.perf_counter()
        ctx.parallelize(range(executors * 4), executors * 4).map(lambda x: x).sum()  # launch them all
        warm = time.perf_counter() - started
        started = time.perf_counter()
        total = ctx.parallelize(range(tasks), tasks).map(lambda x: x + 1).sum()
        seconds = time.perf_counter() - started
    assert total == tasks * (tasks + 1) // 2
    return {"tasks": tasks, "executors": executors, "seconds": round(seconds, 3), "warm_up_seconds": round(warm, 3),
            "tasks_per_s": round(tasks / seconds, 1)}


def shuffle(executors: int, maps: int) -> dict[str, Any]:
    with _context(executors) as ctx:
        ctx.parallelize(range(executors * 4), executors * 4).map(lambda x: x).sum()
        started = time.perf_counter()
        keys = ctx.parallelize(range(maps * 4), maps).map(lambda x: (x % maps, 1)) \
            .reduce_by_key(operator.add, maps).count()
        seconds = time.perf_counter() - started
    assert keys == maps
    return {"maps": maps, "reduces": maps, "executors": executors, "seconds": round(seconds, 3)}


def state_machine(executors: int = 1000, tasks: int = 10_000, events: int = 50_000) -> dict[str, Any]:
    from scheduler.core.events import ExecutorRegistered, HeartbeatReceived, TaskSpec, TaskSucceeded, Tick
    from scheduler.core.tasks import Policy, TaskStateMachine

    m = TaskStateMachine(Policy(max_executors=executors, ramp_initial=1e9, ramp_slope=0, heartbeat_timeout=1e9,
                                idle_timeout=1e9), now=0.0)
    m.submit([TaskSpec((0, p)) for p in range(tasks)], now=0.0)
    ids = [f"x{e + 1}" for e in range(executors)]
    for executor_id in ids:
        m.handle(ExecutorRegistered(executor_id, now=0.0))
    started = time.perf_counter()
    for i in range(events):
        m.handle(HeartbeatReceived(ids[i % executors], now=1.0 + i * 1e-5))
    heartbeat = (time.perf_counter() - started) / events
    commits, started, now = 0, time.perf_counter(), 2.0
    for executor_id in ids * 5:
        executor = m.executors[executor_id]
        if not executor.tasks:
            continue
        (key, attempt), = executor.tasks
        now += 1e-4
        m.handle(TaskSucceeded(executor_id, key, attempt, now))
        commits += 1
    commit = (time.perf_counter() - started) / max(1, commits)
    started = time.perf_counter()
    for i in range(20):
        m.handle(Tick(now + 1.0 + i))  # each one a full sweep (they are SWEEP_EVERY apart)
    sweep = (time.perf_counter() - started) / 20
    return {"executors": executors, "tasks": tasks, "heartbeat_ms": round(heartbeat * 1e3, 4),
            "commit_ms": round(commit * 1e3, 4), "tick_sweep_ms": round(sweep * 1e3, 3)}


def run(args: argparse.Namespace) -> int:
    executors = args.executors or 16
    figures = {"state_machine": state_machine()}
    print(f"state machine, 1,000 executors x 10,000 tasks: {figures['state_machine']['heartbeat_ms']} ms per "
          f"heartbeat (target <= {TARGETS['heartbeat_ms']}), {figures['state_machine']['commit_ms']} ms per commit, "
          f"{figures['state_machine']['tick_sweep_ms']} ms per tick sweep", flush=True)
    figures["dispatch"] = dispatch(executors, args.tasks)
    print(f"dispatch, {executors} local executors: {figures['dispatch']['tasks_per_s']} tasks/s over "
          f"{args.tasks} one-element tasks (target >= {TARGETS['dispatch_tasks_per_s']:g}, aim 3,000)", flush=True)
    figures["shuffle"] = shuffle(executors, args.maps)
    print(f"shuffle, {args.maps} x {args.maps} of small data: {figures['shuffle']['seconds']} s "
          f"(target <= {TARGETS['shuffle_seconds']:g} s)", flush=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"bench": "scheduler", "targets": TARGETS, **figures}, f, indent=2)
    return 0
