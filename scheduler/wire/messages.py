"""Messages on the control channel, as frozen dataclasses.

The scheduler treats task payloads as opaque bytes: ``stage_blob`` is shared by every task
of a stage (the executor caches it by ``stage_key``), ``task_blob`` is the one partition's
own part, and ``runner`` is the dotted path of the function that runs them
(``"dagrun.runtime.task:run_task"``), so the scheduler never imports the layer above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scheduler.core.events import FailureKind, RemoteError, TaskKey, TaskMetrics  # noqa: F401 - part of the wire format


@dataclass(frozen=True)
class Register:
    executor_id: str
    remaining_seconds: float | None
    pid: int
    host: str
    slots: int = 1  # tasks the executor runs at once
    build: str = ""  # scheduler.build.build_id() of the executor's code ("": from before builds were sent)


@dataclass(frozen=True)
class Heartbeat:
    executor_id: str


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
    # a group of consecutive partitions (scheduler.core.coalesce): the others, with their task blobs
    members: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class Shutdown:
    """The driver to an executor: end your loop now (the core's ``Retire`` instruction, on the wire)."""

    reason: str = "retire"


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
