"""The real scheduler against the simulated cloud, in virtual time: no sockets, no sleeps.

State: a SimPy environment (the virtual clock), the scheduler's own ``JobCore`` (with its
``TaskStateMachine``, ``MapOutputTracker`` and ``DagState``: one core for the whole run, as a
driver keeps it across jobs), the Lambda and S3 models (``dagrun.sim.cloud``), one record
per simulated executor, and the tallies the result is made of.

Policy:
- This module plays the driver's I/O part and nothing else.  Each event goes to the job
  core exactly as ``scheduler.driver`` gives it (job submission, registration, heartbeat,
  task result with its value and metrics, executor gone, throttle, a tick every
  ``tick_s``), and each instruction that comes back is performed on the models: ``Launch``
  invokes Lambda (a 429 is a refused launch plus a ``Throttled("lambda")``, as the driver
  reports one), ``SendTask`` starts a task process, ``Retire``/``Kill`` end an invocation,
  ``JobDone``/``JobFailed`` start the next job or end the run.  Events raised while
  instructions are performed queue up and are handled in order, as on the driver's queue.
- An executor heartbeats every ``heartbeat_s``, is lost by fault with probability
  ``Faults.executor_loss`` at a uniform time within ``loss_window_s`` of registering, and
  is ended by Lambda at its timeout.  A task is a straggler with probability
  ``Faults.straggler`` and then takes ``straggler_factor`` times as long.
- A task reads (file splits in rounds of GETs to the input's prefix, or to one of
  ``input_prefixes`` by partition for a data set spread over several; shuffle blocks in rounds of
  ``fetch_concurrency`` ranged GETs, each to its block's real prefix from
  ``shuffle.layout``), computes, and writes its map output with one PUT; 503s cost the
  store's back-off, and a task whose request runs out of retries fails with a task error.
  A task that met a 503 reports it, and the scheduler's ramp backs off as on a real run.
- Jobs run one after another on the same fleet, as consecutive jobs of one Context.

Promise: the same inputs and seed give the same result; the run ends when the last job
ends (or aborts) and every invocation is closed and billed.
"""

from __future__ import annotations

import random
import time
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from scheduler.core.dag import JobSpec, StageSpec
from scheduler.core.events import (
    ExecutorRegistered, HeartbeatReceived, Kill, Launch, RemoteError, Retire, TaskMetrics, Throttled, Tick,
)
from scheduler.core.jobs import (
    Committed, DropOutput, ExecutorGone, JobCore, JobDone, JobFailed, ResultReceived, SendTask, SubmitJob,
)
from scheduler.core.tasks import Policy
from shuffle.layout import block_key, parse_block_key
from shuffle.writer import MapStatus

from dagrun.observe.estimate import Assumptions
from dagrun.sim.cloud import LambdaCloud, LambdaModel, S3Cloud, S3Model, Throttled503
from dagrun.sim.workload import MB, SimStage, Workload, cpu_seconds, input_gets

INPUT_PREFIX = "input"


@dataclass(frozen=True)
class Faults:
    executor_loss: float = 0.0  # the fraction of executors lost
    loss_window_s: float = 30.0  # a lost executor dies this long after registering, at most
    straggler: float = 0.0  # the fraction of tasks that run slow
    straggler_factor: float = 4.0


@dataclass
class _Executor:
    executor_id: str
    invoked: float
    up: bool = False
    gone: bool = False
    deadline: float = 0.0
    lose_at: float | None = None
    task: tuple[Any, Any] | None = None  # (key, attempt), process


@dataclass
class Tally:
    """What happened, for the result."""

    assigned: int = 0  # attempts started
    attempts: Counter = field(default_factory=Counter)  # outcome -> count
    speculative: int = 0
    lost_running: int = 0  # attempts that were running on an executor when it was lost
    busy: Counter = field(default_factory=Counter)  # compute | network | requests | backoff -> executor-seconds
    stages: dict[tuple[int, int], list[float]] = field(default_factory=dict)  # (job, stage) -> [start, end]
    jobs: list[dict[str, Any]] = field(default_factory=list)
    executors_up: list[tuple[float, int]] = field(default_factory=list)  # (time, registered count)
    errors: list[str] = field(default_factory=list)


