"""The inline backend: executors are threads of the driver process, for debugging.

Each executor runs the ordinary executor loop over an in-process queue channel, so a
breakpoint or a traceback in a task lands in the driver's own process.  Only the inline
backend can use a ``memory://`` store.
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import Any, Sequence

from scheduler.wire.channel import QueueConnection
from scheduler.backends import ExecutorSettings, Notify


class InlineBackend:
    name = "inline"

    def __init__(self, config: Any):
        self.max_executors = config.max_executors or 1
        self._threads: dict[str, threading.Thread] = {}
        self._conns: dict[str, QueueConnection] = {}

    def start(self, settings: ExecutorSettings, notify: Notify) -> None:
        self.settings, self.notify = settings, notify

    def capacity(self) -> int:
        return self.max_executors

    def launch(self, executor_ids: Sequence[str]) -> None:
        worker = importlib.import_module("scheduler.executor")  # imported on first launch: the driver may never need it
        for executor_id in executor_ids:
            driver_end, executor_end = QueueConnection.pair()
            self._conns[executor_id] = executor_end
            deadline = time.monotonic() + self.settings.executor_timeout
            thread = threading.Thread(
                target=self._run, name=f"dagrun-inline-{executor_id}", daemon=True,
                args=(worker, executor_end, executor_id, deadline))
            self._threads[executor_id] = thread
            self.notify(("attach", executor_id, driver_end))
            thread.start()

    def _run(self, worker, conn, executor_id: str, deadline: float) -> None:
        try:
            worker.run_executor(conn, executor_id, remaining=lambda: deadline - time.monotonic(),
                                heartbeat_interval=self.settings.heartbeat_interval)
            self.notify(("exited", executor_id, "retired"))
        except Exception as exc:  # noqa: BLE001 - reported to the driver as a lost executor
            self.notify(("exited", executor_id, f"executor thread failed: {exc!r}"))

    def kill(self, executor_id: str) -> None:
        conn = self._conns.pop(executor_id, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for executor_id in list(self._conns):
            self.kill(executor_id)
