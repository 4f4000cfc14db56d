"""The "invoke" transport, driver side: each task is one synchronous invocation of the function.

State: for each logical executor an ``InvokeConnection`` (the driver's end of its channel):
its inbox of messages for the driver, the invocations it has in flight, and the running
totals of their REPORT lines.  Shared by all of them (``StageCache``): which stages are
already in the store, under which key.

Policy:
- The driver talks to an ``InvokeConnection`` as to an in-process executor (the backend
  reports ``("attach", id, connection)``), so it holds no listening socket and needs no
  inbound network.  The connection answers at once with a ``Register`` whose lifetime is
  ``None``: every task gets a fresh invocation with the function's whole timeout.
- ``send(RunTask)``: the stage is put in the store once per job and stage
  (``shuffle.layout.transport_key``) and the payload names its key, so a warm environment
  that has it cached reads nothing; the task itself travels in the payload, or through the
  store when it would make the payload bigger than Lambda's 6 MB limit.  The result comes
  back in the response (or through the store, same limit).  While the invocation runs the
  connection posts a ``Heartbeat`` every interval: an invocation in flight is alive.
- Slots: the executor registers the function's vCPUs as its slots; the tasks the driver
  sends in one burst (``_BATCH_WINDOW``) go in one invocation, which runs them at once, so
  a 10,240 MB function runs six tasks per invocation.  The batch returns when its last task
  ends (a straggler holds its siblings' slots until then).
- A 429 is reported (``("throttled", "lambda")``, so the ramp slows) and the invocation is
  retried after a jittered back-off, at most ``_THROTTLE_RETRIES`` times; after that, or on
  a function error (timeout, out of memory, a crash) or a dropped connection, the executor is
  lost (its channel closes) and the driver reruns the task elsewhere, as with "connect".
- Every event carries the driver's build (``scheduler.build``) and every answer the
  function's; an answer of another build (or none: an older dagrun) is used for nothing, the
  executor is lost and the job fails with ``IncompatibleExecutor``, which says to redeploy.
- ``send(Shutdown)`` and ``close()``: no new task; the channel closes once nothing is in
  flight (a running invocation cannot be stopped; its result is dropped).

Promise: every invocation's REPORT line reaches the driver, summed into the executor's
entry (``billed_ms``, ``duration_ms``, ``invocations``) before its ``("exited", ...)``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import pickle
import queue
import random
import threading
import time
from typing import Any, Callable

from scheduler.build import build_id
from scheduler.errors import IncompatibleExecutor
from scheduler.wire.channel import ChannelClosed
from scheduler.wire.messages import Heartbeat, Register, RemoteError, RunTask, Shutdown, TaskResult
from shuffle.layout import transport_key

# Lambda's synchronous payload and response limit is 6 MB; base64 adds a third
INLINE_MAX = 4 * 1024 * 1024
_THROTTLE_RETRIES = 6
_BATCH_WINDOW = 0.005  # seconds a multi-slot executor waits for the rest of a burst of tasks
_CLOSED = object()


class StageCache:
    """Which stages are in the store: put each once, however many executors run it."""

    def __init__(self, store: Any, prefixes: int):
        self.store, self.prefixes = store, prefixes
        self._keys: dict[str, str] = {}
        self._blobs: dict[str, bytes] = {}
        self._job: str | None = None
        self._lock = threading.Lock()

    def key_for(self, task: RunTask) -> str:
        with self._lock:
            if self._job != task.job_id:  # one job runs at a time: the last one's stages are done with
                self._drop_locked()
                self._job = task.job_id
            if task.stage_blob is not None:
                self._blobs.setdefault(task.stage_key, task.stage_blob)
            key = self._keys.get(task.stage_key)
            if key is not None:
                return key
            blob = self._blobs.get(task.stage_key)
            if blob is None:
                raise ChannelClosed(f"stage {task.stage_key} was never sent; the driver must resend it")
            key = transport_key(task.job_id, f"stage-{task.stage_id}", self.prefixes)
            self.store.put(key, blob)  # under the lock: one upload per stage, the others wait for it
            self._keys[task.stage_key] = key
            return key


    def clear(self) -> None:
        """Delete every stage this cache put (the backend closes)."""
        with self._lock:
            self._drop_locked()

    def _drop_locked(self) -> None:
        keys, self._keys, self._blobs = list(self._keys.values()), {}, {}
        if keys:
            try:
                self.store.delete_keys(keys)
            except OSError:  # the job's own cleanup, or `dagrun store gc`, removes them with its folders
                pass


class InvokeConnection:
    """The driver's end of one logical executor on the invoke transport; see the module docstring."""

    def __init__(self, executor_id: str, *, invoke: Callable[[str, bytes], Any], event: dict, stages: StageCache,
                 notify: Callable[[tuple], None], heartbeat: float, track: Callable[[threading.Thread], None],
                 slots: int = 1):
        self.executor_id, self._invoke, self._event = executor_id, invoke, event
        self._stages, self._notify, self._heartbeat, self._track = stages, notify, heartbeat, track
        self._inbox: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._retiring = self._exited = False
        self.closed, self._reason = False, "retired"
        self._totals: dict[str, Any] = {"invocations": 0, "billed_ms": 0, "duration_ms": 0.0}
        self._slots = slots
        self._pending: list[RunTask] = []
        self._batching = False
        self._inbox.put(Register(executor_id, None, 0, "lambda", slots, build_id()))  # each answer says its own build

    # ---- the Connection shape the driver uses ----------------------------------------------

    def send(self, message: Any) -> None:
        if self.closed:
            raise ChannelClosed(f"executor {self.executor_id} is closed")
        if isinstance(message, Shutdown):
            with self._lock:
                self._retiring = True
                idle = self._in_flight == 0
            if idle:
                self.close()
            return
        if isinstance(message, RunTask):
            with self._lock:
                self._in_flight += 1
                self._pending.append(message)
                if self._batching:
                    return
                self._batching = True
            thread = threading.Thread(target=self._run, daemon=True,
                                      name=f"dagrun-invoke-{self.executor_id}-{message.stage_id}.{message.partition}")
            self._track(thread)
            thread.start()

    def recv(self, timeout: float | None = None) -> Any:
        try:
            message = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no message before the timeout") from None
        if message is _CLOSED:
            raise ChannelClosed(f"executor {self.executor_id} ended")
        return message

    def close(self, reason: str = "retired") -> None:
        with self._lock:
            if self.closed:
                return
            self.closed, self._reason = True, reason
        self._inbox.put(_CLOSED)
        self._maybe_exit()

    def _maybe_exit(self) -> None:
        """Report the exit once, when closed and the last invocation has returned (after its REPORT)."""
        with self._lock:
            if not self.closed or self._in_flight or self._exited:
                return
            self._exited = True
        self._notify(("exited", self.executor_id, self._reason))

    # ---- one task, one invocation ----------------------------------------------------------

    def _run(self) -> None:
        if self._slots > 1:  # the driver fills every free slot in one burst: let the burst arrive
            time.sleep(_BATCH_WINDOW)
        with self._lock:
            tasks, self._pending, self._batching = self._pending, [], False
            if self.closed:  # closed (Ctrl-C, a kill) before the invocation went out: start nothing
                self._in_flight -= len(tasks)
                tasks = []
        if not tasks:
            self._maybe_exit()
            return
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(stop,), daemon=True)
        beat.start()
        lost = None
        try:
            results, lost = self._call(tasks)
            for result in results:
                if not self.closed:
                    self._inbox.put(result)
        except Exception as exc:  # noqa: BLE001 - a transport failure loses the executor, never hangs the task
            lost = f"invoke failed: {exc!r}"
        finally:
            stop.set()
            with self._lock:
                self._in_flight -= len(tasks)
                retire = self._retiring and self._in_flight == 0
            if lost is not None or retire:
                self.close(lost or "retired")
            self._maybe_exit()

    def _call(self, tasks: list[RunTask]) -> tuple[list[TaskResult], str | None]:
        store, first = self._stages.store, tasks[0]
        event = {**self._event, "executor_id": self.executor_id, "build": build_id(),
                 "stage_refs": {t.stage_key: self._stages.key_for(t) for t in tasks}}
        data = pickle.dumps([dataclasses.replace(t, stage_blob=None) for t in tasks], protocol=5)
        tasks_ref = None
        if len(data) > INLINE_MAX:
            tasks_ref = transport_key(first.job_id, f"tasks-{first.stage_id}-{first.partition}-{first.attempt}",
                                      self._stages.prefixes)
            store.put(tasks_ref, data)
            event["tasks_ref"] = tasks_ref
        else:
            event["tasks"] = base64.b64encode(data).decode()
        payload = _json(event)
        try:
            for attempt in range(_THROTTLE_RETRIES + 1):
                outcome = self._invoke(self.executor_id, payload)
                if outcome.report is not None:
                    self._add_report(outcome.report)
                if outcome.kind != "throttled":
                    break
                self._notify(("throttled", "lambda"))
                time.sleep(min(5.0, 0.2 * 2 ** attempt) * random.uniform(0.5, 1.5))
            else:
                return [], "throttled"
        finally:
            if tasks_ref is not None:
                store.delete(tasks_ref)
        if outcome.kind != "ok":
            return [], outcome.reason
        body = outcome.body if isinstance(outcome.body, dict) else {}
        if body.get("build", "") != build_id():  # refused, or results from an older dagrun: none is used
            self._notify(("failed", IncompatibleExecutor(self.executor_id, str(body.get("build", "")), build_id())))
            return [], "another build of dagrun than the driver's"
        if "results_ref" in body:
            raw = store.get(body["results_ref"])
            store.delete(body["results_ref"])
        elif "results" in body:
            raw = base64.b64decode(body["results"])
        else:  # the handler answered, but not with results: say what it said, as a task error
            message = f"the function returned no task result: {body!r}"[:500]
            return [_task_error(t, self.executor_id, message) for t in tasks], None
        return pickle.loads(raw), None

    def _add_report(self, report: dict) -> None:
        with self._lock:
            t = self._totals
            t["invocations"] += 1
            t["billed_ms"] += report.get("billed_ms", 0)
            t["duration_ms"] = round(t["duration_ms"] + report.get("duration_ms", 0.0), 2)
            t["init_ms"] = round(t.get("init_ms", 0.0) + report.get("init_ms", 0.0), 2)
            for key in ("memory_mb", "slots"):
                if key in report:
                    t[key] = report[key]
            t["max_memory_mb"] = max(t.get("max_memory_mb", 0), report.get("max_memory_mb", 0))
            snapshot = dict(t)
        self._notify(("report", self.executor_id, snapshot))

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self._heartbeat):
            self._inbox.put(Heartbeat(self.executor_id))


def _task_error(task: RunTask, executor_id: str, message: str) -> TaskResult:
    error = RemoteError("InvokeError", message, "", "error")
    return TaskResult(executor_id, task.job_id, task.stage_id, task.partition, task.attempt, None, error)


def _json(event: dict) -> bytes:
    return json.dumps(event).encode()
