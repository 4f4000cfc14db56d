"""The job core: everything the driver decides between the DAG scheduler and the task state machine.

Sans-I/O: ``handle(event)`` takes one event (below) and returns instructions; it reads no
clock, opens no socket and starts no process.  ``scheduler.driver`` is the I/O loop around
it, and a simulator can drive the same object in virtual time.

State:
- ``machine`` (``TaskStateMachine``) and ``tracker`` (``MapOutputTracker``): both live as long
  as the core, so executors and persisted map outputs outlive a job.
- ``dag``: the running job's ``DagState`` (one job at a time), the results waiting for their
  commit, the job's attempt records, and how often each map output was refetched.
- Per executor: the stage blobs it holds (mirrored from what was sent, so an evicted stage is
  sent again) and its open attempts.

Policy:
- A task result is committed or discarded as the state machine says; a commit goes to the
  DAG, whose newly runnable tasks are submitted at once.
- A fetch failure unregisters the named map outputs, parks every task that reads the shuffle
  and reruns only the lost maps.  One map output refetched more than ``max_refetches`` times
  in a job fails the job naming the block: a block that is corrupt on every attempt must not loop.
- An executor is sent a stage blob unless it holds that stage; the mirror keeps fewer stages
  (``HELD_STAGES``) than the executor's cache, so it never believes in an evicted one.  An
  executor that says it lacks a stage anyway has its mirror cleared and the task rerun
  (counted as a loss, so it stays bounded).
- A task may compute a group of consecutive partitions (``scheduler.core.coalesce``): it is
  sent the group's other partitions as ``members``, its ``GroupValues`` commit each partition,
  and ``Committed``/``DropOutput`` come one per partition.
- A committed result (a ``TaskValue``) adds its size to the job's total; past
  ``max_result_size`` the job fails with ``ResultTooLarge`` before anything is loaded.
- When a job ends, its tasks, durations and log leave the live state; the records go out
  with ``JobDone``/``JobFailed`` (the caller keeps them in its JobInfo).

Interface (stable; the simulator depends on it):
- Events in: ``SubmitJob``, ``CancelJob``, ``ResultReceived``, ``ExecutorGone``, ``BackendFailed``,
  and the state machine's own ``ExecutorRegistered``, ``HeartbeatReceived``, ``Throttled``, ``Tick``.
- Instructions out: ``SendTask`` (the fields of ``RunTask`` plus the executor), ``Launch``,
  ``Kill``, ``Retire`` (the state machine's), ``Committed`` (a task's output was accepted: the
  hook for fault injection and progress), ``DropOutput`` (delete a discarded attempt's output),
  ``JobDone`` and ``JobFailed`` (with the job's attempt records and log).

Promise: every job ends with exactly one ``JobDone`` or ``JobFailed``; after it the core
holds nothing of the job but the map outputs other jobs may reuse.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from scheduler.core.dag import DagState, JobSpec, MapOutputTracker, StageSpec, split_values
from scheduler.core.events import (
    AbortJob, Assign, Commit, Discard, ExecutorLost, ExecutorRegistered, ExecutorRetired, HeartbeatReceived,
    Kill, Launch, LogEntry, Refetch, RemoteError, Retire, TaskFailed, TaskKey, TaskMetrics, TaskSucceeded,
    Throttled, Tick,
)
from scheduler.core.tasks import Policy, TaskStateMachine
from scheduler.errors import ExecutorsCannotStart, JobAborted
from scheduler.results import ResultTooLarge, TaskValue

__all__ = [  # the interface: events in, instructions out (Launch, Kill, Retire are the state machine's)
    "AttemptRecord", "BackendFailed", "CancelJob", "Committed", "DropOutput", "ExecutorGone", "ExecutorRegistered",
    "HELD_STAGES", "HeartbeatReceived", "JobCore", "JobDone", "JobFailed", "Kill", "Launch", "ResultReceived",
    "Retire", "SendTask", "SubmitJob", "Throttled", "Tick",
]

HELD_STAGES = 16  # half the executor's stage cache (dagrun.runtime.task keeps 32)


# ---- events in ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SubmitJob:
    job: JobSpec
    now: float


@dataclass(frozen=True)
class CancelJob:
    job_id: str | None  # None: whatever job is running
    now: float
    error: BaseException


@dataclass(frozen=True)
class ResultReceived:
    executor_id: str
    key: TaskKey
    attempt: int
    now: float
    value: Any = None
    error: RemoteError | None = None
    metrics: TaskMetrics = field(default_factory=TaskMetrics)
    finished: float = 0.0  # wall clock, for the attempt record


@dataclass(frozen=True)
class ExecutorGone:
    """The executor's channel closed or its process ended (or a send to it failed)."""

    executor_id: str
    now: float
    reason: str
    refused: bool = False  # the launch itself was refused (a throttle), not a start-up failure
    wall: float = 0.0


