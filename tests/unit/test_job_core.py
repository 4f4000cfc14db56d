"""The sans-I/O job core, driven by hand: stage resends, bounded refetches, pruning, launch failures.

The executor side is the real stage cache of ``dagrun.runtime.task`` (``_load_stage``), so the
core's mirror of what an executor holds is checked against the code that evicts.
"""

from __future__ import annotations

import cloudpickle

from dagrun.runtime.task import _STAGE_CACHE_SIZE, _load_stage
from dagrun.runtime.user_files import pack_stage
from scheduler.core.dag import JobSpec, StageSpec
from scheduler.core.events import ExecutorRegistered, Launch, RemoteError, Tick
from scheduler.core.jobs import (
    HELD_STAGES, ExecutorGone, JobCore, JobDone, JobFailed, ResultReceived, SendTask, SubmitJob,
)
from scheduler.core.tasks import Policy
from scheduler.errors import ExecutorsCannotStart, JobAborted
from shuffle.writer import MapStatus, Segment


def policy(**kw):
    defaults = dict(max_executors=1, ramp_initial=10, ramp_slope=0, speculation=False, idle_timeout=1000,
                    heartbeat_timeout=1000)
    defaults.update(kw)
    return Policy(**defaults)


def stage_blob(plan) -> bytes:
    """A stage as the planner ships it (``pack_stage``), with no added files."""
    return pack_stage(cloudpickle.dumps(plan), (), "memory://unused", {})


def fan_in_job(job_id: str, maps: int, base: int = 0, num_maps: int = 1) -> JobSpec:
    """``maps`` map stages (each one shuffle) read together by one result task."""
    stages = {base + i: StageSpec(base + i, f"map{i}", tuple(range(num_maps)), shuffle_id=base + i,
                                  num_maps=num_maps, index=i) for i in range(maps)}
    result = base + maps
    reads = {0: tuple((base + i, 0) for i in range(maps))}
    stages[result] = StageSpec(result, "result", (0,), reads=reads, parents=tuple(stages), index=maps)
    blobs = {sid: stage_blob(f"plan of stage {sid}") for sid in stages}
    tasks = {(sid, p): b"" for sid, s in stages.items() for p in s.partitions}
    return JobSpec(job_id, stages, result, blobs, tasks, runner="unused:unused")


class FakeEnv:
    """What ``_load_stage`` needs of an executor: its id and its stage cache."""

    def __init__(self, executor_id: str):
        self.executor_id, self.stage_cache = executor_id, {}


def status(sid: int, map_id: int, attempt: int) -> MapStatus:
    return MapStatus.of_segments(sid, map_id, attempt, f"blocks/s{sid}/m{map_id}-a{attempt}", [Segment(0, 1, 1, 0)])


def run(core: JobCore, out: list, envs: dict, answer, now: float = 1.0, limit: int = 10_000) -> list:
    """Perform the core's instructions like a driver and its executors would; return the ends."""
    ends, queue, steps = [], list(out), 0
    while queue:
        steps += 1
        assert steps < limit, "the core did not settle"
        ins = queue.pop(0)
        if isinstance(ins, Launch):
            for executor_id in ins.executor_ids:
                envs[executor_id] = FakeEnv(executor_id)
                queue += core.handle(ExecutorRegistered(executor_id, now))
        elif isinstance(ins, SendTask):
            _load_stage(ins, envs[ins.executor_id])  # raises if the executor lacks the stage
            queue += core.handle(answer(ins, now))
        elif isinstance(ins, (JobDone, JobFailed)):
            ends.append(ins)
    return ends


def succeed(ins: SendTask, now: float, spec: JobSpec) -> ResultReceived:
    """A map task answers with its MapStatus, the result task with its partition number."""
    is_map = spec.stages[ins.stage_id].shuffle_id is not None
    value = status(ins.stage_id, ins.partition, ins.attempt) if is_map else ins.partition
    return ResultReceived(ins.executor_id, (ins.stage_id, ins.partition), ins.attempt, now, value)


