"""The task state machine: attempts, retries, speculation, executor leases and retirement.

Sans-I/O: ``handle(event)`` and ``submit(specs, now)`` take events in and return
instructions out (``scheduler.core.events``); nothing here touches a socket, a process or a clock.
``scheduler.core.jobs`` joins it to the DAG scheduler; the driver performs the instructions.

State:
- ``tasks``: one ``TaskRecord`` per (stage, partition): pending | running | waiting | done,
  its attempts so far, task-error count and executor-loss count.
- The pending tasks, indexed by stage in submission order, retried tasks ahead of them.
- ``executors``: one ``ExecutorRecord`` per executor: launching | idle | busy | retiring,
  with its slots, running attempts, deadline (lease) and last heartbeat; the executors with
  a free slot in a set of their own; counts of launching and active executors.
- Per stage: a running median of task durations, done and total counts, the running tasks.
- ``ramp``: the launch-rate controller; ``log``: the event log (taken away when a job ends).

Policy:
- An executor runs up to ``slots`` tasks at once (1 unless it registered more).  A task goes
  to an executor with a free slot only when the executor's remaining lifetime covers the
  stage's expected task time (running median of the stage, else the estimate given at
  submission) plus ``retire_margin`` (invariant 5).
- An idle executor that cannot fit any pending task before its deadline, or that has been
  idle with nothing pending for ``idle_timeout``, is told to retire.
- Executors are launched on the ramp while tasks wait and fewer than ``max_executors`` live.
- Failures by kind (invariant 4): a task error counts toward ``max_attempts``; an executor
  loss reschedules without counting (up to ``max_executor_losses`` per task, since a task
  that kills its process every time must still stop); a fetch failure parks the task and
  asks for the lost map outputs (``Refetch``).  A result from an attempt that is no longer
  running is dropped (``Discard``); the first successful attempt wins (``Commit``).
- An attempt running longer than ``task_timeout`` is a task error ("timed out after N s")
  and its executor is killed (a running task cannot be stopped any other way).
- ``max_launch_failures`` executors in a row that end before registering, over at least
  ``launch_failure_window`` seconds, abort the job with the last one's own words: a broken
  environment must not relaunch forever, and a loaded host that starts executors slowly
  gets time.  Any executor that registers resets the count.
- Speculation: once ``speculation_quantile`` of a stage's tasks are done, a task whose only
  attempt has run longer than ``speculation_multiplier`` x the stage median gets one backup
  attempt on another executor.

Cost: an event costs time in what it changes, not in the job's size.  A heartbeat only
stamps its executor.  Every other event assigns free slots from the stage index and checks
retirement for the executor it touched.  What depends on time alone (missed heartbeats,
deadlines, launch and task timeouts, idle retirement) is swept on a ``Tick`` at most every
``SWEEP_EVERY`` seconds, so a driver reads its queued heartbeats before it judges silence.
"""

from __future__ import annotations

import heapq
from typing import Callable, Iterable

from scheduler.core.events import (
    AbortJob, Assign, Commit, Discard, Event, ExecutorLost, ExecutorRegistered, ExecutorRetired,
    HeartbeatReceived, Instruction, Kill, Launch, LogEntry, Refetch, RemoteError, Retire, TaskFailed,
    TaskKey, TaskSpec, TaskSucceeded, Throttled, Tick,
)
from scheduler.core.ramp import Ramp
from scheduler.core.records import ExecutorRecord, PendingQueue, Policy, Running, RunningMedian, TaskRecord

__all__ = ["ExecutorRecord", "Policy", "Running", "RunningMedian", "SWEEP_EVERY", "TaskRecord", "TaskStateMachine"]

SWEEP_EVERY = 0.25  # seconds between time-driven checks