class Simulation:
    def __init__(self, jobs: list[list[SimStage]], policy: Policy, a: Assumptions, workload: Workload,
                 lam: LambdaModel, s3: S3Model, faults: Faults = Faults(), seed: int = 0,
                 tick_s: float = 0.05, heartbeat_s: float = 5.0, app: str = "sim", input_prefixes: int = 1):
        import simpy  # lazily: `import dagrun` stays light

        self.simpy = simpy
        self.env = simpy.Environment()
        self.jobs, self.policy, self.a, self.workload, self.faults = jobs, policy, a, workload, faults
        self.rng = random.Random(seed)
        self.lam = LambdaCloud(lam)
        self.s3 = S3Cloud(s3, random.Random(seed + 1))
        self.core = JobCore(policy, 0.0, id_prefix="sim")
        self.machine = self.core.machine
        self.log: list = []  # the scheduler's log of every job, as each JobDone/JobFailed hands it over
        self.tick_s, self.heartbeat_s, self.app = tick_s, heartbeat_s, app
        self.input_prefixes = max(1, input_prefixes)
        self.tally = Tally()
        self.executors: dict[str, _Executor] = {}
        self._queue: deque = deque()
        self._pumping = False
        self._job: JobSpec | None = None
        self._job_index = -1
        self._stages: dict[int, SimStage] = {}
        self._segments: dict[int, tuple[array, array, array, array]] = {}
        self._prefix_cache: dict[str, str] = {}
        self._next_shuffle = 0
        self.done = self.env.event()
        self.failed: str | None = None
        self.wall_seconds = 0.0

    # ---- the run ---------------------------------------------------------------------------

    def run(self, until: float = 86400.0) -> "Simulation":
        started = time.perf_counter()
        self.env.process(self._ticker())
        self._next_job()
        self.env.run(until=self.env.any_of([self.done, self.env.timeout(until)]))
        if not self.done.triggered:
            self.failed = self.failed or f"the simulation did not finish within {until:g} virtual seconds"
        self.lam.close(self.env.now)
        self.wall_seconds = time.perf_counter() - started
        return self

    def _ticker(self):
        while not self.done.triggered:
            yield self.env.timeout(self.tick_s)
            self.post(Tick(self.env.now))

    def _next_job(self) -> None:
        now = self.env.now
        if self._job is not None:
            self.tally.jobs[-1]["end"] = now
        self._job_index += 1
        if self._job_index >= len(self.jobs):
            self._job = None
            self.done.succeed()
            return
        self._job = self._job_spec(self.jobs[self._job_index])
        self.tally.jobs.append({"job": self._job_index, "start": now, "end": None})
        self.post(SubmitJob(self._job, now))

    def _job_spec(self, stages: list[SimStage]) -> JobSpec:
        """The scheduler's view of a job: stages, shuffles and the reads of each partition."""
        shuffle_of: dict[int, int] = {}
        for s in stages:
            if s.writes_shuffle:
                shuffle_of[s.stage_id] = self._next_shuffle
                self._next_shuffle += 1
        specs = {}
        for index, s in enumerate(stages):
            self._stages[s.stage_id] = s
            reads = {p: tuple((shuffle_of[q], p) for q in s.parents) for p in range(s.tasks)} if s.parents else {}
            specs[s.stage_id] = StageSpec(s.stage_id, s.name, tuple(range(s.tasks)), shuffle_of.get(s.stage_id),
                                          s.tasks if s.writes_shuffle else 0, reads, tuple(s.parents),
                                          expected_seconds=self._expected(s), index=index)
        result = stages[-1].stage_id
        job_id = f"{self.app}-j{self._job_index}"
        blobs = {s.stage_id: b"" for s in stages}
        tasks = {(s.stage_id, p): b"" for s in stages for p in range(s.tasks)}
        return JobSpec(job_id, specs, result, blobs, tasks, runner="dagrun.sim")

    def _expected(self, s: SimStage) -> float:
        net = (s.file_bytes + s.shuffle_bytes) / (self.lam.model.network_mb_s * MB)
        return max(net, cpu_seconds(s, self.workload, self.lam.model.cpu_share))

    # ---- events in, instructions out ---------------------------------------------------------

    def post(self, event: Any) -> None:
        self._queue.append(event)
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._queue:
                event = self._queue.popleft()
                if not self.done.triggered:
                    self._do(self.core.handle(event))
        finally:
            self._pumping = False

    def _do(self, instructions: list) -> None:
        for ins in instructions:
            getattr(self, f"_do_{type(ins).__name__.lower()}")(ins)
            if self.done.triggered:
                return

    def _do_launch(self, ins: Launch) -> None:
        now, refused = self.env.now, []
        for executor_id in ins.executor_ids:
            startup = self.lam.invoke(executor_id, now)
            if startup is None:
                refused.append(executor_id)
                continue
            ex = self.executors[executor_id] = _Executor(executor_id, now)
            self.env.process(self._executor(ex, startup))
        for executor_id in refused:
            self.post(ExecutorGone(executor_id, now, "launch throttled", refused=True))
        if refused:
            self.post(Throttled(now, "lambda"))

    def _do_sendtask(self, ins: SendTask) -> None:
        now, key = self.env.now, (ins.stage_id, ins.partition)
        self.tally.assigned += 1
        self.tally.speculative += ins.speculative
        span = self.tally.stages.setdefault((self._job_index, ins.stage_id), [now, now])
        span[0] = min(span[0], now)
        ex = self.executors.get(ins.executor_id)
        if ex is None or ex.gone:
            self.post(ExecutorGone(ins.executor_id, now, "send failed: the executor is gone"))
            return
        ex.task = ((key, ins.attempt), self.env.process(self._task(ex, key, ins.attempt, ins.inputs)))

    def _do_committed(self, ins: Committed) -> None:
        self.tally.attempts["committed"] += 1
        self.tally.stages[(self._job_index, ins.key[0])][1] = self.env.now

    def _do_dropoutput(self, ins: DropOutput) -> None:
        self.tally.attempts["dropped"] += 1

    def _do_jobdone(self, ins: JobDone) -> None:
        self.log += ins.log
        self._next_job()

    def _do_jobfailed(self, ins: JobFailed) -> None:
        self.log += ins.log
        self.failed = f"job {self._job_index} failed: {ins.error}"
        self.tally.jobs[-1]["end"] = self.env.now
        self._job = None
        self.done.succeed()

    def _do_retire(self, ins: Retire) -> None:
        ex = self.executors.get(ins.executor_id)
        if ex is not None and not ex.gone:
            self._end(ex, reuse=True)
            self.post(ExecutorGone(ins.executor_id, self.env.now, "retired"))

    def _do_kill(self, ins: Kill) -> None:
        ex = self.executors.get(ins.executor_id)
        if ex is not None and not ex.gone:
            self._end(ex, reuse=False)
            self.post(ExecutorGone(ins.executor_id, self.env.now, f"killed: {ins.reason}"))

    # ---- executors ---------------------------------------------------------------------------

    def _end(self, ex: _Executor, reuse: bool) -> None:
        ex.gone = True
        self.lam.end(ex.executor_id, self.env.now, reuse)
        if ex.task is not None:
            _, process = ex.task
            ex.task = None
            if process.is_alive and process is not self.env.active_process:
                process.interrupt()
        self._count_up(-1 if ex.up else 0)

    def _count_up(self, delta: int) -> None:
        if delta:
            count = (self.tally.executors_up[-1][1] if self.tally.executors_up else 0) + delta
            self.tally.executors_up.append((self.env.now, count))

    def _executor(self, ex: _Executor, startup: float):
        env = self.env
        yield env.timeout(startup)
        if ex.gone:  # killed while starting (launch_timeout)
            return
        ex.up = True
        self._count_up(1)
        remaining = self.lam.model.timeout_s - startup
        ex.deadline = env.now + remaining
        if self.rng.random() < self.faults.executor_loss:
            ex.lose_at = env.now + self.rng.uniform(0.0, self.faults.loss_window_s)
        self.post(ExecutorRegistered(ex.executor_id, env.now, remaining))
        while not ex.gone and not self.done.triggered:
            wake = min(env.now + self.heartbeat_s, ex.deadline, ex.lose_at or ex.deadline)
            yield env.timeout(max(0.0, wake - env.now))
            if ex.gone or self.done.triggered:
                return
            if env.now >= ex.deadline or (ex.lose_at is not None and env.now >= ex.lose_at):
                reason = "Lambda timeout" if env.now >= ex.deadline else "simulated executor loss"
                if ex.task is not None:
                    self.tally.lost_running += 1
                    self.tally.attempts["lost"] += 1
                self._end(ex, reuse=False)
                self.post(ExecutorGone(ex.executor_id, env.now, reason))
                return
            self.post(HeartbeatReceived(ex.executor_id, env.now))

    # ---- tasks -------------------------------------------------------------------------------

    def _prefix(self, key: str) -> str:
        prefix = self._prefix_cache.get(key)
        if prefix is None:
            parsed = parse_block_key(key)
            prefix = self._prefix_cache[key] = parsed.prefix if parsed else INPUT_PREFIX
        return prefix

    def _task(self, ex: _Executor, key: tuple[int, int], attempt: int, inputs: dict):
        env, stage, lam = self.env, self._stages[key[0]], self.lam.model
        slow = self.faults.straggler_factor if self.rng.random() < self.faults.straggler else 1.0
        cpu = cpu_seconds(stage, self.workload, lam.cpu_share) * slow
        net_rate = lam.network_mb_s * MB
        busy, began, backoff = self.tally.busy, env.now, 0.0
        try:
            if stage.file_bytes:  # streamed: GET rounds while reading and computing overlap
                gets, rounds = input_gets(stage, self.a), max(1, min(8, input_gets(stage, self.a)))
                pace = max(cpu, stage.file_bytes / net_rate) / rounds
                prefix = INPUT_PREFIX if self.input_prefixes == 1 else f"{INPUT_PREFIX}{key[1] % self.input_prefixes}"
                for r in range(rounds):
                    # delegated, not a child process: an interrupt (executor lost) reaches the request too
                    backoff += yield from self.s3.request(env, "get", {prefix: gets // rounds + (r < gets % rounds)})
                    yield env.timeout(pace)
            if inputs:  # ranged GETs of every map output, fetch_concurrency at a time, then compute
                refs = [ref for blocks in inputs.values() for ref in blocks]
                width = max(1, self.a.fetch_concurrency)
                fetch_began = env.now
                for i in range(0, len(refs), width):
                    counts = Counter(self._prefix(ref.key) for ref in refs[i:i + width])
                    backoff += yield from self.s3.request(env, "get", counts)
                spent = env.now - fetch_began
                yield env.timeout(max(0.0, stage.shuffle_bytes / net_rate - spent) + cpu * (
                    stage.shuffle_bytes / max(1.0, stage.shuffle_bytes + stage.file_bytes)))
            value: Any = None
            if stage.writes_shuffle:
                shuffle_id = self._job.stages[key[0]].shuffle_id
                object_key = block_key(self._job.job_id, shuffle_id, key[1], attempt, self.a.shuffle_prefixes)
                yield env.timeout(stage.out_bytes / net_rate)
                backoff += yield from self.s3.request(env, "put", {self._prefix(object_key): 1})
                value = MapStatus(shuffle_id, key[1], attempt, object_key, *self._segments_of(stage))
        except self.simpy.Interrupt:
            return  # the executor was lost or killed: its loss is the event
        except Throttled503 as exc:
            error = RemoteError("StoreThrottled", str(exc), "", "error")
            self._finish(ex, key, attempt, began, 0.0, backoff, None, error)
            return
        busy["compute"] += cpu
        self._finish(ex, key, attempt, began, cpu, backoff, value, None)

    def _finish(self, ex: _Executor, key, attempt: int, began: float, cpu: float, backoff: float, value: Any,
                error: RemoteError | None) -> None:
        elapsed = self.env.now - began
        busy = self.tally.busy
        busy["backoff"] += backoff
        busy["transfer and requests"] += max(0.0, elapsed - backoff - cpu)
        ex.task = None
        if error is not None:
            self.tally.attempts["failed"] += 1
        # the store's 503s travel in the metrics, and the core slows the ramp for them
        metrics = TaskMetrics(store_requests={"throttled": 1} if backoff else {})
        self.post(ResultReceived(ex.executor_id, key, attempt, self.env.now, value, error, metrics))

    def _segments_of(self, stage: SimStage) -> tuple[array, array, array, array]:
        """A map output's segment table: its bytes spread evenly over the reduce partitions.
        Every map of a stage shares one table; nothing writes to it."""
        table = self._segments.get(stage.stage_id)
        if table is None:
            readers = [s.tasks for s in self._stages.values() if stage.stage_id in s.parents] or [1]
            width, length = readers[0], int(stage.out_bytes / readers[0])
            table = self._segments[stage.stage_id] = (array("Q", range(0, width * length, length or 1))
                                                      if length else array("Q", [0] * width),
                                                      array("Q", [length] * width), array("Q", [0] * width),
                                                      array("I", [0] * width))
        return table