@dataclass(frozen=True)
class BackendFailed:
    """The backend cannot launch executors at all (e.g. no such Lambda function)."""

    now: float
    error: BaseException


CoreEvent = (SubmitJob | CancelJob | ResultReceived | ExecutorGone | BackendFailed | ExecutorRegistered
             | HeartbeatReceived | Throttled | Tick)


# ---- instructions out ---------------------------------------------------------------------

@dataclass(frozen=True)
class SendTask:
    executor_id: str
    job_id: str
    stage_id: int
    partition: int
    attempt: int
    stage_key: str
    stage_blob: bytes | None  # None when the executor holds the stage already
    task_blob: bytes
    inputs: dict
    runner: str
    speculative: bool = False
    members: tuple[tuple[int, bytes], ...] = ()  # a group's other partitions and their task blobs


@dataclass(frozen=True)
class Committed:
    stage: StageSpec
    key: TaskKey
    value: Any


@dataclass(frozen=True)
class DropOutput:
    value: Any


@dataclass(frozen=True)
class JobDone:
    job_id: str
    results: dict[int, Any]
    attempts: list
    log: list[LogEntry]


@dataclass(frozen=True)
class JobFailed:
    job_id: str
    error: BaseException
    attempts: list
    log: list[LogEntry]


@dataclass
class AttemptRecord:
    """One task attempt, for the event log, the cost ledger and the job report."""

    job_id: str
    stage_id: int
    partition: int
    attempt: int
    executor_id: str
    speculative: bool
    assigned: float  # wall clock
    finished: float | None = None
    outcome: str = "running"  # running | committed | discarded | failed | fetch-failed | lost
    metrics: TaskMetrics = field(default_factory=TaskMetrics)
    error: str | None = None
    epoch: int = 0  # the map-output tracker's epoch when the attempt was launched