class TaskStateMachine:
    """Events in, instructions out.  See the module docstring for the policy."""

    def __init__(self, policy: Policy, now: float = 0.0, id_prefix: str = "x"):
        self.policy = policy
        self.ramp = Ramp(policy.ramp_initial, policy.ramp_slope, now)
        self.tasks: dict[TaskKey, TaskRecord] = {}
        self.executors: dict[str, ExecutorRecord] = {}
        self.durations: dict[int, RunningMedian] = {}
        self.log: list[LogEntry] = []
        self._queue = PendingQueue()
        self._free: dict[str, None] = {}  # executors with a free slot, longest free first
        self._launching = 0
        self._active = 0  # not retiring
        self._by_stage: dict[int, dict[TaskKey, None]] = {}
        self._done: dict[int, int] = {}
        self._running: dict[int, dict[TaskKey, None]] = {}
        self._timeouts: list[tuple[float, TaskKey, int, str]] = []
        self._next_sweep = float("-inf")
        self._launch_failures = 0
        self._first_launch_failure = 0.0
        self._id_prefix = id_prefix
        self._launched = 0
        self._had_demand = False
        self._handlers: dict[type, Callable[[Event], list[Instruction]]] = {
            ExecutorRegistered: self._on_registered,
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
                self._by_stage.setdefault(spec.key[0], {})[spec.key] = None
            elif record.status == "running":
                continue
            elif record.status == "done":
                self._done[spec.key[0]] -= 1
            elif record.status == "pending":
                continue
            record.status = "pending"
            record.speculated = False
            self._queue.add(spec.key)
            self._log(now, "submit", key=spec.key)
        return self._schedule(now, None)

    def handle(self, event: Event) -> list[Instruction]:
        if type(event) is HeartbeatReceived:
            executor = self.executors.get(event.executor_id)
            if executor is not None:
                executor.last_seen = event.now
            return []
        out = self._handlers[type(event)](event)
        if any(isinstance(i, (Refetch, AbortJob)) for i in out):
            # let the DAG park the tasks that read the lost outputs first; its submit() schedules
            return out
        touched = getattr(event, "executor_id", None)
        return out + self._schedule(event.now, touched, sweep=type(event) is Tick)

    def park(self, keys: Iterable[TaskKey], now: float) -> list[TaskKey]:
        """Hold back pending tasks whose inputs were lost; returns the ones parked."""
        parked = []
        for key in keys:
            record = self.tasks.get(key)
            if record is not None and record.status == "pending":
                self._queue.remove(key)
                record.status = "waiting"
                parked.append(key)
        return parked

    def cancel_all(self, now: float) -> None:
        """Forget every unfinished task (the job was aborted); late results are discarded."""
        for key, record in list(self.tasks.items()):
            if record.status != "done":
                self._forget(key)
        self._queue.clear()
        self._launch_failures = 0

    def forget_stages(self, stage_ids: Iterable[int], now: float) -> None:
        """Drop a finished job's tasks and statistics from the live state."""
        for stage in stage_ids:
            for key in list(self._by_stage.get(stage, ())):
                if self.tasks[key].status == "pending":
                    self._queue.remove(key)
                self._forget(key)
            for index in (self._by_stage, self._done, self._running, self.durations):
                index.pop(stage, None)

    def take_log(self, start: int = 0) -> list[LogEntry]:
        """The log from ``start`` on; the live log is emptied."""
        entries = self.log[start:]
        self.log = []
        return entries

    # ---- queries ---------------------------------------------------------------------------

    @property
    def pending(self) -> list[TaskKey]:
        return list(self._queue)

    def expected_seconds(self, key: TaskKey) -> float:
        done = self.durations.get(key[0])
        if done is not None and done.count:
            return done.median()
        record = self.tasks.get(key)
        return record.spec.expected_seconds if record else 1.0

    # ---- handlers --------------------------------------------------------------------------

    def _on_registered(self, ev: ExecutorRegistered) -> list[Instruction]:
        old = self.executors.get(ev.executor_id)
        if old is not None and old.state == "launching":
            self._launching -= 1
        elif old is not None:
            return []  # registered twice: keep the first
        else:
            self._active += 1  # not launched by us (tests, a restarted peer): count it anyway
        deadline = None if ev.remaining is None else ev.now + ev.remaining
        self.executors[ev.executor_id] = ExecutorRecord(ev.executor_id, "idle", ev.now, ev.now, deadline,
                                                        max(1, ev.slots))
        self._free[ev.executor_id] = None
        self._launch_failures = 0
        self._log(ev.now, "register", ev.executor_id, detail=ev.remaining)
        return []

    def _on_succeeded(self, ev: TaskSucceeded) -> list[Instruction]:
        self._free_slot(ev.executor_id, ev.key, ev.attempt, ev.now)
        record = self.tasks.get(ev.key)
        run = self._stop_attempt(record, ev.key, ev.attempt)
        if record is None or run is None or record.status == "done":
            why = "stale attempt" if record is None or run is None else "another attempt committed first"
            self._log(ev.now, "discard", ev.executor_id, ev.key, ev.attempt, why)
            return [Discard(ev.key, ev.attempt, ev.executor_id, why)]
        if record.status == "pending":
            self._queue.remove(ev.key)
        record.status = "done"
        stage = ev.key[0]
        self._running.get(stage, {}).pop(ev.key, None)
        self._done[stage] = self._done.get(stage, 0) + 1
        self.durations.setdefault(stage, RunningMedian()).add(ev.now - run.started)
        self._log(ev.now, "commit", ev.executor_id, ev.key, ev.attempt, {"speculative": run.speculative})
        return [Commit(ev.key, ev.attempt, ev.executor_id)]

    def _on_failed(self, ev: TaskFailed) -> list[Instruction]:
        self._free_slot(ev.executor_id, ev.key, ev.attempt, ev.now)
        record = self.tasks.get(ev.key)
        if record is None or self._stop_attempt(record, ev.key, ev.attempt) is None or record.status == "done":
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
            times = "once" if record.failures == 1 else f"{record.failures} times"
            return self._abort(ev.key, ev.now, f"failed {times} (max_attempts="
                               f"{self.policy.max_attempts})", ev.error)
        self._requeue(record, ev.key)
        return []

    def _on_lost(self, ev: ExecutorLost) -> list[Instruction]:
        executor = self.executors.pop(ev.executor_id, None)
        if executor is None:
            return []
        self._drop_executor(executor)
        self._log(ev.now, "lost", ev.executor_id, detail=ev.reason)
        if executor.state == "launching" and not ev.refused:
            return self._launch_failed(ev.now, f"executor {ev.executor_id} ended before it registered: {ev.reason}")
        out: list[Instruction] = []
        for key, attempt in executor.tasks:
            record = self.tasks.get(key)
            if record is None or self._stop_attempt(record, key, attempt) is None or record.status == "done":
                continue
            out += self._requeue_after_loss(record, key, ev.now, f"its executor was lost ({ev.reason})")
        return out

    def _on_retired(self, ev: ExecutorRetired) -> list[Instruction]:
        executor = self.executors.pop(ev.executor_id, None)
        if executor is not None:
            self._drop_executor(executor)
            self._log(ev.now, "retired", ev.executor_id)
        return []

    def _on_throttled(self, ev: Throttled) -> list[Instruction]:
        self.ramp.throttle(ev.now)
        self._log(ev.now, "throttle", detail={"source": ev.source, "rate": self.ramp.base})
        return []

    # ---- helpers ---------------------------------------------------------------------------

    def _forget(self, key: TaskKey) -> None:
        record = self.tasks.pop(key, None)
        if record is not None:
            self._by_stage.get(key[0], {}).pop(key, None)
            self._running.get(key[0], {}).pop(key, None)

    def _stop_attempt(self, record: TaskRecord | None, key: TaskKey, attempt: int) -> Running | None:
        if record is None:
            return None
        run = record.running.pop(attempt, None)
        if run is not None and not record.running:
            self._running.get(key[0], {}).pop(key, None)
        return run

    def _requeue_after_loss(self, record: TaskRecord, key: TaskKey, now: float, why: str) -> list[Instruction]:
        record.losses += 1
        if record.losses >= self.policy.max_executor_losses:
            return self._abort(key, now, f"lost its executor {record.losses} times; the task may be "
                               "crashing or exhausting its process (check memory_budget and the input)", None)
        self._requeue(record, key)
        return []

    def _requeue(self, record: TaskRecord, key: TaskKey) -> None:
        if not record.running and record.status != "pending":
            record.status = "pending"
            self._queue.add(key, front=True)

    def _abort(self, key: TaskKey | None, now: float, reason: str, error) -> list[Instruction]:
        self._log(now, "abort", key=key, detail=reason)
        return [AbortJob(key, reason, error)]

    def _launch_failed(self, now: float, reason: str) -> list[Instruction]:
        if not self._launch_failures:
            self._first_launch_failure = now
        self._launch_failures += 1
        # a loaded host starts executors slowly, a broken one never: give up only on a run of
        # failures that has also lasted a while with no executor registering
        if (self._launch_failures < self.policy.max_launch_failures
                or now - self._first_launch_failure < self.policy.launch_failure_window
                or not (self._queue.count or any(self._running.values()))):
            return []
        count, self._launch_failures = self._launch_failures, 0
        return self._abort(None, now, f"{count} executors in a row ended before they registered, over "
                           f"{now - self._first_launch_failure:.0f} s; the last: {reason}", None)

    def _free_slot(self, executor_id: str, key: TaskKey, attempt: int, now: float) -> None:
        executor = self.executors.get(executor_id)
        if executor is None or executor.tasks.pop((key, attempt), 0) is not None:
            return
        executor.last_seen = now
        if executor.state == "busy":
            self._free[executor_id] = None
            if not executor.tasks:
                executor.state, executor.since = "idle", now

    def _drop_executor(self, executor: ExecutorRecord) -> None:
        self._free.pop(executor.executor_id, None)
        if executor.state == "launching":
            self._launching -= 1
        if executor.state != "retiring":
            self._active -= 1

    def _log(self, now, what, executor_id=None, key=None, attempt=None, detail=None) -> None:
        self.log.append(LogEntry(now, what, executor_id, key, attempt, detail))

    # ---- the scheduling pass ---------------------------------------------------------------

    def _schedule(self, now: float, touched: str | None, sweep: bool = False) -> list[Instruction]:
        out: list[Instruction] = []
        if sweep and now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY
            out += self._expire(now)
            if any(isinstance(i, AbortJob) for i in out):
                return out
            candidates: Iterable[str] = [e for e in self._free if not self.executors[e].tasks]
        else:
            candidates = (touched,) if touched in self._free else ()
        out += self._assign(now)
        out += self._retire_idle(now, candidates)
        out += self._launch(now)
        return out

    def _expire(self, now: float) -> list[Instruction]:
        out: list[Instruction] = []
        while self._timeouts and self._timeouts[0][0] <= now:
            _, key, attempt, executor_id = heapq.heappop(self._timeouts)
            record = self.tasks.get(key)
            if record is None or attempt not in record.running or executor_id not in self.executors:
                continue
            limit = self.policy.task_timeout
            error = RemoteError("TaskTimeout", f"attempt {attempt} of task {key} timed out after {limit:g} s "
                                "(task_timeout); its executor was killed", "", "error")
            out.append(Kill(executor_id, f"its task ran longer than task_timeout ({limit:g} s)", (key, attempt)))
            out += self._on_failed(TaskFailed(executor_id, key, attempt, now, "error", error))
            out += self._on_lost(ExecutorLost(executor_id, now, "killed: task_timeout"))
        for executor in list(self.executors.values()):
            if executor.state == "launching":
                if now - executor.since > self.policy.launch_timeout:
                    del self.executors[executor.executor_id]
                    self._drop_executor(executor)
                    self._log(now, "kill", executor.executor_id, detail="never registered")
                    out.append(Kill(executor.executor_id, "it did not register within launch_timeout"))
                    out += self._launch_failed(now, f"executor {executor.executor_id} did not register within "
                                               f"launch_timeout ({self.policy.launch_timeout:g} s)")
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
        out = []
        for stage, running in self._running.items():
            median = self.durations.get(stage)
            if not running or median is None or not median.count:
                continue
            if self._done.get(stage, 0) < self.policy.speculation_quantile * len(self._by_stage.get(stage, ())):
                continue
            threshold = max(self.policy.speculation_min_seconds,
                            self.policy.speculation_multiplier * median.median())
            for key in running:
                record = self.tasks[key]
                if record.speculated or len(record.running) != 1:
                    continue
                (run,) = record.running.values()
                if now - run.started > threshold:
                    out.append(key)
        return out

    def _assign(self, now: float) -> list[Instruction]:
        out: list[Instruction] = []
        if not self._free:
            return out
        speculative: list[TaskKey] | None = None
        for executor_id in list(self._free):
            executor = self.executors[executor_id]
            while len(executor.tasks) < executor.slots:
                key = self._queue.first(lambda k: self._fits(executor, k, now)) if self._queue.count else None
                is_backup = False
                if key is None:
                    if not self.policy.speculation:
                        break
                    if speculative is None:
                        speculative = self._speculatable(now)
                    key = next((k for k in speculative if self._fits(executor, k, now) and executor_id
                                not in {r.executor_id for r in self.tasks[k].running.values()}), None)
                    if key is None:
                        break
                    speculative.remove(key)
                    is_backup = True
                out.append(self._start_attempt(executor, key, now, is_backup))
            if speculative is not None and not speculative and not self._queue.count:
                break
            if not self._queue.count and not self.policy.speculation:
                break
        return out

    def _start_attempt(self, executor: ExecutorRecord, key: TaskKey, now: float, is_backup: bool) -> Assign:
        record = self.tasks[key]
        attempt = record.next_attempt
        record.next_attempt += 1
        if record.status == "pending":
            self._queue.remove(key)
        record.status = "running"
        record.speculated = record.speculated or is_backup
        record.running[attempt] = Running(executor.executor_id, now, is_backup)
        self._running.setdefault(key[0], {})[key] = None
        executor.tasks[(key, attempt)] = None
        if executor.state == "idle":
            executor.state, executor.since = "busy", now
        if len(executor.tasks) >= executor.slots:
            self._free.pop(executor.executor_id, None)
        if self.policy.task_timeout is not None:
            heapq.heappush(self._timeouts, (now + self.policy.task_timeout, key, attempt, executor.executor_id))
        self._log(now, "assign", executor.executor_id, key, attempt, {"speculative": is_backup})
        return Assign(executor.executor_id, key, attempt, is_backup)

    def _retire_idle(self, now: float, candidates: Iterable[str]) -> list[Instruction]:
        out: list[Instruction] = []
        cheapest = None
        for executor_id in list(candidates):
            executor = self.executors.get(executor_id)
            if executor is None or executor.state != "idle":
                continue
            reason = None
            if executor.deadline is not None:
                if cheapest is None:
                    cheapest = min((self.expected_seconds(k) for k in
                                    self._queue.heads()), default=0.0)
                if executor.deadline - now < cheapest + self.policy.retire_margin:
                    reason = "too close to its deadline for any pending task"
            if reason is None and not self._queue.count and now - executor.since > self.policy.idle_timeout:
                reason = "idle"
            if reason:
                executor.state, executor.since = "retiring", now
                self._free.pop(executor_id, None)
                self._active -= 1
                self._log(now, "retire", executor.executor_id, detail=reason)
                out.append(Retire(executor.executor_id, reason))
        return out

    def _launch(self, now: float) -> list[Instruction]:
        demand = self._queue.count
        if demand and not self._had_demand:
            self.ramp.restart(now)
        self._had_demand = demand > 0
        wanted = min(demand - self._launching, self.policy.max_executors - self._active)
        count = self.ramp.take(wanted, now) if wanted > 0 else 0
        if not count:
            return []
        ids = []
        for _ in range(count):
            self._launched += 1
            executor_id = f"{self._id_prefix}{self._launched}"
            self.executors[executor_id] = ExecutorRecord(executor_id, "launching", now, now)
            self._launching += 1
            self._active += 1
            self._log(now, "launch", executor_id)
            ids.append(executor_id)
        return [Launch(tuple(ids))]
