"""What the task state machine keeps per task and per executor, its policy, and a running median.

State: none of its own; these are the records ``scheduler.core.tasks`` owns.

Promise: plain data (and one O(log n) statistic), no behaviour that needs the machine.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal

from scheduler.core.events import TaskKey, TaskSpec


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
    task_timeout: float | None = None  # seconds an attempt may run; None: no limit
    max_launch_failures: int = 5  # executors in a row that end before registering ...
    launch_failure_window: float = 40.0  # ... over at least this many seconds, end the job


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
    slots: int = 1
    tasks: dict[tuple[TaskKey, int], None] = field(default_factory=dict)

    @property
    def task(self) -> tuple[TaskKey, int] | None:
        return next(iter(self.tasks), None)


class RunningMedian:
    """The median of the values added so far, in O(log n) per value (two heaps)."""

    def __init__(self) -> None:
        self._low: list[float] = []  # a max-heap, negated
        self._high: list[float] = []
        self.count = 0

    def add(self, value: float) -> None:
        if self._low and value > -self._low[0]:
            heapq.heappush(self._high, value)
        else:
            heapq.heappush(self._low, -value)
        if len(self._low) > len(self._high) + 1:
            heapq.heappush(self._high, -heapq.heappop(self._low))
        elif len(self._high) > len(self._low):
            heapq.heappush(self._low, -heapq.heappop(self._high))
        self.count += 1

    def median(self) -> float:
        if len(self._low) > len(self._high):
            return -self._low[0]
        return (-self._low[0] + self._high[0]) / 2


class PendingQueue:
    """Tasks waiting for a slot: retried ones first, then by stage in submission order.

    Finding the next task for an executor looks at the head of each stage, not at every
    task, so it costs O(stages with pending tasks).
    """

    def __init__(self) -> None:
        self._front: dict[TaskKey, None] = {}  # retried tasks: usually on the critical path
        self._stages: dict[int, dict[TaskKey, None]] = {}
        self.count = 0

    def add(self, key: TaskKey, front: bool = False) -> None:
        if front:
            self._front[key] = None
        else:
            self._stages.setdefault(key[0], {})[key] = None
        self.count += 1

    def remove(self, key: TaskKey) -> None:
        if self._front.pop(key, 0) is None:
            self.count -= 1
            return
        stage = self._stages.get(key[0])
        if stage is not None and stage.pop(key, 0) is None:
            self.count -= 1
            if not stage:
                del self._stages[key[0]]

    def clear(self) -> None:
        self._front.clear()
        self._stages.clear()
        self.count = 0

    def heads(self) -> Iterator[TaskKey]:
        """The retried tasks and the first task of each stage."""
        yield from self._front
        for stage in self._stages.values():
            yield next(iter(stage))

    def first(self, fits: Callable[[TaskKey], bool]) -> TaskKey | None:
        return next((key for key in self.heads() if fits(key)), None)

    def __iter__(self) -> Iterator[TaskKey]:
        yield from self._front
        for stage in self._stages.values():
            yield from stage
