"""The driver: the I/O loop around the job core (``scheduler.core.jobs``).

State: the control server, the backend, the ``JobCore`` (whose state machine and map-output
tracker live as long as the driver, so executors and persisted outputs outlive a job), the
connection to each executor, the executor log, and the records of finished jobs not yet
taken by the caller.

Policy: one loop thread owns all state.  Everything else (socket readers, backend monitors,
the caller of ``run_job``) only posts tuples on ``events``; the loop turns each into a core
event stamped with the monotonic clock, performs the instructions that come back, and ticks
every ``tick`` seconds.  Before a tick it reads every event that queued up meanwhile, so a
loop that stalled (a slow send, a slow hook) sees the heartbeats that arrived during the
stall before it judges any executor silent.  One job runs at a time.

Promise: ``run_job`` returns the result stage's value for each partition, or raises
``JobAborted`` (or ``ExecutorsCannotStart``) naming what failed; the driver stays usable.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

from scheduler.backends import ExecutorBackend, ExecutorSettings
from scheduler.build import build_id
from scheduler.core.dag import DagState, JobSpec
from scheduler.core.events import ExecutorRegistered, HeartbeatReceived, Kill, Launch, Retire, Throttled, Tick
from scheduler.core.jobs import (
    AttemptRecord, BackendFailed, CancelJob, Committed, DropOutput, ExecutorGone, JobCore, JobDone, JobFailed,
    ResultReceived, SendTask, SubmitJob,
)
from scheduler.core.tasks import Policy
from scheduler.errors import IncompatibleExecutor
from scheduler.server import ControlServer, attach, check_descriptor_limit
from scheduler.wire.channel import ChannelClosed
from scheduler.wire.messages import Heartbeat, Register, RunTask, TaskResult
from scheduler.wire.messages import Shutdown

__all__ = ["AttemptRecord", "Driver"]

log = logging.getLogger("dagrun.scheduler")

_DRAIN_LIMIT = 10_000  # events read back to back before a tick may run


class Driver:
    tick = 0.05

    def __init__(self, backend: ExecutorBackend, policy: Policy, *, host: str = "127.0.0.1",
                 executor_timeout: float = 900.0, heartbeat_interval: float = 2.0,
                 scratch_dir: str | None = None, memory_mb: int = 2048,
                 on_discard: Callable[[Any], None] | None = None,
                 on_commit: Callable[[Any, Any, Any], None] | None = None,
                 launch_throttled: Callable[[], bool] | None = None, tls: bool | None = None,
                 preload: tuple[str, ...] = (), max_result_size: int = 0):
        self.backend = backend
        self.events: queue.Queue[tuple] = queue.Queue()
        self.secret = os.urandom(32)
        check_descriptor_limit(backend.capacity())  # before anything is started: a clear error, not EMFILE later
        # a backend whose executors reach the driver in-process ("attach") needs no listening socket
        listens = getattr(backend, "connects_back", True)
        self.server = ControlServer(host, self.secret, self.events.put, tls=tls) if listens else None
        # the records' wall clock is read when the core records, so that a result and the
        # assignment it lets through are ordered even within one event
        self.core = JobCore(policy, now=time.monotonic(), wall=lambda now: time.time(),
                            max_result_size=max_result_size)
        self.executor_log: list[dict] = []
        self._entries: dict[str, dict] = {}
        self._on_discard = on_discard
        self._on_commit = on_commit  # (stage spec, task key, value): a hook for fault injection
        self._launch_throttled = launch_throttled
        self._conns: dict[str, Any] = {}
        self._finished: dict[str, tuple[list, list]] = {}
        self._future: Future | None = None
        self._dag: DagState | None = None
        self._progress: Callable | None = None
        self._stopped = threading.Event()
        address, secure = (self.server.address, self.server.tls) if self.server is not None else (("", 0), False)
        backend.start(ExecutorSettings(address, self.secret, executor_timeout, heartbeat_interval,
                                       scratch_dir, memory_mb, {"tls": secure}, preload), self.events.put)
        self._thread = threading.Thread(target=self._loop, name="dagrun-driver", daemon=True)
        self._thread.start()

    @property
    def machine(self):
        return self.core.machine

    @property
    def tracker(self):
        return self.core.tracker

    # ---- public ----------------------------------------------------------------------------

    def run_job(self, job: JobSpec, progress: Callable | None = None) -> dict[int, Any]:
        future: Future = Future()
        self.events.put(("job", job, future, progress))
        try:
            return future.result()
        except KeyboardInterrupt:
            self.events.put(("cancel", job.job_id))
            raise

    def take_records(self, job_id: str) -> tuple[list[AttemptRecord], list]:
        """A finished job's attempt records and scheduler log, handed over once."""
        return self._finished.pop(job_id, ([], []))

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
                if item is not None and not self._handle_item(item):
                    return
                # whatever queued up while that one (or a stall) kept the loop busy is read
                # before any check that depends on time, bounded so ticks still happen
                for _ in range(_DRAIN_LIMIT):
                    try:
                        item = self.events.get_nowait()
                    except queue.Empty:
                        break
                    if not self._handle_item(item):
                        return
                if time.monotonic() >= next_tick:
                    self._perform(self.core.handle(Tick(time.monotonic())))
                    next_tick = time.monotonic() + self.tick
            except Exception as exc:  # noqa: BLE001 - a driver bug must fail the job, not hang it
                log.exception("driver loop error")
                self._perform(self.core.handle(CancelJob(None, time.monotonic(), exc)))

    def _handle_item(self, item: tuple) -> bool:
        if item[0] == "stop":
            self._shutdown(item[1])
            return False
        self._dispatch(item)
        return True

    def _dispatch(self, item: tuple) -> None:
        now = time.monotonic()
        kind = item[0]
        if kind == "msg":
            self._on_message(item[1], item[2], now)
        elif kind == "job":
            if self.core.dag is not None:
                item[2].set_exception(RuntimeError(f"job {self.core.dag.job.job_id} is still running on this "
                                                   "driver; run jobs one after another (one job at a time)"))
                return
            job, self._future, self._progress = item[1], item[2], item[3]
            self._dag = None
            out = self.core.handle(SubmitJob(job, now))
            self._dag = self.core.dag
            self._perform(out)
        elif kind == "cancel":
            self._perform(self.core.handle(CancelJob(item[1], now, KeyboardInterrupt())))
        elif kind in ("conn", "attach"):
            executor_id, conn = item[1], item[2]
            self._conns[executor_id] = conn
            if kind == "attach":
                attach(conn, executor_id, self.events.put)
        elif kind in ("closed", "exited"):
            self._gone(item[1], item[2] if len(item) > 2 else "control channel closed", now)
        elif kind == "throttled":
            self._perform(self.core.handle(Throttled(now, item[1])))
        elif kind == "report":  # what a backend learned about an executor (e.g. Lambda billing)
            self._executor_entry(item[1]).update(item[2])
        elif kind == "failed":  # the backend cannot launch executors at all (e.g. no such function)
            self._perform(self.core.handle(BackendFailed(now, item[1])))

    def _on_message(self, executor_id: str, message: Any, now: float) -> None:
        if isinstance(message, Heartbeat):
            self.core.handle(HeartbeatReceived(executor_id, now))  # a timestamp, never instructions
        elif isinstance(message, TaskResult):
            self._perform(self.core.handle(ResultReceived(executor_id, message.key, message.attempt, now,
                                                          message.value, message.error, message.metrics)))
        elif isinstance(message, Register):
            theirs = getattr(message, "build", "")
            if theirs != build_id():
                self._refuse(executor_id, IncompatibleExecutor(executor_id, theirs, build_id()), now)
                return
            self._executor_entry(executor_id).update(registered=time.time(), pid=message.pid,
                                                     remaining=message.remaining_seconds,
                                                     slots=getattr(message, "slots", 1))
            registered = ExecutorRegistered(executor_id, now, message.remaining_seconds,
                                            getattr(message, "slots", 1))
            self._perform(self.core.handle(registered))

    def _refuse(self, executor_id: str, error: IncompatibleExecutor, now: float) -> None:
        # Never registered with the core, so it gets no task; the running job fails with the reason.
        log.warning("%s", error)
        self._executor_entry(executor_id).update(reason=f"refused: another build of dagrun ({error.theirs or 'unknown'})")
        self._send(executor_id, Shutdown("another build of dagrun than the driver's"))
        self._perform(self.core.handle(BackendFailed(now, error)))

    def _gone(self, executor_id: str, reason: str, now: float) -> None:
        conn = self._conns.pop(executor_id, None)
        if conn is not None:
            conn.close()
        entry = self._executor_entry(executor_id)
        entry.setdefault("ended", time.time())
        entry.setdefault("reason", reason)
        gone = ExecutorGone(executor_id, now, reason, refused=reason == "launch throttled")
        self._perform(self.core.handle(gone))

    def _executor_entry(self, executor_id: str) -> dict:
        entry = self._entries.get(executor_id)
        if entry is None:
            entry = self._entries[executor_id] = {"executor": executor_id}
            self.executor_log.append(entry)
        return entry

    # ---- instructions ----------------------------------------------------------------------

    def _perform(self, instructions: list) -> None:
        for ins in instructions:
            kind = type(ins)
            if kind is SendTask:
                self._send_task(ins)
            elif kind is Committed:
                if self._on_commit is not None:
                    self._on_commit(ins.stage, ins.key, ins.value)
                if self._progress is not None and self._dag is not None:
                    self._progress(self._dag, self.core.machine)
            elif kind is DropOutput:
                if self._on_discard is not None:
                    self._on_discard(ins.value)
            elif kind is Launch:
                self._launch(ins)
            elif kind is Kill:
                self.backend.kill(ins.executor_id)
                conn = self._conns.pop(ins.executor_id, None)
                if conn is not None:
                    conn.close()
            elif kind is Retire:
                self._send(ins.executor_id, Shutdown(ins.reason))
            elif kind is JobDone or kind is JobFailed:
                self._finished[ins.job_id] = (ins.attempts, ins.log)
                future, self._future, self._dag = self._future, None, None
                if future is not None and not future.done():
                    if kind is JobDone:
                        future.set_result(ins.results)
                    else:
                        future.set_exception(ins.error)

    def _send_task(self, ins: SendTask) -> None:
        task = RunTask(ins.job_id, ins.stage_id, ins.partition, ins.attempt, ins.stage_key, ins.stage_blob,
                       ins.task_blob, ins.inputs, ins.runner, ins.speculative, ins.members)
        if not self._send(ins.executor_id, task):
            self._gone(ins.executor_id, "send failed", time.monotonic())

    def _send(self, executor_id: str, message: Any) -> bool:
        conn = self._conns.get(executor_id)
        if conn is None:
            return False
        try:
            conn.send(message)
            return True
        except (ChannelClosed, OSError):
            return False  # it is gone already; the reader reports it too

    def _launch(self, ins: Launch) -> None:
        for executor_id in ins.executor_ids:
            self._executor_entry(executor_id)["launched"] = time.time()
        refused = [e for e in ins.executor_ids if self._launch_throttled is not None and self._launch_throttled()]
        if refused:
            for executor_id in refused:
                self.events.put(("exited", executor_id, "launch throttled"))
            self.events.put(("throttled", "launch"))
        self.backend.launch([e for e in ins.executor_ids if e not in refused])

    def _shutdown(self, done: threading.Event) -> None:
        for executor_id in list(self._conns):
            self._send(executor_id, Shutdown("the driver is closing"))
        self._stopped.set()
        done.set()
