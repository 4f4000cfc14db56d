"""Right-sized reduce tasks in the job core: consecutive partitions grouped by the bytes they read.

The core is driven by hand (``tests/unit/test_job_core.py``'s helpers); map outputs are real
``MapStatus`` segment tables, so the group sizes come from the same arithmetic a job uses.
"""

from __future__ import annotations

import pytest

from scheduler.core.coalesce import group_partitions, group_target, reduce_bytes
from scheduler.core.dag import JobSpec, StageSpec
from scheduler.core.events import RemoteError
from scheduler.core.jobs import Committed, JobCore, JobDone, ResultReceived, SendTask, SubmitJob
from scheduler.results import GroupValues
from shuffle.writer import MapStatus, Segment

from tests.unit.test_job_core import policy, run, stage_blob

MIB = 1 << 20


def test_groups_are_consecutive_runs_within_the_target():
    sizes = [3, 3, 3, 10, 0, 0, 1, 2]
    groups = group_partitions(range(8), sizes, 6)
    assert groups == [(0, 1), (2,), (3,), (4, 5, 6, 7)]
    assert [p for g in groups for p in g] == list(range(8))
    assert group_partitions([0, 1, 3, 4], sizes, 100) == [(0, 1), (3, 4)]  # never across a gap


def test_the_target_leaves_at_least_min_tasks_groups():
    assert group_target(100 * MIB, 256 * MIB, 1, 8) == 100 * MIB
    assert group_target(100 * MIB, 256 * MIB, 4, 8) == 25 * MIB
    assert group_target(100 * MIB, 256 * MIB, 16, 8) == 100 * MIB // 8
    assert group_target(0, 256 * MIB, 4, 8) == 1
    assert reduce_bytes([[1, 2, 3], [10, 0, 5]], 3) == [11, 2, 8]


def _status(sid: int, map_id: int, attempt: int, lengths: list[int]) -> MapStatus:
    offsets = [sum(lengths[:r]) for r in range(len(lengths))]
    return MapStatus.of_segments(sid, map_id, attempt, f"blocks/s{sid}/m{map_id}-a{attempt}",
                                 [Segment(o, n, 1, 0) for o, n in zip(offsets, lengths)])


def _job(maps: int, reduces: int, coalesce_bytes: int, min_tasks: int = 1) -> JobSpec:
    reads = {p: ((0, p),) for p in range(reduces)}
    stages = {1: StageSpec(1, "map", tuple(range(maps)), shuffle_id=0, num_maps=maps, index=0),
              0: StageSpec(0, "result", tuple(range(reduces)), reads=reads, parents=(1,), index=1,
                           coalesce_bytes=coalesce_bytes, min_tasks=min_tasks)}
    blobs = {sid: stage_blob(f"plan of stage {sid}") for sid in stages}
    tasks = {(sid, p): f"split {p}".encode() for sid, s in stages.items() for p in s.partitions}
    return JobSpec("j", stages, 0, blobs, tasks, runner="unused:unused")


class Answers:
    """Executors that answer like ``dagrun.runtime.task``: a map writes 10 bytes per reduce
    partition (40 for partition 5); a result task returns each partition it was given."""

    def __init__(self, lose_map_once: int | None = None):
        self.sent: list[SendTask] = []
        self.lose = lose_map_once

    def __call__(self, ins: SendTask, now: float) -> ResultReceived:
        self.sent.append(ins)
        key = (ins.stage_id, ins.partition)
        if ins.stage_id == 1:
            lengths = [40 if r == 5 else 10 for r in range(8)]
            return ResultReceived(ins.executor_id, key, ins.attempt, now, _status(0, ins.partition, ins.attempt, lengths))
        if self.lose is not None:
            lost, self.lose = self.lose, None
            error = RemoteError("FetchFailed", "gone", "", "fetch", 0, (lost,))
            return ResultReceived(ins.executor_id, key, ins.attempt, now, None, error=error)
        parts = (ins.partition, *(p for p, _ in ins.members))
        for p, blob in ins.members:
            assert blob == f"split {p}".encode()
        value = GroupValues(tuple((p, f"value {p}") for p in parts)) if ins.members else f"value {ins.partition}"
        return ResultReceived(ins.executor_id, key, ins.attempt, now, value)


def _results(spec: JobSpec, answers: Answers, executors: int = 1) -> tuple[dict, list]:
    core = JobCore(policy(max_executors=executors))
    ends = run(core, core.handle(SubmitJob(spec, 0.0)), {}, answers)
    assert len(ends) == 1 and isinstance(ends[0], JobDone), ends
    return ends[0].results, [s for s in answers.sent if s.stage_id == 0]


def test_a_small_shuffle_is_read_by_fewer_tasks_with_every_partition_in_order():
    # 3 maps x (10 bytes per partition, 40 for partition 5): partitions read 30 bytes, 120 for p5
    results, reduce_tasks = _results(_job(3, 8, coalesce_bytes=90), Answers())
    assert results == {p: f"value {p}" for p in range(8)}
    groups = [(t.partition, *(p for p, _ in t.members)) for t in reduce_tasks]
    assert groups == [(0, 1, 2), (3, 4), (5,), (6, 7)]  # p5 alone, over the target
    for task in reduce_tasks:  # each task is given exactly its partitions' blocks
        assert sorted(task.inputs) == [(0, p) for p in (task.partition, *(q for q, _ in task.members))]


def test_min_tasks_and_a_zero_target_keep_one_task_per_partition():
    _, tasks = _results(_job(3, 8, coalesce_bytes=10_000, min_tasks=4), Answers())
    assert 4 <= len(tasks) < 8  # at least min_tasks: the target is a quarter of the bytes
    _, tasks = _results(_job(3, 8, coalesce_bytes=0), Answers())
    assert [t.partition for t in tasks] == list(range(8)) and not any(t.members for t in tasks)


def test_commits_come_one_per_partition():
    core = JobCore(policy())
    out = run_collecting(core, _job(2, 4, coalesce_bytes=1000))
    committed = [c.key for c in out if isinstance(c, Committed) and c.key[0] == 0]
    assert committed == [(0, 0), (0, 1), (0, 2), (0, 3)]


def run_collecting(core: JobCore, spec: JobSpec) -> list:
    """``run``, keeping every instruction."""
    seen: list = []
    original = core.handle

    def handle(ev):
        out = original(ev)
        seen.extend(out)
        return out

    core.handle = handle  # type: ignore[method-assign]
    run(core, core.handle(SubmitJob(spec, 0.0)), {}, Answers())
    return seen


def test_a_lost_map_output_reruns_that_map_and_the_whole_group_again():
    answers = Answers(lose_map_once=1)
    results, reduce_tasks = _results(_job(3, 8, coalesce_bytes=1000), answers)
    assert results == {p: f"value {p}" for p in range(8)}
    maps = [s.partition for s in answers.sent if s.stage_id == 1]
    assert maps == [0, 1, 2, 1]  # only the lost map ran again
    assert len(reduce_tasks) == 2 and reduce_tasks[0].partition == reduce_tasks[1].partition
    assert [p for p, _ in reduce_tasks[1].members] == [p for p, _ in reduce_tasks[0].members] == list(range(1, 8))


@pytest.mark.parametrize("coalesce_bytes", [0, 50, 10_000])
def test_grouping_never_changes_the_results(coalesce_bytes):
    results, _ = _results(_job(4, 8, coalesce_bytes=coalesce_bytes), Answers(), executors=3)
    assert results == {p: f"value {p}" for p in range(8)}
