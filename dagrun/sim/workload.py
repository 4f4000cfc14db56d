"""What each simulated task does: bytes in and out, CPU seconds, and the requests it makes.

State: ``Workload`` (frozen) holds the per-vCPU throughput of each kind of work and where
it came from; ``SimStage`` holds one stage's scaled shape.

Policy:
- Stages are scaled to the input size by ``dagrun.observe.estimate.project`` (the same
  rules as the arithmetic estimate: one task per split, shuffle bytes from the dry run);
  ``reduce_partitions`` overrides the task count of every stage that reads a shuffle.
- Per-task CPU is bytes in / the throughput of the stage's kind of work at one vCPU,
  divided by the share of a vCPU the function's memory buys.  ``scan`` (an action straight
  over file splits, such as a line count) runs at C speed and is network-bound on Lambda;
  ``python`` (per-record Python: a map, a sort, an aggregation) is CPU-bound.  Figures
  come from ``dagrun bench --json`` files (``scan`` from ``dagrun bench scan``, ``python``
  from any other bench), else from the documented defaults below.
- A task streams its input: reading and computing overlap, so the slower of the two sets
  the pace.  Input is one GET per ``input_block``; a shuffle read is one ranged GET per
  map output, ``fetch_concurrency`` at a time; a map task's output is one PUT.

Promise: deterministic arithmetic over the recorded shapes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

from dagrun.observe.estimate import Assumptions, Estimate, StageShape, project

MB = 1e6


@dataclass(frozen=True)
class Workload:
    # a line count of `dagrun bench scan`: about 1 GB/s per local executor; rounded down
    scan_mb_s: float = 500.0
    # the map stage of `dagrun bench sort` per vCPU (Assumptions.throughput_mb_s)
    python_mb_s: float = 30.0
    source: str = "defaults: scan 500 MB/s, Python per-record work 30 MB/s per vCPU"

    @classmethod
    def from_bench(cls, paths: list[str], python_mb_s: float | None = None) -> "Workload":
        """Throughputs from ``dagrun bench --json`` files; ``python_mb_s`` (``--throughput``) wins."""
        w, sources = cls(), []
        for path in paths:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            rate = data.get("per_executor_mb_per_s")
            if not rate:
                raise ValueError(f"{path} has no per_executor_mb_per_s; write it with: dagrun bench scan --json {path}")
            kind = "scan" if data.get("bench") == "scan" else "python"
            w = replace(w, **{f"{kind}_mb_s": float(rate)})
            sources.append(f"{kind} {float(rate):g} MB/s from {path}")
        if python_mb_s:
            w = replace(w, python_mb_s=python_mb_s)
            sources.append(f"python {python_mb_s:g} MB/s from --throughput")
        if sources:
            w = replace(w, source="; ".join(sources) + " (other kinds: defaults)")
        return w

    def mb_s(self, work: str) -> float:
        return self.scan_mb_s if work == "scan" else self.python_mb_s


@dataclass
class SimStage:
    job: int
    stage_id: int
    name: str
    kind: str  # shuffle | cache | result
    work: str  # scan | python
    tasks: int
    parents: list[int]
    file_bytes: float  # per task
    shuffle_bytes: float  # per task, read from the parents' shuffles
    out_bytes: float  # per task, written to its own shuffle

    @property
    def writes_shuffle(self) -> bool:
        return self.kind in ("shuffle", "cache")


def scale_jobs(jobs: list[list[StageShape]], input_size: float | None, a: Assumptions,
               reduce_partitions: int | None = None) -> tuple[list[list[SimStage]], Estimate]:
    """The recorded jobs at ``input_size``, one ``SimStage`` per stage in dependency order,
    and the arithmetic estimate they were scaled by (its cleanup row is the driver's)."""
    if reduce_partitions:
        jobs = [[replace(s, tasks=reduce_partitions) if s.parents else s for s in job] for job in jobs]
    estimate = project(jobs, input_size, a)
    rows = iter(estimate.rows)
    out: list[list[SimStage]] = []
    for index, job in enumerate(jobs):
        stages = []
        for shape in job:
            row = next(rows)
            tasks = max(1, row.tasks)
            file_bytes = shape.input_bytes * estimate.scale if shape.input_bytes else 0.0
            if not shape.input_bytes and not shape.parents and input_size and index == 0:
                file_bytes = 0.0  # parallelized data: no file to read
            shuffle = max(0.0, row.bytes_in - file_bytes)
            stages.append(SimStage(index, shape.stage_id, shape.name, shape.kind, shape.work, tasks,
                                   list(shape.parents), file_bytes / tasks, shuffle / tasks,
                                   row.bytes_out / tasks))
        out.append(stages)
    return out, estimate


def cpu_seconds(stage: SimStage, workload: Workload, cpu_share: float) -> float:
    """One task's CPU time on a function with ``cpu_share`` of a vCPU."""
    return (stage.file_bytes + stage.shuffle_bytes) / (workload.mb_s(stage.work) * MB * cpu_share)


def input_gets(stage: SimStage, a: Assumptions) -> int:
    return math.ceil(stage.file_bytes / a.input_block) + 1 if stage.file_bytes else 0


def describe(stage: SimStage) -> dict[str, Any]:
    return {"job": stage.job, "stage": stage.stage_id, "name": stage.name, "work": stage.work,
            "tasks": stage.tasks}
