"""The cost ledger: what a job used and what it would cost on Lambda and S3, per stage.

State: none; ``job_cost`` reads a finished ``JobInfo`` and builds a ``JobCost``.

Policy (invariant 8, everything billable is counted):
- Executor GB-seconds.  A Lambda executor whose invocation has ended is charged its billed
  milliseconds x its configured memory, from the REPORT line the Lambda backend merges into
  the driver's executor log, prorated to the part of the invocation inside the job (from
  its launch to its end, or to launch + billed duration when the driver did not see it
  end).  Any other executor (local, inline, or a Lambda invocation still running when the
  job ended) is charged as if it ran on Lambda with ``lambda_memory_mb``, for its measured
  lifetime: from its launch (Lambda bills the init phase too, so start-up counts) until its
  control channel closed (when a handler would return; a local process's interpreter
  teardown after that is not counted), or until the job ended if it is still alive.  Only
  the part of a lifetime inside the job's window counts, so an executor shared by
  consecutive jobs is split between them; time an executor idles after the last job of a
  Context belongs to no job.
- Per stage, an executor's GB-seconds are divided by the share of its task time (assigned
  to finished, as the driver saw it) spent on each stage; an executor that ran no task of
  the job is divided by the job-wide shares.  An invocation (executor launch) belongs to
  the stage of the executor's first task in the job.
- Store requests by kind and bytes are the executors' own counts (each attempt's
  ``metrics.store_requests``, failed and speculative attempts included) plus the driver's
  (``JobInfo.driver_requests``: discarded outputs, injected faults, cleanup), shown as a
  row of their own.  An attempt lost with its executor reports no counts.
- Dollars come from ``prices(config)``: the us-east-1 list prices below, overridden by
  ``conf={"prices": {...}}``.  A task's input reads on an object store (one GET per
  ranged read) are in its counts; ``save_as_text_file`` output and the driver's planning
  of input splits go through fsspec directly and are not.

Promise: ``JobCost.__str__`` is one line (printed at the end of each job when the
``ledger`` setting is on, or on "auto" when stderr is a terminal); ``table()`` is the
per-stage breakdown; ``to_dict()`` is what the JSON record and the HTML report carry.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

DEFAULT_PRICES = {
    "lambda_gb_s_x86": 0.0000166667,
    "lambda_gb_s_arm": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "s3_put": 0.005 / 1000,
    "s3_list": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
    "s3_head": 0.0004 / 1000,
    "s3_delete": 0.0,
}
REQUEST_KINDS = ("put", "get", "list", "delete", "head")


def prices(config: Any) -> dict[str, float]:
    return {**DEFAULT_PRICES, **dict(getattr(config, "prices", None) or {})}


def gb_s_price(p: dict[str, float], arch: str) -> float:
    return p["lambda_gb_s_arm"] if arch in ("arm64", "arm") else p["lambda_gb_s_x86"]


@dataclass
class CostRow:
    """One stage's (or the driver's, or the job's) usage and its price."""

    label: str
    stage_id: int | None = None
    tasks: int = 0
    attempts: int = 0
    executor_seconds: float = 0.0
    gb_s: float = 0.0
    invocations: int = 0
    requests: Counter = field(default_factory=Counter)
    bytes_in: int = 0  # read from the store
    bytes_out: int = 0  # written to the store
    timing: tuple[float, float, float] | None = None  # estimates only: start, end, seconds per task

    def add(self, other: "CostRow") -> None:
        self.tasks += other.tasks
        self.attempts += other.attempts
        self.executor_seconds += other.executor_seconds
        self.gb_s += other.gb_s
        self.invocations += other.invocations
        self.requests.update(other.requests)
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out

    def dollars(self, p: dict[str, float], arch: str) -> dict[str, float]:
        compute = self.gb_s * gb_s_price(p, arch)
        invoke = self.invocations * p["lambda_request"]
        store = sum(self.requests.get(k, 0) * p[f"s3_{k}"] for k in REQUEST_KINDS)
        return {"compute": compute, "invocations": invoke, "requests": store, "total": compute + invoke + store}

    def to_dict(self, p: dict[str, float], arch: str) -> dict[str, Any]:
        return {"label": self.label, "stage_id": self.stage_id, "tasks": self.tasks, "attempts": self.attempts,
                "executor_seconds": self.executor_seconds, "gb_s": self.gb_s, "invocations": self.invocations,
                "requests": {k: self.requests.get(k, 0) for k in REQUEST_KINDS}, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "timing": self.timing, "usd": self.dollars(p, arch)}


