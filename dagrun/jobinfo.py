"""What a finished job leaves behind: its stages, task attempts, timings and store requests.

``JobInfo`` is built from the driver's attempt log and the store's request counters; the
cost ledger and the job report read it.  ``ctx.last_job`` is the most recent one.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobInfo:
    job_id: str
    description: str
    graph: Any  # planner.StageGraph
    store_url: str
    started: float = field(default_factory=time.time)
    finished: float | None = None
    succeeded: bool = False
    attempts: list = field(default_factory=list)
    scheduler_log: list = field(default_factory=list)
    driver_requests: dict = field(default_factory=dict)

    def finish(self, attempts: list, scheduler_log: list, driver_counts: Any) -> None:
        self.finished = time.time()
        self.attempts = [a for a in attempts if a.job_id == self.job_id]
        self.scheduler_log = scheduler_log
        self.driver_requests = {k: v for k, v in driver_counts.as_dict().items() if v}

    @property
    def wall_seconds(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def stages(self) -> list:
        return self.graph.stages()

    def stage_requests(self) -> dict[int, Counter]:
        """Store requests and bytes by stage, as counted by the executors' stores."""
        out: dict[int, Counter] = {}
        for attempt in self.attempts:
            out.setdefault(attempt.stage_id, Counter()).update(attempt.metrics.store_requests)
        return out

    @property
    def requests(self) -> Counter:
        """Every store request of the job: the tasks' plus the driver's (cleanup)."""
        total: Counter = Counter(self.driver_requests)
        for counts in self.stage_requests().values():
            total.update(counts)
        return total

    def retried_tasks(self) -> list[tuple[int, int]]:
        seen: Counter = Counter((a.stage_id, a.partition) for a in self.attempts)
        return [k for k, n in seen.items() if n > 1]

    def __repr__(self) -> str:
        state = "succeeded" if self.succeeded else "failed"
        return (f"JobInfo({self.job_id}, {state}, {len(self.stages)} stages, {len(self.attempts)} attempts, "
                f"{self.wall_seconds:.2f}s)")
