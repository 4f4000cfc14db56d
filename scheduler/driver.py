"""The driver: the I/O shell around the task state machine and the DAG scheduler.

State: the control server, the backend, the ``TaskStateMachine`` and the
``MapOutputTracker`` (both live as long as the driver, so executors and persisted outputs
outlive a job), the connection to each executor, and the attempt log.

Policy: one loop thread owns all state.  Everything else (socket readers, backend monitors,
the caller of ``run_job``) only posts tuples on ``events``; the loop turns them into state
machine events, performs the instructions that come back, and ticks every ``tick`` seconds.
One job runs at a time.

Promise: ``run_job`` returns the result stage's value for each partition, or raises
``JobAborted`` naming the stage, partition and remote traceback; the driver stays usable.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from scheduler.backends import ExecutorBackend, ExecutorSettings
from scheduler.wire.channel import ChannelClosed
from scheduler.core.dag import DagState, JobSpec, MapOutputTracker
from scheduler.errors import JobAborted
from scheduler.core.events import (
    AbortJob, Assign, Commit, Discard, ExecutorLost, ExecutorRegistered, ExecutorRetired, HeartbeatReceived,
    Instruction, Kill, Launch, Refetch, Retire, TaskFailed, TaskSucceeded, Throttled, Tick,
)
from scheduler.wire.messages import Heartbeat, Register, RemoteError, RunTask, TaskMetrics, TaskResult
from scheduler.wire.messages import Retire as RetireMessage
from scheduler.server import ControlServer, attach
from scheduler.core.tasks import Policy, TaskStateMachine

log = logging.getLogger("dagrun.scheduler")


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


class Driver:
    tick = 0.05

    def __init__(self, backend: ExecutorBackend, policy: Policy, *, host: str = "127.0.0.1",
                 executor_timeout: float = 900.0, heartbeat_interval: float = 2.0,
                 scratch_dir: str | None = None, memory_mb: int = 2048,
                 on_discard: Callable[[Any], None] | None = None,
                 on_commit: Callable[[Any, Any, Any], None] | None = None,
                 launch_throttled: Callable[[], bool] | None = None, tls: bool | None = None,
                 preload: tuple[str, ...] = ()):
        self.backend = backend
        self.events: queue.Queue[tuple] = queue.Queue()
        self.secret = os.urandom(32)
        # a backend whose executors reach the driver in-process ("attach") needs no listening socket
        listens = getattr(backend, "connects_back", True)
        self.server = ControlServer(host, self.secret, self.events.put, tls=tls) if listens else None
        self.machine = TaskStateMachine(policy, now=time.monotonic())
        self.tracker = MapOutputTracker()
        self.attempts: list[AttemptRecord] = []
        self.executor_log: list[dict] = []
        self._on_discard = on_discard
        self._on_commit = on_commit  # (stage spec, task key, value): a hook for fault injection
        self._launch_throttled = launch_throttled
        self._conns: dict[str, Any] = {}
        self._stages_sent: dict[str, set[str]] = {}
        self._results: dict[tuple, TaskResult] = {}
        self._open_attempts: dict[tuple, AttemptRecord] = {}
        self._dag: DagState | None = None
        self._future: Future | None = None
        self._progress: Callable[[DagState], None] | None = None
        self._stopped = threading.Event()
        address, secure = (self.server.address, self.server.tls) if self.server is not None else (("", 0), False)
        backend.start(ExecutorSettings(address, self.secret, executor_timeout, heartbeat_interval,
                                       scratch_dir, memory_mb, {"tls": secure}, preload), self.events.put)
        self._thread = threading.Thread(target=self._loop, name="dagrun-driver", daemon=True)
        self._thread.start()

    # ---- public ----------------------------------------------------------------------------

    def run_job(self, job: JobSpec, progress: Callable[[DagState], None] | None = None) -> dict[int, Any]:
        future: Future = Future()
        self.events.put(("job", job, future, progress))
        try:
            return future.result()
        except KeyboardInterrupt:
            self.events.put(("cancel", job.job_id))
            raise

    def close(self) -> None:
        if self._stopped.is_set():
            return
        done = threading.Event()
        self.events.put(("stop", done))
        done.wait(10)
        if self.server is not None:
            self.server.close()  # executors that connected after the retire messages went out see EOF
        self.backend.close()
        self._drain_reports()

    def _drain_reports(self) -> None:
        """Keep what backends reported while closing (a Lambda invocation's REPORT line)."""
        while True:
            try:
                item = self.events.get_nowait()
            except queue.Empty:
                return
            if item[0] == "report":
                self._executor_entry(item[1]).update(item[2])

    # ---- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while True:
            try:
                item = self.events.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                item = None
            try:
                if item is not None and item[0] == "stop":
                    self._shutdown(item[1])
                    return
                if item is not None:
                    self._dispatch(item)
                if time.monotonic() >= next_tick:
                    self._do(self.machine.handle(Tick(time.monotonic())))
                    next_tick = time.monotonic() + self.tick
            except Exception as exc:  # noqa: BLE001 - a driver bug must fail the job, not hang it
                log.exception("driver loop error")
                self._fail_job(exc)

    def _dispatch(self, item: tuple) -> None:
        now = time.monotonic()
        kind = item[0]
        if kind == "job":
            self._start_job(*item[1:])
        elif kind == "cancel":
            if self._dag is not None and self._dag.job.job_id == item[1]:
                self._fail_job(KeyboardInterrupt())
        elif kind in ("conn", "attach"):
            executor_id, conn = item[1], item[2]
            self._conns[executor_id] = conn
            self._stages_sent[executor_id] = set()
            if kind == "attach":
                attach(conn, executor_id, self.events.put)
        elif kind == "msg":
            self._on_message(item[1], item[2], now)
        elif kind in ("closed", "exited"):
            self._on_gone(item[1], item[2] if len(item) > 2 else "control channel closed", now)
        elif kind == "throttled":
            self._do(self.machine.handle(Throttled(now, item[1])))
        elif kind == "report":  # what a backend learned about an executor (e.g. Lambda billing)
            self._executor_entry(item[1]).update(item[2])
        elif kind == "failed":  # the backend cannot launch executors at all (e.g. no such function)
            self._fail_job(item[1])

    def _executor_entry(self, executor_id: str) -> dict:
        for entry in reversed(self.executor_log):
            if entry["executor"] == executor_id:
                return entry
        entry = {"executor": executor_id}
        self.executor_log.append(entry)
        return entry

    def _on_message(self, executor_id: str, message: Any, now: float) -> None:
        if isinstance(message, Register):
            self._executor_entry(executor_id).update(registered=time.time(), pid=message.pid,
                                                     remaining=message.remaining_seconds)
            self._do(self.machine.handle(ExecutorRegistered(executor_id, now, message.remaining_seconds)))
        elif isinstance(message, Heartbeat):
            self._do(self.machine.handle(HeartbeatReceived(executor_id, now)))
        elif isinstance(message, TaskResult):
            attempt_key = (message.key, message.attempt)
            record = self._open_attempts.pop(attempt_key, None)
            if record is not None:
                record.finished, record.metrics = time.time(), message.metrics
            if message.metrics.store_requests.get("throttled"):  # the store said "slow down"
                self._do(self.machine.handle(Throttled(now, "store")))
            if message.error is None:
                self._results[attempt_key] = message
                self._do(self.machine.handle(TaskSucceeded(executor_id, message.key, message.attempt, now)))
            else:
                if record is not None:
                    record.outcome = "fetch-failed" if message.error.kind == "fetch" else "failed"
                    record.error = f"{message.error.type_name}: {message.error.message}"
                self._do(self.machine.handle(TaskFailed(executor_id, message.key, message.attempt, now,
                                                        message.error.kind, message.error)))

    def _on_gone(self, executor_id: str, reason: str, now: float) -> None:
        conn = self._conns.pop(executor_id, None)
        if conn is not None:
            conn.close()
        entry = self._executor_entry(executor_id)
        entry.setdefault("ended", time.time())
        entry.setdefault("reason", reason)
        # before the machine check: an executor killed at its deadline is already forgotten there
        for record in self._open_attempts.values():
            if record.executor_id == executor_id and record.outcome == "running":
                record.outcome, record.finished = "lost", time.time()
        executor = self.machine.executors.get(executor_id)
        if executor is None:
            return
        if executor.state == "retiring":
            self._do(self.machine.handle(ExecutorRetired(executor_id, now)))
        else:
            self._do(self.machine.handle(ExecutorLost(executor_id, now, reason)))

    # ---- jobs ------------------------------------------------------------------------------

    def _start_job(self, job: JobSpec, future: Future, progress) -> None:
        self._dag, self._future, self._progress = DagState(job, self.tracker), future, progress
        specs = self._dag.start()
        if self._dag.done:
            self._finish_job()
            return
        self._do(self.machine.submit(specs, time.monotonic()))

    def _finish_job(self) -> None:
        dag, future = self._dag, self._future
        self._dag = self._future = None
        if future is not None and not future.done():
            future.set_result(dag.results)

    def _fail_job(self, exc: BaseException) -> None:
        future = self._future
        self.machine.cancel_all(time.monotonic())
        self._dag = self._future = None
        if future is not None and not future.done():
            future.set_exception(exc)

    # ---- instructions ----------------------------------------------------------------------

    def _do(self, instructions: list[Instruction]) -> None:
        for ins in instructions:
            handler = getattr(self, f"_do_{type(ins).__name__.lower()}")
            handler(ins)

    def _do_assign(self, ins: Assign) -> None:
        dag = self._dag
        now = time.monotonic()
        inputs = dag.inputs(ins.key) if dag is not None else None
        if inputs is None:
            if dag is None:
                error = RemoteError("Cancelled", "the job is no longer running", "", "error")
                self._do(self.machine.handle(TaskFailed(ins.executor_id, ins.key, ins.attempt, now, "lost", error)))
                return
            shuffle_id, map_ids = dag.missing_inputs(ins.key)
            error = RemoteError("FetchFailed", "map outputs missing before the task started", "", "fetch",
                                shuffle_id, map_ids)
            self._do(self.machine.handle(TaskFailed(ins.executor_id, ins.key, ins.attempt, now, "fetch", error)))
            return
        job = dag.job
        stage_key = f"{job.job_id}/{ins.key[0]}"
        sent = self._stages_sent.setdefault(ins.executor_id, set())
        task = RunTask(job.job_id, ins.key[0], ins.key[1], ins.attempt, stage_key,
                       None if stage_key in sent else job.stage_blobs[ins.key[0]],
                       job.task_blobs[ins.key], inputs, job.runner, ins.speculative)
        record = AttemptRecord(job.job_id, ins.key[0], ins.key[1], ins.attempt, ins.executor_id,
                               ins.speculative, time.time(), epoch=self.tracker.epoch)
        self.attempts.append(record)
        self._open_attempts[(ins.key, ins.attempt)] = record
        conn = self._conns.get(ins.executor_id)
        try:
            if conn is None:
                raise ChannelClosed("no connection")
            conn.send(task)
            sent.add(stage_key)
        except (ChannelClosed, OSError) as exc:
            self._on_gone(ins.executor_id, f"send failed: {exc}", now)

    def _do_commit(self, ins: Commit) -> None:
        result = self._results.pop((ins.key, ins.attempt))
        for record in self.attempts[::-1]:
            if (record.stage_id, record.partition, record.attempt) == (*ins.key, ins.attempt):
                record.outcome = "committed"
                break
        dag = self._dag
        if dag is None:
            return
        specs = dag.on_commit(ins.key, result.value)
        if self._on_commit is not None:
            self._on_commit(dag.job.stages[ins.key[0]], ins.key, result.value)
        if self._progress is not None:
            self._progress(dag, self.machine)
        if dag.done:
            self._finish_job()
        elif specs:
            self._do(self.machine.submit(specs, time.monotonic()))

    def _do_discard(self, ins: Discard) -> None:
        result = self._results.pop((ins.key, ins.attempt), None)
        for record in self.attempts[::-1]:
            if (record.stage_id, record.partition, record.attempt) == (*ins.key, ins.attempt):
                if record.outcome in ("running", "committed"):
                    record.outcome = "discarded"
                break
        if result is not None and self._on_discard is not None:
            self._on_discard(result.value)

    def _do_refetch(self, ins: Refetch) -> None:
        if self._dag is None:
            return
        seen = next((a.epoch for a in reversed(self.attempts)
                     if (a.stage_id, a.partition, a.attempt) == (*ins.key, ins.attempt)), None)
        specs, lost = self._dag.on_refetch(ins.key, ins.shuffle_id, ins.map_ids, seen)
        # tasks still waiting to start would only fail the same way: hold them until the maps are back
        parked = self.machine.park(self._dag.readers_of(ins.shuffle_id), time.monotonic())
        self._dag.park(parked, ins.shuffle_id)
        for status in lost:
            if self._on_discard is not None:
                self._on_discard(status)
        self._do(self.machine.submit(specs, time.monotonic()))

    def _do_launch(self, ins: Launch) -> None:
        for executor_id in ins.executor_ids:
            self._executor_entry(executor_id)["launched"] = time.time()
        refused = [e for e in ins.executor_ids if self._launch_throttled is not None and self._launch_throttled()]
        if refused:
            for executor_id in refused:
                self.events.put(("exited", executor_id, "launch throttled"))
            self.events.put(("throttled", "launch"))
        self.backend.launch([e for e in ins.executor_ids if e not in refused])

    def _do_kill(self, ins: Kill) -> None:
        self.backend.kill(ins.executor_id)
        conn = self._conns.pop(ins.executor_id, None)
        if conn is not None:
            conn.close()

    def _do_retire(self, ins: Retire) -> None:
        conn = self._conns.get(ins.executor_id)
        try:
            if conn is not None:
                conn.send(RetireMessage(ins.reason))
        except (ChannelClosed, OSError):
            pass  # it is gone already; the reader reports it

    def _do_abortjob(self, ins: AbortJob) -> None:
        dag = self._dag
        if dag is None:
            return
        stage = dag.job.stages[ins.key[0]]
        exc = JobAborted(dag.job.job_id, ins.key[0], ins.key[1], stage.name, ins.reason, ins.error)
        if ins.error is not None and ins.error.exception is not None:
            exc.__cause__ = ins.error.exception
        self._fail_job(exc)

    def _shutdown(self, done: threading.Event) -> None:
        for executor_id, conn in list(self._conns.items()):
            try:
                conn.send(RetireMessage("the driver is closing"))
            except (ChannelClosed, OSError):
                pass
        self._stopped.set()
        done.set()
