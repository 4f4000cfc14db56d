"""Events into, and instructions out of, the task state machine (``scheduler.core.tasks``).

All are frozen dataclasses carrying the driver's clock (``now``, monotonic seconds), so the
state machine never reads a clock and tests drive it with a fake one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TaskKey = tuple[int, int]  # (stage_id, partition)
FailureKind = Literal["error", "fetch", "lost"]


@dataclass(frozen=True)
class RemoteError:
    """A task's exception as it crossed the channel: its type, message and traceback text."""

    type_name: str
    message: str
    traceback: str
    kind: FailureKind = "error"
    shuffle_id: int | None = None
    map_ids: tuple[int, ...] = ()
    exception: BaseException | None = None  # the original, when it pickles


@dataclass(frozen=True)
class TaskMetrics:
    """What one attempt measured; it travels in ``TaskResult`` and lands in the attempt record."""

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
class TaskSpec:
    key: TaskKey
    expected_seconds: float = 1.0
    name: str = ""


# ---- events -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExecutorRegistered:
    executor_id: str
    now: float
    remaining: float | None = None  # seconds of lifetime left; None: no deadline
    slots: int = 1  # tasks it runs at once


@dataclass(frozen=True)
class HeartbeatReceived:
    executor_id: str
    now: float


@dataclass(frozen=True)
class TaskSucceeded:
    executor_id: str
    key: TaskKey
    attempt: int
    now: float


@dataclass(frozen=True)
class TaskFailed:
    executor_id: str
    key: TaskKey
    attempt: int
    now: float
    kind: FailureKind
    error: RemoteError | None = None


@dataclass(frozen=True)
class ExecutorLost:
    executor_id: str
    now: float
    reason: str
    refused: bool = False  # the service refused the launch (a throttle): not a start-up failure


@dataclass(frozen=True)
class ExecutorRetired:
    executor_id: str
    now: float


@dataclass(frozen=True)
class Throttled:
    now: float
    source: str  # "lambda" | "store"


@dataclass(frozen=True)
class Tick:
    now: float


Event = (ExecutorRegistered | HeartbeatReceived | TaskSucceeded | TaskFailed | ExecutorLost
         | ExecutorRetired | Throttled | Tick)


# ---- instructions -------------------------------------------------------------------------

@dataclass(frozen=True)
class Assign:
    executor_id: str
    key: TaskKey
    attempt: int
    speculative: bool = False


@dataclass(frozen=True)
class Retire:
    executor_id: str
    reason: str


@dataclass(frozen=True)
class Launch:
    executor_ids: tuple[str, ...]


@dataclass(frozen=True)
class Kill:
    executor_id: str
    reason: str
    timed_out: tuple[TaskKey, int] | None = None  # the attempt that ran past task_timeout, if that is why


@dataclass(frozen=True)
class AbortJob:
    key: TaskKey | None  # None: no task is to blame (executors could not start)
    reason: str
    error: RemoteError | None = None


@dataclass(frozen=True)
class Commit:
    """The first successful attempt of a task: its output is the task's output."""

    key: TaskKey
    attempt: int
    executor_id: str


@dataclass(frozen=True)
class Discard:
    """A stale or losing attempt: its result is dropped and its output deleted."""

    key: TaskKey
    attempt: int
    executor_id: str
    reason: str


@dataclass(frozen=True)
class Refetch:
    """A fetch failure: the named map outputs must be regenerated before ``key`` runs again."""

    key: TaskKey
    shuffle_id: int
    map_ids: tuple[int, ...]
    attempt: int = 0


Instruction = Assign | Retire | Launch | Kill | AbortJob | Commit | Discard | Refetch


@dataclass(frozen=True)
class LogEntry:
    """One line of the scheduler's event log."""

    time: float
    what: Literal["launch", "register", "assign", "commit", "discard", "fail", "lost", "retire",
                  "retired", "throttle", "kill", "abort", "refetch", "submit"]
    executor_id: str | None = None
    key: TaskKey | None = None
    attempt: int | None = None
    detail: Any = None
