"""Estimates before anything runs: a job's tasks, store requests, time and cost on Lambda.

State: none.  ``stage_shapes`` reads a stage graph (and, for ``dagrun plan``, the bytes a
small dry run measured); ``project`` scales the shapes to an input size and simulates the
stages on a fleet of Lambda executors.  ``explain(cost=True)`` and ``dagrun plan`` share it.

Policy (the model; every figure is a field of ``Assumptions`` and is printed with the result):
- Scale.  Input-reading stages get one task per ``split_size`` of their input, scaled by
  ``input_size / input bytes seen`` (never fewer than planned).  A stage reading a shuffle keeps its partition count,
  unless that count equalled its parent's task count (the default: as many reduce
  partitions as map tasks), in which case it follows the parent.  A stage whose shuffles
  got their partition count by default runs one task per ``reduce_task_bytes`` of shuffle
  input (``scheduler.core.coalesce``; on Lambda no minimum task count).  Shuffle bytes are the
  dry run's, scaled linearly; without a dry run a shuffle writes as many bytes as its
  stage read (an upper bound for combined aggregations).
- Requests.  Input: one GET per ``input_block`` read plus one per task (the split's tail).
  Shuffle write: one PUT per map output, i.e. per partition (a multipart upload above 100 MiB:
  create, parts, complete).  Shuffle read: one ranged GET per (map output, reduce task) pair.  Cleanup, for a
  job that shuffled: one LIST per key prefix and one DELETE per 1,000 of its objects there.
  Output files are not counted.
- Time.  A task takes (bytes it reads) / throughput, where throughput is the per-executor
  figure (``dagrun bench --json``, else the default) scaled by min(1, memory / 1769 MB /
  slots) (Lambda gives one vCPU per 1769 MB, a Python task uses one, and an executor runs one
  task per vCPU: ``slots``, up to 6 at 10,240 MB), plus a fixed overhead,
  plus ``request_latency`` per PUT and per round of ``fetch_concurrency`` shuffle fetches
  (input is streamed, so its GET latency is inside the throughput).
- Executors.  min(executors, concurrency quota), but no more than the widest stage needs,
  launched on dagrun's ramp (``ramp.initial + ramp.slope * t`` per second) and never faster
  than Lambda's scaling rule (1,000 new execution environments per 10 s per function);
  each is ready ``cold_start`` seconds after its launch.  Tasks go to the first free
  executor; a stage starts when its parents end.  An executor retires before its
  ``executor_timeout`` and is replaced by a new invocation.  Every executor is billed from
  its launch until ``idle_timeout`` after its last task (it retires then; idle gaps between
  its tasks are billed), or the end of the last job (the Context closes then).
- The driver runs outside Lambda and is not billed.

Promise: deterministic arithmetic; nothing is launched, read or written.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field, replace
from typing import Any

from scheduler.slots import lambda_vcpus

from dagrun.graph.planner import coalescible, fused_chain
from dagrun.observe.ledger import DEFAULT_PRICES, REQUEST_KINDS, CostRow, fmt_bytes, gb_s_price, prices

MIB = 1 << 20
VCPU_MB = 1769  # Lambda memory that buys one full vCPU
_S3_MULTIPART = 100 * MIB  # the block store's single-PUT limit (shuffle.store._put_requests)
_S3_PART = 50 * MIB


@dataclass(frozen=True)
class Assumptions:
    # per executor, MB/s of stage input at >= 1 vCPU.  The default is the map stage of
    # `dagrun bench sort --size 64MB --executors 2` on a 2-vCPU VM (33 MB/s), rounded down
    throughput_mb_s: float = 30.0
    throughput_source: str = "default: a sort's map stage per vCPU, Python per-record work"
    memory_mb: int = 2048
    arch: str = "x86_64"
    executors: int = 1000
    slots: int = 1  # tasks an executor runs at once; from_config: one per vCPU of the function
    concurrency_quota: int = 1000  # Lambda's default account concurrency
    scaling_per_10s: int = 1000  # new execution environments per 10 s per function
    ramp_initial: float = 4.0
    ramp_slope: float = 4.0
    cold_start_s: float = 1.0
    task_overhead_s: float = 0.05
    request_latency_s: float = 0.03
    fetch_concurrency: int = 16
    split_size: int = 128 * MIB
    input_block: int = 8 * MIB
    executor_timeout: float = 900.0
    retire_margin: float = 5.0
    idle_timeout: float = 5.0
    shuffle_prefixes: int = 16
    reduce_task_bytes: int = 256 * MIB  # the setting; 0: a task per partition
    prices: dict = field(default_factory=lambda: dict(DEFAULT_PRICES))

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> "Assumptions":
        config = config.on_lambda()  # the estimate is for Lambda, wherever this Context runs
        # an executor runs one task per vCPU of the function (``scheduler.slots``)
        base = cls(memory_mb=config.lambda_memory_mb, slots=lambda_vcpus(config.lambda_memory_mb), arch=config.lambda_arch, executors=config.executors,
                   ramp_initial=config.ramp_initial, ramp_slope=config.ramp_slope, split_size=config.split_size or 128 * MIB,
                   executor_timeout=config.executor_timeout, retire_margin=config.retire_margin,
                   idle_timeout=config.idle_timeout,
                   shuffle_prefixes=config.shuffle_prefixes, reduce_task_bytes=config.reduce_task_bytes,
                   prices=prices(config))
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})


    @property
    def effective_mb_s(self) -> float:
        """One slot's throughput: its share of the function's vCPUs, at most one."""
        return self.throughput_mb_s * min(1.0, self.memory_mb / VCPU_MB / self.slots)

    @property
    def fleet(self) -> int:
        return max(1, min(self.executors, self.concurrency_quota))

    def lines(self) -> list[str]:
        p = self.prices
        return [
            f"per-executor throughput {self.throughput_mb_s:g} MB/s of stage input [{self.throughput_source}], "
            f"x min(1, {self.memory_mb} MB / {VCPU_MB} MB / {self.slots} slots) = {self.effective_mb_s:.1f} MB/s "
            "per task slot",
            f"executors: {self.fleet} (asked {self.executors}, concurrency quota {self.concurrency_quota}) "
            f"x {self.slots} task slots, "
            f"{self.memory_mb} MB {self.arch}, ready {self.cold_start_s:g} s after launch, replaced before "
            f"{self.executor_timeout:g} s",
            f"launches: dagrun ramp {self.ramp_initial:g} + {self.ramp_slope:g}*t per second, capped by Lambda's "
            f"{self.scaling_per_10s} new environments per 10 s",
            f"per task: {self.task_overhead_s:g} s overhead + {self.request_latency_s * 1000:g} ms per PUT and per "
            f"round of {self.fetch_concurrency} concurrent shuffle fetches (input streams at the throughput); "
            f"input split {fmt_bytes(self.split_size)}",
            f"requests: input GET per {fmt_bytes(self.input_block)} + 1 per task; 1 PUT per map output; 1 GET per "
            f"(map output, reduce task) pair; cleanup LIST per prefix ({self.shuffle_prefixes}) + DELETE per 1,000 "
            "objects; output files not counted",
            "reduce tasks: a stage reading only shuffles whose partition count was not given runs consecutive "
            + (f"partitions as one task per {fmt_bytes(self.reduce_task_bytes)} of shuffle input (reduce_task_bytes)"
               if self.reduce_task_bytes else "partitions one task each (reduce_task_bytes = 0)"),
            f"prices: Lambda ${gb_s_price(p, self.arch):.10f}/GB-s, ${p['lambda_request'] * 1e6:.2f}/M invocations; "
            f"S3 PUT/LIST ${p['s3_put'] * 1000:.4f}/1k, GET ${p['s3_get'] * 1000:.4f}/1k",
            "input stages read their whole splits (an upper bound for a job that reads a prefix, such as "
            "sort_by_key's sampling job); shuffle bytes scale linearly with the input; the driver is not billed",
        ]


@dataclass
class StageShape:
    """One stage as the estimate sees it, at the size it was planned (or dry-run) with."""

    stage_id: int
    name: str
    kind: str
    tasks: int
    parents: list[int]
    input_bytes: int = 0  # file input (byte-range splits) the stage reads
    written: float | None = None  # shuffle bytes a dry run measured
    job: str = ""
    work: str = "python"  # "scan": the action reads its file splits directly (network-bound); else per-record Python
    coalesce: bool = False  # its tasks may group partitions (dagrun.graph.planner.coalescible)


def stage_shapes(graph: Any, measured: dict[int, float] | None = None, job: str = "") -> list[StageShape]:
    """The stages of ``graph`` in topological order, with the file bytes each reads."""
    from dagrun.graph.nodes import BinaryRecordsNode, TextFileNode

    out = []
    for stage in graph.stages():
        input_bytes = 0
        for rdd in fused_chain(stage.rdd, stage.kind == "cache"):
            if isinstance(rdd, (TextFileNode, BinaryRecordsNode)) and (rdd is stage.rdd or rdd._cache_id is None):
                input_bytes += sum(max(0, s.data.end - s.data.start) for s in rdd.splits)
        scan = stage.kind == "result" and isinstance(stage.rdd, (TextFileNode, BinaryRecordsNode))
        out.append(StageShape(stage.stage_id, stage.name, stage.kind, stage.rdd.get_num_partitions(),
                              list(stage.parents), input_bytes, (measured or {}).get(stage.stage_id), job,
                              "scan" if scan else "python", coalescible(graph, stage)))
    return out


@dataclass
class Estimate:
    rows: list[CostRow]
    cleanup: CostRow
    wall_seconds: float
    ramp_seconds: float
    executors: int
    assumptions: Assumptions
    input_bytes: float
    scale: float

    @property
    def total(self) -> CostRow:
        total = CostRow("total")
        for row in [*self.rows, self.cleanup]:
            total.add(row)
        return total

    def dollars(self) -> dict[str, float]:
        return self.total.dollars(self.assumptions.prices, self.assumptions.arch)

    def text(self, brief: bool = False) -> str:
        a, t, usd = self.assumptions, self.total, self.dollars()
        req = ", ".join(f"~{t.requests[k]:,} {k.upper()}" for k in REQUEST_KINDS if t.requests.get(k))
        if brief:
            return "\n".join([
                f"Estimate at {fmt_bytes(self.input_bytes)} input: {t.tasks:,} tasks, {req or 'no'} store requests",
                f"  ~{self.wall_seconds:,.0f} s on {self.executors} executors, {t.gb_s:,.0f} GB-s at {a.memory_mb} MB "
                f"(assuming {a.effective_mb_s:.0f} MB/s per executor)",
                f"  estimated cost ${usd['total']:.4f} (compute ${usd['compute']:.4f}, invocations "
                f"${usd['invocations']:.4f}, requests ${usd['requests']:.4f}; us-east-1 prices unless overridden)"])
        head = f"  {'stage':<46} {'tasks':>7} {'MB/task':>8} {'task s':>7} {'start s':>8} {'end s':>8} " \
               f"{'GB-s':>10} {'PUT':>8} {'GET':>10} {'$':>9}"
        lines = [head]
        for row in [*self.rows, self.cleanup]:
            r = row.requests
            per_task = (row.bytes_in / row.tasks / 1e6) if row.tasks else 0.0
            start, end, task_s = row.timing or (0.0, 0.0, 0.0)
            lines.append(f"  {row.label[:46]:<46} {row.tasks:>7,} {per_task:>8.1f} {task_s:>7.2f} {start:>8.1f} "
                         f"{end:>8.1f} {row.gb_s:>10,.1f} {r.get('put', 0):>8,} {r.get('get', 0):>10,} "
                         f"{row.dollars(a.prices, a.arch)['total']:>9.4f}")
        lines += [
            f"  time: ~{self.wall_seconds:,.0f} s ({self.wall_seconds / 60:.1f} min), of which "
            f"~{self.ramp_seconds:.0f} s until all {self.executors} executors were launched",
            f"  cost: ${usd['total']:.4f} = compute ${usd['compute']:.4f} ({t.gb_s:,.0f} GB-s) + invocations "
            f"${usd['invocations']:.4f} ({t.invocations:,}) + S3 requests ${usd['requests']:.4f} ({req or 'none'})"]
        return "\n".join(lines)


def _put_requests(size: float) -> int:
    return 1 if size < _S3_MULTIPART else math.ceil(size / _S3_PART) + 2


def launch_times(n: int, a: Assumptions, step: float = 0.01) -> list[float]:
    """When each of ``n`` executors is launched: dagrun's ramp, capped by Lambda's scaling rule."""
    from scheduler.core.ramp import Ramp

    ramp = Ramp(a.ramp_initial, a.ramp_slope, 0.0)
    times: list[float] = []
    now = 0.0
    while len(times) < n:
        window = [t for t in times[-a.scaling_per_10s:] if t > now - 10.0]
        room = a.scaling_per_10s - len(window)
        granted = ramp.take(min(n - len(times), room), now) if room > 0 else 0
        times += [now] * granted
        now = round(now + step, 6)
    return times


def project(jobs: list[list[StageShape]], input_size: float | None, a: Assumptions) -> Estimate:
    """Scale the stage shapes of consecutive jobs (one Context) to ``input_size`` and simulate them."""
    seen = max((sum(s.input_bytes for s in job) for job in jobs), default=0)
    assumed: dict[int, float] = {}  # parallelized data given a size: no file, so no input GETs
    if input_size is None:
        scale, total_input = 1.0, float(seen)
    elif seen:
        scale, total_input = input_size / seen, float(input_size)
    else:  # parallelized data: give the input size to the stages that start the first job
        scale, total_input = 1.0, float(input_size)
        roots = [s.stage_id for s in jobs[0] if not s.parents] if jobs else []
        assumed = {stage_id: input_size / len(roots) for stage_id in roots}
    rows: list[CostRow] = []
    plans: list[tuple[CostRow, float, list[int], str]] = []  # row, task seconds, parent ids, job
    cleanup = CostRow("cleanup (driver)")
    for job in jobs:
        objects = 0
        partitions_of: dict[int, int] = {}
        written: dict[int, float] = {}
        shapes = {s.stage_id: s for s in job}
        for s in job:
            in_bytes = assumed.get(s.stage_id, s.input_bytes * scale)  # stage ids are unique in a Context
            if in_bytes:  # never fewer than planned: min_partitions may have asked for more splits
                partitions = max(s.tasks, math.ceil(in_bytes / a.split_size))
            elif s.parents and s.tasks == shapes[s.parents[0]].tasks:
                partitions = partitions_of[s.parents[0]]
            else:
                partitions = max(1, s.tasks)
            partitions_of[s.stage_id] = partitions
            read = sum(written.get(p, 0.0) for p in s.parents)
            tasks = partitions
            if s.coalesce and a.reduce_task_bytes:  # Lambda: bytes first, at least one task (Config.reduce_min_tasks)
                tasks = min(partitions, max(1, math.ceil(read / a.reduce_task_bytes)))
            row = CostRow(f"{s.job + ' ' if s.job else ''}stage {s.stage_id}: {s.name}", s.stage_id, tasks, tasks)
            row.bytes_in = int(read + in_bytes)
            fetches = sum(partitions_of[p] for p in s.parents) * tasks  # a GET per map output per task
            reads_file = in_bytes and s.stage_id not in assumed
            gets = fetches + (math.ceil(in_bytes / a.input_block) + tasks if reads_file else 0)
            puts = 0
            if s.kind in ("shuffle", "cache"):
                out = s.written * scale if s.written is not None else in_bytes + read
                written[s.stage_id] = out
                row.bytes_out = int(out)
                puts = partitions * _put_requests(out / partitions)  # every partition writes its own object
                objects += partitions
            row.requests.update({"get": gets, "put": puts})
            # input is streamed (its GET latency is inside the throughput); shuffle fetches go in rounds
            fetch_rounds = math.ceil(fetches / tasks / max(1, a.fetch_concurrency))
            task_s = (row.bytes_in / tasks / (a.effective_mb_s * 1e6) + a.task_overhead_s
                      + (fetch_rounds + puts / tasks) * a.request_latency_s)
            rows.append(row)
            plans.append((row, task_s, list(s.parents), s.job))
        if objects:  # the driver lists each key prefix of the job and deletes what it finds, 1,000 keys a request
            per_prefix = math.ceil(objects / a.shuffle_prefixes / 1000)
            deletes = a.shuffle_prefixes * per_prefix if objects >= a.shuffle_prefixes else objects
            cleanup.requests.update({"list": a.shuffle_prefixes * per_prefix, "delete": deletes})
    wall, ramp_s, fleet = _simulate(plans, a)
    return Estimate(rows, cleanup, wall, ramp_s, fleet, a, total_input, scale)


def _simulate(plans: list[tuple[CostRow, float, list[int], str]], a: Assumptions) -> tuple[float, float, int]:
    """List-schedule every task on the executor fleet; fills in each row's GB-s and invocations."""
    widest = max((row.tasks for row, *_ in plans), default=1)
    # each of an executor's task slots is a lane of its own here, billed 1/slots of the executor
    # and counted as 1/slots of an invocation (an approximation: one lane's retirement does not
    # retire its siblings)
    slots = a.slots
    fleet = min(a.fleet, widest)  # the driver launches for waiting tasks before it learns their slots
    launches = [t for t in launch_times(fleet, a) for _ in range(slots)]
    lanes = len(launches)
    ready_at = [t + a.cold_start_s for t in launches]
    born = list(launches)
    busy: list[dict[int, float]] = [{} for _ in range(lanes)]  # per lane: stage row index -> task seconds
    first_row: list[int | None] = [None] * lanes
    invocations: list[tuple[int, float, float]] = []  # lane, start, end of retired invocations
    heap = [(ready_at[i], i) for i in range(lanes)]
    heapq.heapify(heap)
    ended: dict[tuple[str, int], float] = {}
    job_start = 0.0
    current_job = plans[0][3] if plans else ""
    for index, (row, task_s, parents, job) in enumerate(plans):
        if job != current_job:  # the next job starts when the previous one has ended
            job_start, current_job = max(ended.values(), default=0.0), job
        ready = max([job_start, *(ended[(job, p)] for p in parents if (job, p) in ended)])
        end = ready
        for _ in range(row.tasks):
            free, i = heapq.heappop(heap)
            start = max(free, ready)
            if start + task_s - born[i] > a.executor_timeout - a.retire_margin:
                invocations.append((i, born[i], free))  # retire; a fresh invocation takes its place
                born[i] = start
                start += a.cold_start_s
                row.invocations += 1 / slots
            elif first_row[i] is None:
                first_row[i] = index
                row.invocations += 1 / slots
            finish = start + task_s
            busy[i][index] = busy[i].get(index, 0.0) + task_s
            heapq.heappush(heap, (finish, i))
            end = max(end, finish)
        ended[(job, row.stage_id)] = end
        row.timing = (ready, end, task_s)
    wall = max(ended.values(), default=0.0)
    # every launched executor is billed until it has been idle for idle_timeout after its last task
    # (or its start, if the ramp brought it too late to work), or until the end
    last = {i: free for free, i in heap}
    invocations += [(i, born[i], min(wall, last[i] + a.idle_timeout)) for i in range(lanes)]
    for i in range(lanes):
        if first_row[i] is None and plans:
            plans[0][0].invocations += 1 / slots
    for row, *_ in plans:
        row.invocations = round(row.invocations)
    for i, start, stop in invocations:
        gb_s = max(0.0, stop - start) * a.memory_mb / 1024 / slots
        shares = busy[i] or {0: 1.0}
        whole = sum(shares.values()) or 1.0
        for index, part in shares.items():
            plans[index][0].gb_s += gb_s * part / whole
            plans[index][0].executor_seconds += (stop - start) / slots * part / whole
    return wall, (launches[-1] if launches else 0.0), fleet


def estimate_graph(graph: Any, input_size: str | int | None, a: Assumptions) -> Estimate:
    """``explain(cost=True)``: one job's graph, as planned, at ``input_size`` (default: its own)."""
    from dagrun.config import parse_bytes

    size = parse_bytes(input_size) if input_size is not None else None
    return project([stage_shapes(graph)], size, a)


def estimate_text(graph: Any, input_size: str | int | None, config: Any, throughput_mb_s: float | None = None) -> str:
    """The request and cost estimate ``explain(cost=True)`` prints (see ``dagrun.observe.estimate``)."""
    assumptions = Assumptions.from_config(config, throughput_mb_s=throughput_mb_s)
    return estimate_graph(graph, input_size, assumptions).text(brief=True)
