"""Messages on the control channel, as frozen dataclasses.

The scheduler treats task payloads as opaque bytes: ``stage_blob`` is shared by every task
of a stage (the executor caches it by ``stage_key``), ``task_blob`` is the one partition's
own part, and ``runner`` is the dotted path of the function that runs them
(``"dagrun.runtime.task:run_task"``), so the scheduler never imports the layer above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scheduler.core.events import FailureKind, RemoteError, TaskKey  # noqa: F401 - part of the wire format


@dataclass(frozen=True)
class Register:
    executor_id: str
    remaining_seconds: float | None
    pid: int
    host: str


@dataclass(frozen=True)
class Heartbeat:
    executor_id: str


@dataclass(frozen=True)
class Retiring:
    executor_id: str
    reason: str


@dataclass(frozen=True)
class RunTask:
    job_id: str
    stage_id: int
    partition: int
    attempt: int
    stage_key: str
    stage_blob: bytes | None  # None when the executor already holds this stage
    task_blob: bytes
    inputs: dict[tuple[int, int], list[Any]]  # (shuffle_id, reduce_id) -> BlockRefs, in map order
    runner: str
    speculative: bool = False


@dataclass(frozen=True)
class Retire:
    reason: str = "retire"


@dataclass(frozen=True)
class TaskMetrics:
    started: float = 0.0  # executor wall clock (time.time())
    finished: float = 0.0
    records_read: int = 0
    bytes_read: int = 0
    records_written: int = 0
    bytes_written: int = 0
    # store requests by kind (get, put, list, delete, head), bytes_in and bytes_out, and
    # "throttled": how many were answered 503 SlowDown (the driver then slows its ramp)
    store_requests: dict[str, int] = field(default_factory=dict)
    peak_rss: int = 0
    accumulators: dict[int, Any] = field(default_factory=dict)  # accumulator id -> this task's updates


@dataclass(frozen=True)
class TaskResult:
    executor_id: str
    job_id: str
    stage_id: int
    partition: int
    attempt: int
    value: Any = None  # the runner's return value (a MapStatus or an action's partial result)
    error: RemoteError | None = None
    metrics: TaskMetrics = field(default_factory=TaskMetrics)

    @property
    def key(self) -> TaskKey:
        return (self.stage_id, self.partition)