@dataclass
class JobCost:
    """The ledger of one job: a row per stage, the driver's row, and the total."""

    job_id: str
    rows: list[CostRow]
    driver: CostRow
    prices: dict[str, float]
    memory_mb: int
    arch: str
    executor_kind: str
    basis: str  # "billed" | "measured" | "mixed" | "none"
    wall_seconds: float
    executors: int
    slots: int = 0  # task slots over all executors (an executor of a multi-vCPU function has several)

    @property
    def total(self) -> CostRow:
        total = CostRow("total")
        for row in [*self.rows, self.driver]:
            total.add(row)
        return total

    @property
    def dollars(self) -> float:
        return self.total.dollars(self.prices, self.arch)["total"]

    def _pricing(self) -> str:
        if self.basis == "billed":
            return f"Lambda {self.arch} billed"
        how = "priced as" if self.executor_kind != "lambda" else "measured, as"
        return f"{self.executor_kind} executors {how} Lambda {self.arch} {self.memory_mb} MB"

    def __str__(self) -> str:
        t = self.total
        usd = t.dollars(self.prices, self.arch)
        req = " ".join(f"{t.requests[k]} {k.upper()}" for k in REQUEST_KINDS if t.requests.get(k))
        if self.executor_kind != "lambda":
            # nothing was invoked or billed: say what ran, and what the same work would cost on Lambda
            plural = "es" if self.executors != 1 else ""
            return (f"dagrun ledger {self.job_id}: {self.wall_seconds:.2f}s, {t.tasks} tasks on "
                    f"{self.executors} {self.executor_kind} process{plural}, {req or 'no store requests'}; "
                    f"as Lambda {self.memory_mb} MB: {t.gb_s:,.2f} GB-s, ${usd['total']:.6f}")
        return (f"dagrun ledger {self.job_id}: {self.wall_seconds:.2f}s, {len(self.rows)} stages, {t.tasks} tasks, "
                f"{self.executors} executors{self._slots()}: {t.gb_s:,.2f} GB-s (${usd['compute']:.6f}), "
                f"{t.invocations} invocations "
                f"(${usd['invocations']:.6f}), {req or 'no'} store requests (${usd['requests']:.6f}), "
                f"{fmt_bytes(t.bytes_in + t.bytes_out)} moved; total ${usd['total']:.6f} [{self._pricing()}]")

    def _slots(self) -> str:
        return f" ({self.slots} task slots)" if self.slots > self.executors else ""

    def _repr_html_(self) -> str:
        """The per-stage ledger as an HTML table, for notebooks."""
        from html import escape

        cells = ["stage", "tasks", "GB-s", "invocations", "PUT", "GET", "LIST", "DELETE", "moved", "$"]
        rows = []
        for row in [*self.rows, self.driver, self.total]:
            r = row.requests
            values = [row.label, row.tasks, f"{row.gb_s:.2f}", row.invocations, r.get("put", 0), r.get("get", 0),
                      r.get("list", 0), r.get("delete", 0), fmt_bytes(row.bytes_in + row.bytes_out),
                      f"{row.dollars(self.prices, self.arch)['total']:.6f}"]
            rows.append("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in values) + "</tr>")
        head = "<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>"
        return (f'<div class="dagrun-cost"><p>{escape(str(self))}</p><table>{head}{"".join(rows)}</table>'
                f"<p>{escape(self._pricing())}</p></div>")

    def table(self) -> str:
        """The per-stage breakdown as aligned text."""
        head = f"{'stage':<44} {'tasks':>6} {'GB-s':>10} {'inv':>5} {'PUT':>6} {'GET':>7} {'LIST':>5} " \
               f"{'DEL':>5} {'moved':>9} {'$':>10}"
        lines = [head]
        for row in [*self.rows, self.driver, self.total]:
            usd = row.dollars(self.prices, self.arch)["total"]
            r = row.requests
            lines.append(f"{row.label[:44]:<44} {row.tasks:>6} {row.gb_s:>10.2f} {row.invocations:>5} "
                         f"{r.get('put', 0):>6} {r.get('get', 0):>7} {r.get('list', 0):>5} {r.get('delete', 0):>5} "
                         f"{fmt_bytes(row.bytes_in + row.bytes_out):>9} {usd:>10.6f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "basis": self.basis, "memory_mb": self.memory_mb, "arch": self.arch,
                "executor_kind": self.executor_kind, "wall_seconds": self.wall_seconds, "executors": self.executors,
                "slots": self.slots,
                "prices": self.prices, "rows": [r.to_dict(self.prices, self.arch) for r in self.rows],
                "driver": self.driver.to_dict(self.prices, self.arch),
                "total": self.total.to_dict(self.prices, self.arch), "line": str(self)}


def executor_usage(entry: dict, start: float, end: float, memory_mb: int) -> tuple[float, float, bool]:
    """(seconds, GB-seconds, billed?) of one executor inside the window ``[start, end]``."""
    begin = entry.get("launched", entry.get("registered"))
    if begin is None:
        return 0.0, 0.0, False
    if "billed_ms" in entry:
        # the invocation is over and Lambda said what it billed: keep the job's share of it.  An
        # executor closed with its Context has no 'ended'; its billed duration tells when it ended.
        billed = entry["billed_ms"] / 1000
        stop = entry.get("ended", begin + billed)
        inside = max(0.0, min(stop, end) - max(begin, start))
        seconds = billed * min(1.0, inside / (stop - begin)) if stop > begin else billed
        return seconds, seconds * entry.get("memory_mb", memory_mb) / 1024, True
    inside = max(0.0, min(entry.get("ended", end), end) - max(begin, start))
    return inside, inside * memory_mb / 1024, False


def _invoked(entry: dict) -> bool:
    """False for a launch the service refused (throttled): that is not a billed invocation."""
    return "registered" in entry or "throttl" not in str(entry.get("reason", ""))


def job_cost(info: Any, executors: list[dict] | None = None) -> JobCost:
    """The ledger of a finished ``JobInfo``; ``executors`` overrides its executor snapshot."""
    executors = info.executors if executors is None else executors
    config = info.config
    memory_mb = getattr(config, "lambda_memory_mb", 2048)
    arch = getattr(config, "lambda_arch", "x86_64")
    start, end = info.started, info.finished or time.time()
    rows = {s.stage_id: CostRow(f"stage {s.stage_id}: {s.name}", s.stage_id) for s in info.stages}
    busy: dict[str, Counter] = {}
    first_stage: dict[str, tuple[float, int]] = {}
    partitions: dict[int, set[int]] = {}
    for a in info.attempts:
        row = rows.setdefault(a.stage_id, CostRow(f"stage {a.stage_id}", a.stage_id))
        row.attempts += 1
        partitions.setdefault(a.stage_id, set()).add(a.partition)
        counts = a.metrics.store_requests
        row.requests.update({k: counts[k] for k in REQUEST_KINDS if counts.get(k)})
        row.bytes_in += counts.get("bytes_in", 0)
        row.bytes_out += counts.get("bytes_out", 0)
        ran = max(0.0, min(a.finished or end, end) - max(a.assigned, start))
        busy.setdefault(a.executor_id, Counter())[a.stage_id] += ran
        if a.executor_id not in first_stage or a.assigned < first_stage[a.executor_id][0]:
            first_stage[a.executor_id] = (a.assigned, a.stage_id)
    for stage_id, parts in partitions.items():
        rows[stage_id].tasks = len(parts)
    job_busy: Counter = sum(busy.values(), Counter())
    billed = measured = 0
    for entry in executors:
        seconds, gb_s, was_billed = executor_usage(entry, start, end, memory_mb)
        billed, measured = billed + was_billed, measured + (not was_billed)
        shares = busy.get(entry["executor"]) or job_busy or Counter({next(iter(rows), 0): 1.0})
        whole = sum(shares.values()) or 1.0
        for stage_id, part in shares.items():
            row = rows.setdefault(stage_id, CostRow(f"stage {stage_id}", stage_id))
            row.executor_seconds += seconds * part / whole
            row.gb_s += gb_s * part / whole
        launched = entry.get("launched")
        if launched is not None and start <= launched <= end and _invoked(entry):
            stage_id = first_stage.get(entry["executor"], (0, max(shares, key=shares.get)))[1]
            # an executor on the invoke transport makes one invocation per task; its REPORTs are summed
            rows.setdefault(stage_id, CostRow(f"stage {stage_id}", stage_id)).invocations += entry.get("invocations", 1)
    driver = CostRow("driver (discards, cleanup)")
    driver.requests.update({k: info.driver_requests[k] for k in REQUEST_KINDS if info.driver_requests.get(k)})
    driver.bytes_in = info.driver_requests.get("bytes_in", 0)
    driver.bytes_out = info.driver_requests.get("bytes_out", 0)
    basis = "none" if not (billed or measured) else "billed" if not measured else "measured" if not billed else "mixed"
    order = {s.stage_id: i for i, s in enumerate(info.stages)}  # topological: the job's first stage first
    ordered = sorted(rows.values(), key=lambda r: (order.get(r.stage_id, len(order)), r.stage_id))
    return JobCost(info.job_id, ordered, driver, prices(config), memory_mb,
                   arch, getattr(config, "executor", "local"), basis, end - start, len(executors),
                   sum(int(e.get("slots") or 1) for e in executors))


def print_line(info: Any, setting: str, stream: TextIO | None = None) -> None:
    """Print the job's one-line ledger on stderr when ``setting`` says so (auto: a terminal)."""
    stream = stream or sys.stderr
    if setting == "off" or (setting == "auto" and not getattr(stream, "isatty", lambda: False)()):
        return
    print(info.cost, file=stream, flush=True)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