class JobCore:
    """Events in, instructions out, for whole jobs.  See the module docstring."""

    def __init__(self, policy: Policy, now: float = 0.0, *, id_prefix: str = "x", max_refetches: int = 4,
                 wall: Any = None, max_result_size: int = 0):
        self.machine = TaskStateMachine(policy, now=now, id_prefix=id_prefix)
        self.tracker = MapOutputTracker()
        self.max_refetches = max_refetches
        self.max_result_size = max_result_size  # bytes of a job's serialized results; 0: no limit
        self._result_bytes = self._result_tasks = 0
        self.dag: DagState | None = None
        self.attempts: list[AttemptRecord] = []  # the running job's
        self._wall = wall or (lambda now: now)  # monotonic -> wall clock, for the records only
        self._log_start = 0
        self._results: dict[tuple[TaskKey, int], Any] = {}
        self._open: dict[tuple[TaskKey, int], AttemptRecord] = {}
        self._open_by_executor: dict[str, set[tuple[TaskKey, int]]] = {}
        self._held: dict[str, dict[str, None]] = {}
        self._by_attempt: dict[tuple[TaskKey, int], AttemptRecord] = {}
        self._current: tuple | None = None  # the attempt whose result is being handled
        self._refetched: Counter = Counter()

    # ---- the one entry point ---------------------------------------------------------------

    def handle(self, ev: CoreEvent) -> list:
        if isinstance(ev, ResultReceived):
            return self._on_result(ev)
        if isinstance(ev, ExecutorGone):
            return self._on_gone(ev)
        if isinstance(ev, SubmitJob):
            return self._start(ev.job, ev.now)
        if isinstance(ev, CancelJob):
            if self.dag is None or ev.job_id not in (None, self.dag.job.job_id):
                return []
            return self._fail(ev.error, ev.now)
        if isinstance(ev, BackendFailed):
            return self._fail(ev.error, ev.now) if self.dag is not None else []
        return self._run(self.machine.handle(ev), ev.now)

    # ---- events ----------------------------------------------------------------------------

    def _start(self, job: JobSpec, now: float) -> list:
        if self.dag is not None:
            raise RuntimeError(f"job {self.dag.job.job_id} is still running; one job runs at a time")
        self.dag = DagState(job, self.tracker)
        self.attempts, self._log_start, self._refetched = [], len(self.machine.log), Counter()
        self._result_bytes = self._result_tasks = 0
        specs = self.dag.start()
        if self.dag.done:
            return self._finish(now)
        return self._run(self.machine.submit(specs, now), now)

    def _on_result(self, ev: ResultReceived) -> list:
        attempt_key = (ev.key, ev.attempt)
        record = self._close_attempt(ev.executor_id, attempt_key)
        self._current = (attempt_key, record) if record is not None else None
        if record is not None:
            record.finished, record.metrics = ev.finished or self._wall(ev.now), ev.metrics
        out: list = []
        if ev.metrics.store_requests.get("throttled"):  # the store said "slow down"
            out += self._run(self.machine.handle(Throttled(ev.now, "store")), ev.now)
        if ev.error is None:
            self._results[attempt_key] = ev.value
            return out + self._run(self.machine.handle(TaskSucceeded(ev.executor_id, ev.key, ev.attempt, ev.now)),
                                   ev.now)
        kind = ev.error.kind
        if kind == "error" and "lacks stage" in ev.error.message:
            self._held.pop(ev.executor_id, None)  # it evicted a stage the mirror still counted
            kind = "lost"
        if record is not None:
            record.outcome = "fetch-failed" if kind == "fetch" else "failed"
            record.error = f"{ev.error.type_name}: {ev.error.message}"
        failed = TaskFailed(ev.executor_id, ev.key, ev.attempt, ev.now, kind, ev.error)
        return out + self._run(self.machine.handle(failed), ev.now)

    def _on_gone(self, ev: ExecutorGone) -> list:
        self._held.pop(ev.executor_id, None)
        for attempt_key in self._open_by_executor.pop(ev.executor_id, set()):
            record = self._open.pop(attempt_key, None)
            if record is not None and record.outcome == "running":
                record.outcome, record.finished = "lost", ev.wall or self._wall(ev.now)
        executor = self.machine.executors.get(ev.executor_id)
        if executor is None:
            return []
        if executor.state == "retiring":
            return self._run(self.machine.handle(ExecutorRetired(ev.executor_id, ev.now)), ev.now)
        lost = ExecutorLost(ev.executor_id, ev.now, ev.reason, ev.refused)
        return self._run(self.machine.handle(lost), ev.now)

    # ---- the machine's instructions --------------------------------------------------------

    def _run(self, instructions: list, now: float) -> list:
        out: list = []
        for ins in instructions:
            if isinstance(ins, Assign):
                out += self._assign(ins, now)
            elif isinstance(ins, Commit):
                out += self._commit(ins, now)
            elif isinstance(ins, Discard):
                out += self._discard(ins)
            elif isinstance(ins, Refetch):
                out += self._refetch(ins, now)
            elif isinstance(ins, AbortJob):
                out += self._abort(ins, now)
            elif isinstance(ins, Kill):
                self._killed(ins, now)
                out.append(ins)
            else:  # Launch, Retire: the I/O shell's business
                out.append(ins)
        return out

    def _assign(self, ins: Assign, now: float) -> list:
        dag = self.dag
        inputs = dag.inputs(ins.key) if dag is not None else None
        if inputs is None:
            if dag is None:
                error = RemoteError("Cancelled", "the job is no longer running", "", "error")
                failed = TaskFailed(ins.executor_id, ins.key, ins.attempt, now, "lost", error)
            else:
                shuffle_id, map_ids = dag.missing_inputs(ins.key)
                error = RemoteError("FetchFailed", "map outputs missing before the task started", "", "fetch",
                                    shuffle_id, map_ids)
                failed = TaskFailed(ins.executor_id, ins.key, ins.attempt, now, "fetch", error)
            return self._run(self.machine.handle(failed), now)
        job = dag.job
        stage_key = f"{job.job_id}/{ins.key[0]}"
        held = self._held.setdefault(ins.executor_id, {})
        blob = None
        if stage_key not in held:
            blob = job.stage_blobs[ins.key[0]]
            held[stage_key] = None
            while len(held) > HELD_STAGES:
                del held[next(iter(held))]
        record = AttemptRecord(job.job_id, ins.key[0], ins.key[1], ins.attempt, ins.executor_id,
                               ins.speculative, self._wall(now), epoch=self.tracker.epoch)
        self.attempts.append(record)
        self._open[(ins.key, ins.attempt)] = record
        self._by_attempt[(ins.key, ins.attempt)] = record
        self._open_by_executor.setdefault(ins.executor_id, set()).add((ins.key, ins.attempt))
        members = tuple((p, job.task_blobs[(ins.key[0], p)]) for p in dag.members(ins.key)[1:])
        return [SendTask(ins.executor_id, job.job_id, ins.key[0], ins.key[1], ins.attempt, stage_key, blob,
                         job.task_blobs[ins.key], inputs, job.runner, ins.speculative, members)]

    def _killed(self, ins: Kill, now: float) -> None:
        self._held.pop(ins.executor_id, None)
        for attempt_key in self._open_by_executor.pop(ins.executor_id, set()):
            record = self._open.pop(attempt_key, None)
            if record is None or record.outcome != "running":
                continue
            record.finished = self._wall(now)
            if attempt_key == ins.timed_out:
                record.outcome, record.error = "failed", f"TaskTimeout: {ins.reason}"
            else:
                record.outcome = "lost"

    def _close_attempt(self, executor_id: str, attempt_key) -> AttemptRecord | None:
        self._open_by_executor.get(executor_id, set()).discard(attempt_key)
        return self._open.pop(attempt_key, None)

    def _record(self, key: TaskKey, attempt: int) -> AttemptRecord | None:
        record = self._by_attempt.get((key, attempt))
        if record is None and self._current is not None and self._current[0] == (key, attempt):
            record = self._current[1]  # a late attempt of a job that has ended
        return record

    def _commit(self, ins: Commit, now: float) -> list:
        value = self._results.pop((ins.key, ins.attempt), None)
        record = self._record(ins.key, ins.attempt)
        if record is not None:
            record.outcome = "committed"
        dag = self.dag
        if dag is None:
            return _drops(ins.key, value)
        parts = split_values(ins.key, value)
        if any(isinstance(v, TaskValue) and self._over_result_limit(v) for _, v in parts):
            return _drops(ins.key, value) + self._fail(ResultTooLarge(dag.job.job_id, self._result_tasks,
                                                                      self._result_bytes, self.max_result_size), now)
        specs = dag.on_commit(ins.key, value)
        stage = dag.job.stages[ins.key[0]]
        out: list = [Committed(stage, (ins.key[0], p), v) for p, v in parts]
        if dag.done:
            return out + self._finish(now)
        if specs:
            out += self._run(self.machine.submit(specs, now), now)
        return out

    def _over_result_limit(self, value: TaskValue) -> bool:
        """Count a committed result's size; past ``max_result_size`` the job fails (Spark's
        ``spark.driver.maxResultSize``), before the value is loaded on the driver."""
        self._result_bytes += value.size
        self._result_tasks += 1
        limit = self.max_result_size
        return bool(limit) and (self._result_bytes > limit or value.dropped)

    def _discard(self, ins: Discard) -> list:
        value = self._results.pop((ins.key, ins.attempt), None)
        record = self._record(ins.key, ins.attempt)
        if record is not None and record.outcome in ("running", "committed"):
            record.outcome = "discarded"
        return _drops(ins.key, value)

    def _refetch(self, ins: Refetch, now: float) -> list:
        dag = self.dag
        if dag is None:
            return []
        record = self._record(ins.key, ins.attempt)
        specs, lost = dag.on_refetch(ins.key, ins.shuffle_id, ins.map_ids, record.epoch if record else None)
        out: list = [DropOutput(status) for status in lost]
        for status in lost:  # each one a regeneration that was read and found unreadable
            self._refetched[(ins.shuffle_id, status.map_id)] += 1
            if self._refetched[(ins.shuffle_id, status.map_id)] > self.max_refetches:
                detail = record.error if record is not None and record.error else "it could not be read"
                stage = dag.job.stages[ins.key[0]]
                reason = (f"could not read block {status.key} (map output {status.map_id} of shuffle "
                          f"{ins.shuffle_id}) after it was regenerated {self.max_refetches} times: {detail}. "
                          "It is damaged every time it is written: check the store and the map stage's output")
                return out + self._fail(JobAborted(dag.job.job_id, ins.key[0], ins.key[1], stage.name, reason), now)
        # tasks still waiting to start would only fail the same way: hold them until the maps are back
        parked = self.machine.park(dag.readers_of(ins.shuffle_id), now)
        dag.park(parked, ins.shuffle_id)
        return out + self._run(self.machine.submit(specs, now), now)

    def _abort(self, ins: AbortJob, now: float) -> list:
        dag = self.dag
        if dag is None:
            return []
        if ins.key is None:  # executors could not start
            return self._fail(ExecutorsCannotStart(dag.job.job_id, ins.reason), now)
        stage = dag.job.stages[ins.key[0]]
        exc = JobAborted(dag.job.job_id, ins.key[0], ins.key[1], stage.name, ins.reason, ins.error)
        if ins.error is not None and ins.error.exception is not None:
            exc.__cause__ = ins.error.exception
        return self._fail(exc, now)

    # ---- the end of a job ------------------------------------------------------------------

    def _finish(self, now: float) -> list:
        dag = self.dag
        attempts, log = self._end_job(now)
        return [JobDone(dag.job.job_id, dag.results, attempts, log)]

    def _fail(self, error: BaseException, now: float) -> list:
        dag = self.dag
        self.machine.cancel_all(now)
        attempts, log = self._end_job(now)
        return [JobFailed(dag.job.job_id, error, attempts, log)]

    def _end_job(self, now: float) -> tuple[list, list]:
        dag = self.dag
        self.dag = None
        self.machine.forget_stages(dag.job.stages, now)
        log = self.machine.take_log(self._log_start)
        self._log_start = 0
        attempts, self.attempts = self.attempts, []
        self._by_attempt = {}
        return attempts, log


def _drops(key: TaskKey, value: Any) -> list:
    """What deletes the outputs of an attempt that is not kept: one ``DropOutput`` per partition."""
    return [DropOutput(v) for _, v in split_values(key, value) if v is not None] if value is not None else []
