"""The task state machine: attempts, retries, speculation, executor leases and retirement.

Sans-I/O: ``handle(event)`` and ``submit(specs, now)`` take events in and return
instructions out (``scheduler.core.events``); nothing here touches a socket, a process or a clock.
The driver (``scheduler.driver``) performs the instructions.

State:
- ``tasks``: one ``TaskRecord`` per (stage, partition): pending | running | waiting | done,
  its attempts so far, task-error count and executor-loss count.
- ``pending``: the tasks that need an executor, in submission order.
- ``executors``: one ``ExecutorRecord`` per executor: launching | idle | busy | retiring,
  with its deadline (lease) and last heartbeat.
- ``ramp``: the launch-rate controller; ``log``: the event log.

Policy:
- Each executor runs one task at a time.  A task goes to an idle executor only when the
  executor's remaining lifetime covers the stage's expected task time (running median of
  the stage, else the estimate given at submission) plus ``retire_margin`` (invariant 5).
- An idle executor that cannot fit any pending task before its deadline, or that has been
  idle with nothing pending for ``idle_timeout``, is told to retire.
- Executors are launched on the ramp while tasks wait and fewer than ``max_executors`` live.
- Failures by kind (invariant 4): a task error counts toward ``max_attempts``; an executor
  loss reschedules without counting (up to ``max_executor_losses`` per task, since a task
  that kills its process every time must still stop); a fetch failure parks the task and
  asks for the lost map outputs (``Refetch``).  A result from an attempt that is no longer
  running is dropped (``Discard``); the first successful attempt wins (``Commit``).
- Speculation: once ``speculation_quantile`` of a stage's tasks are done, a task whose only
  attempt has run longer than ``speculation_multiplier`` x the stage median gets one backup
  attempt on another executor.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, Literal

from scheduler.core.events import (
    AbortJob, Assign, Commit, Discard, Event, ExecutorLost, ExecutorRegistered, ExecutorRetired,
    HeartbeatReceived, Instruction, Kill, Launch, LogEntry, Refetch, Retire, TaskFailed, TaskSpec,
    TaskKey, TaskSucceeded, Throttled, Tick,
)
from scheduler.core.ramp import Ramp


@dataclass(frozen=True)
class Policy:
    max_executors: int = 2
    max_attempts: int = 4
    max_executor_losses: int = 8
    retire_margin: float = 5.0
    idle_timeout: float = 60.0
    heartbeat_timeout: float = 30.0
    launch_timeout: float = 120.0
    ramp_initial: float = 4.0
    ramp_slope: float = 4.0
    speculation: bool = True
    speculation_quantile: float = 0.75
    speculation_multiplier: float = 1.5
    speculation_min_seconds: float = 0.2


@dataclass
class Running:
    executor_id: str
    started: float
    speculative: bool


@dataclass
class TaskRecord:
    spec: TaskSpec
    status: Literal["pending", "running", "waiting", "done"] = "pending"
    next_attempt: int = 0
    failures: int = 0
    losses: int = 0
    speculated: bool = False
    running: dict[int, Running] = field(default_factory=dict)


@dataclass
class ExecutorRecord:
    executor_id: str
    state: Literal["launching", "idle", "busy", "retiring"]
    since: float
    last_seen: float
    deadline: float | None = None
    task: tuple[TaskKey, int] | None = None


class TaskStateMachine:
    """Events in, instructions out.  See the module docstring for the policy."""

    def __init__(self, policy: Policy, now: float = 0.0, id_prefix: str = "x"):
        self.policy = policy
        self.ramp = Ramp(policy.ramp_initial, policy.ramp_slope, now)
        self.tasks: dict[TaskKey, TaskRecord] = {}
        self.pending: dict[TaskKey, None] = {}
        self.executors: dict[str, ExecutorRecord] = {}
        self.durations: dict[int, list[float]] = {}
        self.log: list[LogEntry] = []
        self._id_prefix = id_prefix
        self._launched = 0
        self._had_demand = False
        self._handlers: dict[type, Callable[[Event], list[Instruction]]] = {
            ExecutorRegistered: self._on_registered,
            HeartbeatReceived: self._on_heartbeat,
            TaskSucceeded: self._on_succeeded,
            TaskFailed: self._on_failed,
            ExecutorLost: self._on_lost,
            ExecutorRetired: self._on_retired,
            Throttled: self._on_throttled,
            Tick: lambda event: [],
        }

    # ---- entry points ----------------------------------------------------------------------

    def submit(self, specs: list[TaskSpec], now: float) -> list[Instruction]:
        """Make tasks runnable: new ones, finished ones whose output was lost, parked ones."""
        for spec in specs:
            record = self.tasks.get(spec.key)
            if record is None:
                self.tasks[spec.key] = record = TaskRecord(spec)
            elif record.status == "running":
                continue
            record.status = "pending"
            record.speculated = False
            self.pending[spec.key] = None
            self._log(now, "submit", key=spec.key)
        return self._schedule(now)

    def handle(self, event: Event) -> list[Instruction]:
        out = self._handlers[type(event)](event)
        if any(isinstance(i, Refetch) for i in out):
            # let the DAG park the tasks that read the lost outputs first; its submit() schedules
            return out
        return out + self._schedule(event.now)

    def park(self, keys: list[TaskKey], now: float) -> list[TaskKey]:
        """Hold back pending tasks whose inputs were lost; returns the ones parked."""
        parked = [k for k in keys if k in self.pending]
        for key in parked:
            del self.pending[key]
            self.tasks[key].status = "waiting"
        return parked

    def cancel_all(self, now: float) -> None:
        """Forget every unfinished task (the job was aborted); late results are discarded."""
        for key, record in list(self.tasks.items()):
            if record.status != "done":
                del self.tasks[key]
        self.pending.clear()

    # ---- queries ---------------------------------------------------------------------------

    def live_executors(self) -> list[ExecutorRecord]:
        return [e for e in self.executors.values() if e.state != "launching"]

    def expected_seconds(self, key: TaskKey) -> float:
        done = self.durations.get(key[0])
        if done:
            return statistics.median(done)
        record = self.tasks.get(key)
        return record.spec.expected_seconds if record else 1.0

    # ---- handlers --------------------------------------------------------------------------

    def _on_registered(self, ev: ExecutorRegistered) -> list[Instruction]:
        deadline = None if ev.remaining is None else ev.now + ev.remaining
        self.executors[ev.executor_id] = ExecutorRecord(ev.executor_id, "idle", ev.now, ev.now, deadline)
        self._log(ev.now, "register", ev.executor_id, detail=ev.remaining)
        return []

    def _on_heartbeat(self, ev: HeartbeatReceived) -> list[Instruction]:
        executor = self.executors.get(ev.executor_id)
        if executor is not None:
            executor.last_seen = ev.now
        return []

    def _on_succeeded(self, ev: TaskSucceeded) -> list[Instruction]:
        self._free_executor(ev.executor_id, ev.now)
        record = self.tasks.get(ev.key)
        run = record.running.pop(ev.attempt, None) if record else None
        if record is None or run is None or record.status == "done":
            why = "stale attempt" if record is None or run is None else "another attempt committed first"
            self._log(ev.now, "discard", ev.executor_id, ev.key, ev.attempt, why)
            return [Discard(ev.key, ev.attempt, ev.executor_id, why)]
        record.status = "done"
        self.pending.pop(ev.key, None)
        self.durations.setdefault(ev.key[0], []).append(ev.now - run.started)
        self._log(ev.now, "commit", ev.executor_id, ev.key, ev.attempt, {"speculative": run.speculative})
        return [Commit(ev.key, ev.attempt, ev.executor_id)]

    def _on_failed(self, ev: TaskFailed) -> list[Instruction]:
        self._free_executor(ev.executor_id, ev.now)
        record = self.tasks.get(ev.key)
        if record is None or record.running.pop(ev.attempt, None) is None or record.status == "done":
            self._log(ev.now, "discard", ev.executor_id, ev.key, ev.attempt, "stale failure")
            return [Discard(ev.key, ev.attempt, ev.executor_id, "stale failure")]
        self._log(ev.now, "fail", ev.executor_id, ev.key, ev.attempt, ev.kind)
        if ev.kind == "fetch" and ev.error is not None and ev.error.shuffle_id is not None:
            if not record.running:
                record.status = "waiting"
            self._log(ev.now, "refetch", key=ev.key, detail=(ev.error.shuffle_id, ev.error.map_ids))
            return [Refetch(ev.key, ev.error.shuffle_id, ev.error.map_ids, ev.attempt)]
        if ev.kind == "lost":
            return self._requeue_after_loss(record, ev.key, ev.now, "the task's executor failed")
        record.failures += 1
        if record.failures >= self.policy.max_attempts:
            return self._abort(ev.key, ev.now, f"failed {record.failures} times (max_attempts="
                               f"{self.policy.max_attempts})", ev.error)
        self._requeue(record, ev.key)
        return []

    def _on_lost(self, ev: ExecutorLost) -> list[Instruction]:
        executor = self.executors.pop(ev.executor_id, None)
        if executor is None:
            return []
        self._log(ev.now, "lost", ev.executor_id, detail=ev.reason)
        if executor.task is None:
            return []
        key, attempt = executor.task
        record = self.tasks.get(key)
        if record is None or record.running.pop(attempt, None) is None or record.status == "done":
            return []
        return self._requeue_after_loss(record, key, ev.now, f"its executor was lost ({ev.reason})")

    def _on_retired(self, ev: ExecutorRetired) -> list[Instruction]:
        if self.executors.pop(ev.executor_id, None) is not None:
            self._log(ev.now, "retired", ev.executor_id)
        return []

    def _on_throttled(self, ev: Throttled) -> list[Instruction]:
        self.ramp.throttle(ev.now)
        self._log(ev.now, "throttle", detail={"source": ev.source, "rate": self.ramp.base})
        return []

    # ---- helpers ---------------------------------------------------------------------------

    def _requeue_after_loss(self, record: TaskRecord, key: TaskKey, now: float, why: str) -> list[Instruction]:
        record.losses += 1
        if record.losses >= self.policy.max_executor_losses:
            return self._abort(key, now, f"lost its executor {record.losses} times; the task may be "
                               "crashing or exhausting its process (check memory_budget and the input)", None)
        self._requeue(record, key)
        return []

    def _requeue(self, record: TaskRecord, key: TaskKey) -> None:
        if not record.running:
            record.status = "pending"
            self.pending[key] = None
            # move to the front: a retried task is usually on the critical path
            self.pending = {key: None, **self.pending}

    def _abort(self, key: TaskKey, now: float, reason: str, error) -> list[Instruction]:
        self._log(now, "abort", key=key, detail=reason)
        return [AbortJob(key, reason, error)]

    def _free_executor(self, executor_id: str, now: float) -> None:
        executor = self.executors.get(executor_id)
        if executor is not None:
            executor.task = None
            executor.last_seen = now
            if executor.state == "busy":
                executor.state, executor.since = "idle", now

    def _log(self, now, what, executor_id=None, key=None, attempt=None, detail=None) -> None:
        self.log.append(LogEntry(now, what, executor_id, key, attempt, detail))

    # ---- the scheduling pass ---------------------------------------------------------------

    def _schedule(self, now: float) -> list[Instruction]:
        out: list[Instruction] = self._expire(now)
        out += self._assign(now)
        out += self._retire_idle(now)
        out += self._launch(now)
        return out

    def _expire(self, now: float) -> list[Instruction]:
        out: list[Instruction] = []
        for executor in list(self.executors.values()):
            if executor.state == "launching":
                if now - executor.since > self.policy.launch_timeout:
                    del self.executors[executor.executor_id]
                    self._log(now, "kill", executor.executor_id, detail="never registered")
                    out.append(Kill(executor.executor_id, "it did not register within launch_timeout"))
                continue
            silent = now - executor.last_seen > self.policy.heartbeat_timeout
            dead = executor.deadline is not None and now > executor.deadline
            if silent or dead:
                reason = "missed heartbeats" if silent else "passed its deadline"
                out.append(Kill(executor.executor_id, reason))
                out += self._on_lost(ExecutorLost(executor.executor_id, now, reason))
        return out

    def _fits(self, executor: ExecutorRecord, key: TaskKey, now: float) -> bool:
        if executor.deadline is None:
            return True
        return executor.deadline - now >= self.expected_seconds(key) + self.policy.retire_margin

    def _speculatable(self, now: float) -> list[TaskKey]:
        if not self.policy.speculation:
            return []
        out = []
        for key, record in self.tasks.items():
            if record.status != "running" or record.speculated or len(record.running) != 1:
                continue
            stage = key[0]
            durations = self.durations.get(stage)
            if not durations:
                continue
            total = sum(1 for k in self.tasks if k[0] == stage)
            if len(durations) < self.policy.speculation_quantile * total:
                continue
            threshold = max(self.policy.speculation_min_seconds,
                            self.policy.speculation_multiplier * statistics.median(durations))
            (run,) = record.running.values()
            if now - run.started > threshold:
                out.append(key)
        return out

    def _assign(self, now: float) -> list[Instruction]:
        out: list[Instruction] = []
        idle = sorted((e for e in self.executors.values() if e.state == "idle"), key=lambda e: e.since)
        speculative = self._speculatable(now) if idle else []
        for executor in idle:
            key = next((k for k in self.pending if self._fits(executor, k, now)), None)
            is_backup = False
            if key is None:
                key = next((k for k in speculative if self._fits(executor, k, now) and executor.executor_id
                            not in {r.executor_id for r in self.tasks[k].running.values()}), None)
                is_backup = key is not None
                if is_backup:
                    speculative.remove(key)
            if key is None:
                continue
            record = self.tasks[key]
            attempt = record.next_attempt
            record.next_attempt += 1
            record.status = "running"
            record.speculated = record.speculated or is_backup
            record.running[attempt] = Running(executor.executor_id, now, is_backup)
            self.pending.pop(key, None)
            executor.state, executor.since, executor.task = "busy", now, (key, attempt)
            self._log(now, "assign", executor.executor_id, key, attempt, {"speculative": is_backup})
            out.append(Assign(executor.executor_id, key, attempt, is_backup))
        return out

    def _retire_idle(self, now: float) -> list[Instruction]:
        out: list[Instruction] = []
        cheapest = min((self.expected_seconds(k) for k in self.pending), default=0.0)
        for executor in self.executors.values():
            if executor.state != "idle":
                continue
            reason = None
            if executor.deadline is not None and executor.deadline - now < cheapest + self.policy.retire_margin:
                reason = "too close to its deadline for any pending task"
            elif not self.pending and now - executor.since > self.policy.idle_timeout:
                reason = "idle"
            if reason:
                executor.state, executor.since = "retiring", now
                self._log(now, "retire", executor.executor_id, detail=reason)
                out.append(Retire(executor.executor_id, reason))
        return out

    def _launch(self, now: float) -> list[Instruction]:
        demand = len(self.pending)
        if demand and not self._had_demand:
            self.ramp.restart(now)
        self._had_demand = demand > 0
        launching = sum(1 for e in self.executors.values() if e.state == "launching")
        active = sum(1 for e in self.executors.values() if e.state != "retiring")
        wanted = min(demand - launching, self.policy.max_executors - active)
        count = self.ramp.take(wanted, now) if wanted > 0 else 0
        if not count:
            return []
        ids = []
        for _ in range(count):
            self._launched += 1
            executor_id = f"{self._id_prefix}{self._launched}"
            self.executors[executor_id] = ExecutorRecord(executor_id, "launching", now, now)
            self._log(now, "launch", executor_id)
            ids.append(executor_id)
        return [Launch(tuple(ids))]
