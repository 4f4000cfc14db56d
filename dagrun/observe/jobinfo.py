"""What a finished job leaves behind: its stages, task attempts, executors, timings and requests.

State: ``JobInfo`` is filled in two steps.  ``Context.run_job`` creates it when the job is
planned (wall and monotonic start times, the resolved config) and calls ``finish`` when the
job ends, which snapshots the job's share of the driver's logs: the attempt records, the
scheduler events since the job began, the executors whose lifetimes overlap the job (copied,
so later updates by the driver do not change a finished job), and the driver's own store
requests (fault injection, discarded outputs, cleanup).

Promise: after ``finish`` a JobInfo no longer changes.  ``cost`` (the ledger), ``report``
(the HTML report) and ``to_record`` (the JSON kept for ``dagrun report --last``) all read
the same snapshot; ``ctx.last_job`` is the most recent one.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shuffle.layout import redact

if TYPE_CHECKING:
    from dagrun.observe.ledger import JobCost

RECORD_VERSION = 1
# scheduler events worth keeping in the record; assign/commit are in the attempts already
_BILLING = ("billed_ms", "memory_mb", "max_memory_mb", "ended", "reason")  # what a Lambda REPORT settles
_KEPT_EVENTS = {"launch", "register", "retire", "retired", "lost", "kill", "throttle", "refetch", "abort", "fail"}


@dataclass
class JobInfo:
    job_id: str
    description: str
    graph: Any  # planner.StageGraph
    store_url: str
    config: Any = None  # the Context's resolved Config
    started: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    finished: float | None = None
    finished_mono: float | None = None
    succeeded: bool = False
    attempts: list = field(default_factory=list)
    scheduler_log: list = field(default_factory=list)
    driver_requests: dict = field(default_factory=dict)
    executors: list[dict] = field(default_factory=list)
    _cost: "JobCost | None" = field(default=None, repr=False)
    _cost_billed: int = field(default=0, repr=False)  # REPORT lines the cached ledger used
    _executor_log: list = field(default_factory=list, repr=False)  # the driver's live log, for billed_ms

    def finish(self, attempts: list, scheduler_log: list, driver_counts: Any, executor_log: list[dict] = ()) -> None:
        self.finished, self.finished_mono = time.time(), time.monotonic()
        self.attempts = [a for a in attempts if a.job_id == self.job_id]
        self.scheduler_log = scheduler_log
        self.driver_requests = {k: v for k, v in driver_counts.as_dict().items() if v}
        self.executors = [dict(e) for e in executor_log if self._overlaps(e)]
        self._executor_log = executor_log if isinstance(executor_log, list) else list(executor_log)

    def _overlaps(self, entry: dict) -> bool:
        begin = entry.get("launched", entry.get("registered"))
        end = entry.get("ended")
        return begin is not None and begin <= (self.finished or time.time()) and (end is None or end >= self.started)

    def wall_time(self, monotonic: float) -> float:
        """A driver-clock (monotonic) time, such as a scheduler event's, as wall-clock time."""
        return self.started + (monotonic - self.started_mono)

    @property
    def billed_ms(self) -> int:
        """Lambda's billed milliseconds for this job's executors: the sum of their REPORT lines.

        An invocation reports only when it ends, which may be after the job (an idle executor
        waits for the next job until ``idle_timeout``), so this one figure reads the driver's
        live log: it is complete once the job's executors have ended, at the latest after
        ``ctx.stop()``.  An invocation that served several jobs counts in each, as in ``executors``.
        """
        ids = {e["executor"] for e in self.executors}
        return sum(int(e.get("billed_ms", 0)) for e in list(self._executor_log) if e.get("executor") in ids)

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

    @property
    def throttles(self) -> int:
        """Store requests answered "slow down" (S3 503), each retried by the block store."""
        return self.requests.get("throttled", 0)

    def retried_tasks(self) -> list[tuple[int, int]]:
        seen: Counter = Counter((a.stage_id, a.partition) for a in self.attempts)
        return [k for k, n in seen.items() if n > 1]

    @property
    def cost(self) -> "JobCost":
        """The cost ledger: GB-seconds, invocations, store requests and dollars, per stage.

        At the job's end a Lambda executor that is still alive has no REPORT line yet and is
        charged its measured lifetime; once its invocation ends (at the latest after
        ``ctx.stop()``) the ledger is recomputed from the billed duration, prorated to the
        part of the invocation inside this job.
        """
        from dagrun.observe.ledger import job_cost

        executors = self._billed_executors()
        billed = sum("billed_ms" in e for e in executors)
        if self._cost is None or self.finished is None or billed != self._cost_billed:
            cost = job_cost(self, executors)
            if self.finished is None:
                return cost  # still running: do not keep a partial ledger
            self._cost, self._cost_billed = cost, billed
        return self._cost

    def _billed_executors(self) -> list[dict]:
        """The job's executor snapshot, with what Lambda reported since merged in."""
        reported = {e["executor"]: e for e in list(self._executor_log) if "billed_ms" in e}
        return [{**e, **{k: reported[e["executor"]][k] for k in _BILLING if k in reported[e["executor"]]}}
                if e["executor"] in reported else e for e in self.executors]

    def report(self, path: str) -> str:
        """Write the self-contained HTML report of this job to ``path``; returns the path."""
        from dagrun.observe.report import write_report

        return write_report(self.to_record(), path)

    def to_record(self) -> dict[str, Any]:
        """Everything the report needs, as plain JSON-able data."""
        c = self.config
        settings = {} if c is None else {
            "executor": c.executor, "memory_mb": c.lambda_memory_mb, "arch": c.lambda_arch,
            "max_executors": c.executors, "ramp_initial": c.ramp_initial, "ramp_slope": c.ramp_slope,
            "executor_timeout": c.executor_timeout}
        stages = [{"id": s.stage_id, "name": s.name, "kind": s.kind, "tasks": s.rdd.get_num_partitions(),
                   "parents": list(s.parents),
                   "shuffle_id": s.dependency.shuffle_id if s.dependency is not None else None,
                   "reduce_partitions": s.dependency.partitioner.num_partitions if s.dependency is not None else None}
                  for s in self.stages]
        events = [{"time": self.wall_time(e.time), "what": e.what, "executor": e.executor_id,
                   "stage": e.key[0] if e.key else None, "partition": e.key[1] if e.key else None,
                   "attempt": e.attempt, "detail": None if e.detail is None else str(e.detail)}
                  for e in self.scheduler_log if e.what in _KEPT_EVENTS]
        return {"version": RECORD_VERSION, "user": _user(), "job_id": self.job_id, "description": self.description,
                "store_url": redact(self.store_url), "started": self.started, "finished": self.finished,
                "succeeded": self.succeeded, "settings": settings, "stages": stages,
                "attempts": [_attempt_record(a) for a in self.attempts], "executors": self.executors,
                "events": events, "driver_requests": self.driver_requests, "cost": self.cost.to_dict()}

    def _repr_html_(self) -> str:
        """A notebook's view of the job: its state, stages with their tasks and retries, the cost."""
        from html import escape

        state = "succeeded" if self.succeeded else "failed"
        retried = Counter(stage for stage, _ in self.retried_tasks())
        rows = "".join(f"<tr><td>{s.stage_id}</td><td>{escape(s.name)}</td><td>{s.rdd.get_num_partitions()}</td>"
                       f"<td>{retried.get(s.stage_id, 0)}</td></tr>" for s in self.stages)
        cost = self.cost._repr_html_() if self.finished is not None else ""
        return (f'<div class="dagrun-job"><h4>dagrun job {escape(self.job_id)}: {state} in {self.wall_seconds:.2f}s'
                f"</h4><p>{escape(self.description)}</p><table><tr><th>stage</th><th>name</th><th>tasks</th>"
                f"<th>retried tasks</th></tr>{rows}</table>{cost}</div>")

    def __repr__(self) -> str:
        state = "succeeded" if self.succeeded else "failed"
        return (f"JobInfo({self.job_id}, {state}, {len(self.stages)} stages, {len(self.attempts)} attempts, "
                f"{self.wall_seconds:.2f}s)")


def _attempt_record(a: Any) -> dict[str, Any]:
    m = a.metrics
    return {"stage": a.stage_id, "partition": a.partition, "attempt": a.attempt, "executor": a.executor_id,
            "speculative": a.speculative, "assigned": a.assigned, "finished": a.finished, "outcome": a.outcome,
            "error": a.error, "started": m.started or None, "ended": m.finished or None,
            "records_read": m.records_read, "bytes_read": m.bytes_read, "records_written": m.records_written,
            "bytes_written": m.bytes_written, "requests": dict(m.store_requests), "peak_rss": m.peak_rss}


def _user() -> str:
    from dagrun.observe.history import user

    return user()