def test_a_stage_the_executor_evicted_is_sent_again():
    assert HELD_STAGES < _STAGE_CACHE_SIZE
    maps = _STAGE_CACHE_SIZE + 8
    spec = fan_in_job("j1", maps)
    core, envs, sent = JobCore(policy(), now=0.0), {}, []
    failed_once = []

    def answer(ins: SendTask, now: float) -> ResultReceived:
        sent.append(ins)
        if ins.stage_id == maps and not failed_once:  # the reducer finds map 0's block gone
            failed_once.append(ins)
            error = RemoteError("FetchFailed", "block missing", "", "fetch", 0, (0,))
            return ResultReceived(ins.executor_id, (maps, 0), ins.attempt, now, None, error)
        return succeed(ins, now, spec)

    (end,) = run(core, core.handle(SubmitJob(spec, 0.0)), envs, answer)
    assert isinstance(end, JobDone) and end.results == {0: 0}
    rerun = [s for s in sent if s.stage_id == 0]
    assert len(rerun) == 2 and rerun[1].stage_blob is not None  # resent: the executor had evicted it
    # a stage it still holds is not sent twice: the result stage's retry went without its blob
    retries = [s for s in sent if s.stage_id == maps]
    assert retries[0].stage_blob is not None and retries[1].stage_blob is None


def test_a_block_corrupt_on_every_attempt_fails_the_job_naming_it():
    spec = fan_in_job("j2", 1, num_maps=2)
    core, envs, reads = JobCore(policy(), now=0.0, max_refetches=3), {}, []

    def answer(ins: SendTask, now: float) -> ResultReceived:
        if ins.stage_id == 1:  # every regeneration of map 1 is unreadable again
            reads.append(ins.attempt)
            error = RemoteError("FetchFailed", "checksum mismatch in blocks/s0/m1", "", "fetch", 0, (1,))
            return ResultReceived(ins.executor_id, (1, 0), ins.attempt, now, None, error)
        return succeed(ins, now, spec)

    (end,) = run(core, core.handle(SubmitJob(spec, 0.0)), envs, answer)
    assert isinstance(end, JobFailed) and isinstance(end.error, JobAborted)
    assert "could not read block blocks/s0/m1-a3" in str(end.error) and "regenerated 3 times" in str(end.error)
    assert len(reads) == 4  # the first read and one per regeneration allowed
    assert core.dag is None and not core.machine.tasks


def test_finished_jobs_leave_no_live_state():
    core, envs = JobCore(policy(), now=0.0), {}
    sizes = []
    for n in range(300):
        spec = fan_in_job(f"j{n}", 2, base=10 * n, num_maps=3)
        (end,) = run(core, core.handle(SubmitJob(spec, float(n))), envs,
                     lambda ins, now, spec=spec: succeed(ins, now, spec), now=float(n))
        assert isinstance(end, JobDone) and len(end.attempts) == 7 and end.log
        for sid in (10 * n, 10 * n + 1):
            core.tracker.drop_shuffle(sid)  # what the Context does with a job's shuffles
        m = core.machine
        sizes.append((len(m.tasks), len(m.log), len(m.durations), len(m._by_stage), len(m._running),
                      len(core.attempts), len(core._by_attempt), len(core._open), len(core._results)))
    assert sizes[-1] == sizes[9] == (0,) * 9


def test_executors_that_die_before_registering_end_the_job_with_their_words():
    spec = fan_in_job("j3", 1)
    core = JobCore(policy(max_executors=2, max_launch_failures=3, launch_failure_window=5.0), now=0.0)
    queue, now, ends = core.handle(SubmitJob(spec, 0.0)), 0.0, []
    while not ends and now < 60:
        while queue:
            ins = queue.pop(0)
            if isinstance(ins, Launch):  # every executor dies at start-up, saying why
                for executor_id in ins.executor_ids:
                    queue += core.handle(ExecutorGone(executor_id, now, "exited with code 1: "
                                                      "ModuleNotFoundError: No module named 'x'"))
            elif isinstance(ins, JobFailed):
                ends.append(ins)
        now += 0.5
        queue = core.handle(Tick(now))
    (end,) = ends
    assert isinstance(end.error, ExecutorsCannotStart)
    assert "No module named 'x'" in str(end.error) and 5.0 <= now <= 7.0
    # refused launches (a throttle) are not start-up failures
    core = JobCore(policy(max_launch_failures=1, launch_failure_window=0.0), now=0.0)
    (launch,) = core.handle(SubmitJob(spec, 0.0))
    out = core.handle(ExecutorGone(launch.executor_ids[0], 1.0, "launch throttled", refused=True))
    assert not any(isinstance(i, JobFailed) for i in out + core.handle(Tick(2.0)))
    assert core.dag is not None  # still running, launching again
