"""The DAG scheduler: stages in dependency order, the map-output tracker, lost-output recompute.

Sans-I/O like ``scheduler.core.tasks``: it is told what committed and what failed to fetch, and
answers with the task specs that may run now.

State:
- ``MapOutputTracker`` (outlives jobs, so persisted stages are reused): for each shuffle,
  the committed ``MapStatus`` of each map partition (segment tables as arrays) and a count.
- ``DagState`` (one per job): the stages, their readiness, the tasks parked on a fetch
  failure, and the result stage's committed values.

Policy (docs/architecture.md, Invariants, 4. Failures are classified):
- A stage's tasks are submitted once every shuffle it reads is complete.  A map stage whose
  outputs are all tracked already (a persisted RDD, or an earlier job's) is skipped.
- A fetch failure unregisters only the named map outputs, resubmits only those map tasks,
  and parks the failed task until they commit again.  A stage is never resubmitted whole.
- A task is given exactly the blocks it needs: for each (shuffle, reduce partition) it
  reads, one ``BlockColumn`` (the non-empty segments of every map, in map order).  It never
  needs a LIST.  A commit costs O(1) (a slot and a count), readiness O(parents).
- A stage marked with ``coalesce_bytes`` runs consecutive partitions as one task once its
  shuffles are complete (``scheduler.core.coalesce``); the task is keyed by its first
  partition, reads its members' blocks and commits each member's value.  A lost map that
  was part of a group runs again alone.  Grouping a stage costs O(M x R) once, at its start.

The scheduler knows nothing of RDDs: a task is a (stage, first partition) plus opaque blobs.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from shuffle.writer import BlockColumn, MapStatus

from scheduler.core.coalesce import group_partitions, group_target, reduce_bytes
from scheduler.core.events import TaskKey, TaskSpec
from scheduler.results import GroupValues


@dataclass(frozen=True)
class StageSpec:
    stage_id: int
    name: str
    partitions: tuple[int, ...]  # the partitions to compute in this job
    shuffle_id: int | None = None  # set when the stage writes a shuffle (a map stage)
    num_maps: int = 0  # a map stage's total partition count
    reads: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)  # partition -> (shuffle, reduce)s
    parents: tuple[int, ...] = ()  # the map stages whose shuffles this stage reads
    expected_seconds: float = 1.0
    index: int = 0  # position in the job's dependency order
    coalesce_bytes: int = 0  # > 0: consecutive partitions run as one task up to these shuffle bytes
    min_tasks: int = 1  # ... but the partitions are spread over at least this many tasks


@dataclass
class JobSpec:
    job_id: str
    stages: dict[int, StageSpec]
    result_stage: int
    stage_blobs: dict[int, bytes]
    task_blobs: dict[TaskKey, bytes]
    runner: str  # dotted path of the function executors run each task with, given by the planner


class _Shuffle:
    """One shuffle's committed map statuses, slot per map, with a count so that completeness is O(1)."""

    __slots__ = ("statuses", "stamps", "registered")

    def __init__(self, num_maps: int) -> None:
        self.statuses: list[MapStatus | None] = [None] * num_maps
        self.stamps = array("Q", bytes(8 * num_maps))  # the epoch each output was registered at
        self.registered = 0


class MapOutputTracker:
    """Committed map outputs by shuffle; the first committed attempt of each map wins.

    Per shuffle, one slot per map holding its ``MapStatus`` (whose segment table is four
    arrays), so a commit is O(1) and a reducer's inputs are one ``BlockColumn``, built in O(M).
    """

    def __init__(self) -> None:
        self._shuffles: dict[int, _Shuffle] = {}
        # Spark's epoch: a fetch failure from a task launched before an output was
        # (re)registered says nothing about that newer output
        self.epoch = 0

    @property
    def outputs(self) -> dict[int, dict[int, MapStatus]]:
        """The committed statuses as {shuffle: {map: status}} (a copy, for inspection)."""
        return {sid: {m: st for m, st in enumerate(sh.statuses) if st is not None}
                for sid, sh in self._shuffles.items()}

    @property
    def num_maps(self) -> dict[int, int]:
        return {sid: len(sh.statuses) for sid, sh in self._shuffles.items()}

    def register_shuffle(self, shuffle_id: int, num_maps: int) -> None:
        if shuffle_id not in self._shuffles:
            self._shuffles[shuffle_id] = _Shuffle(num_maps)

    def register(self, shuffle_id: int, map_id: int, status: MapStatus) -> bool:
        shuffle = self._shuffles.get(shuffle_id)
        if shuffle is None:
            raise KeyError(f"shuffle {shuffle_id} was never registered with the tracker")
        if shuffle.statuses[map_id] is not None:
            return False
        shuffle.statuses[map_id] = status
        shuffle.registered += 1
        self.epoch += 1
        shuffle.stamps[map_id] = self.epoch
        return True

    def unregister(self, shuffle_id: int, map_ids: tuple[int, ...], seen_epoch: int | None = None) -> list[MapStatus]:
        """Forget outputs reported lost, unless they were registered after ``seen_epoch``."""
        shuffle = self._shuffles.get(shuffle_id)
        if shuffle is None:
            return []
        lost = []
        for m in dict.fromkeys(map_ids):
            status = shuffle.statuses[m] if 0 <= m < len(shuffle.statuses) else None
            if status is not None and (seen_epoch is None or shuffle.stamps[m] <= seen_epoch):
                shuffle.statuses[m] = None
                shuffle.registered -= 1
                lost.append(status)
        return lost

    def missing(self, shuffle_id: int) -> list[int]:
        shuffle = self._shuffles.get(shuffle_id)
        if shuffle is None or shuffle.registered == len(shuffle.statuses):
            return []
        return [m for m, status in enumerate(shuffle.statuses) if status is None]

    def complete(self, shuffle_id: int) -> bool:
        shuffle = self._shuffles.get(shuffle_id)
        return shuffle is not None and shuffle.registered == len(shuffle.statuses)

    def blocks(self, shuffle_id: int, reduce_id: int) -> BlockColumn | None:
        """The blocks reduce partition ``reduce_id`` reads, or None while any map is missing."""
        if not self.complete(shuffle_id):
            return None
        return BlockColumn(shuffle_id, reduce_id, self._shuffles[shuffle_id].statuses)

    def reduce_bytes(self, shuffle_id: int) -> list[int]:
        """Bytes each reduce partition of a complete shuffle reads (O(M x R), once per reading stage)."""
        statuses = self._shuffles[shuffle_id].statuses
        width = statuses[0].num_partitions if statuses else 0
        return reduce_bytes((s.lengths for s in statuses), width)

    def drop_shuffle(self, shuffle_id: int) -> list[MapStatus]:
        shuffle = self._shuffles.pop(shuffle_id, None)
        return [] if shuffle is None else [s for s in shuffle.statuses if s is not None]


class DagState:
    """One job's progress through its stage DAG."""

    def __init__(self, job: JobSpec, tracker: MapOutputTracker):
        self.job = job
        self.tracker = tracker
        self.results: dict[int, Any] = {}
        self.submitted: set[int] = set()
        self.parked: dict[TaskKey, set[int]] = {}
        self.groups: dict[TaskKey, tuple[int, ...]] = {}  # a grouped task's key -> its partitions
        self._by_shuffle = {s.shuffle_id: s for s in job.stages.values() if s.shuffle_id is not None}
        for stage in self._by_shuffle.values():
            tracker.register_shuffle(stage.shuffle_id, stage.num_maps)

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.job.stages[self.job.result_stage].partitions)

    def start(self) -> list[TaskSpec]:
        return self._submit_ready()

    def members(self, key: TaskKey) -> tuple[int, ...]:
        """The partitions task ``key`` computes: its own, or its group's (``scheduler.core.coalesce``).
        A group keeps its members when it is parked and resubmitted."""
        return self.groups.get(key, (key[1],))

    def _pairs(self, key: TaskKey) -> list[tuple[int, int]]:
        reads = self.job.stages[key[0]].reads
        return [pair for p in self.members(key) for pair in reads.get(p, ())]

    def inputs(self, key: TaskKey) -> dict[tuple[int, int], BlockColumn] | None:
        """The blocks a task reads, or None if one of its map outputs is missing right now."""
        out = {}
        for shuffle_id, reduce_id in self._pairs(key):
            blocks = self.tracker.blocks(shuffle_id, reduce_id)
            if blocks is None:
                return None
            out[(shuffle_id, reduce_id)] = blocks
        return out

    def missing_inputs(self, key: TaskKey) -> tuple[int, tuple[int, ...]]:
        for shuffle_id, _ in self._pairs(key):
            missing = self.tracker.missing(shuffle_id)
            if missing:
                return shuffle_id, tuple(missing)
        raise ValueError(f"task {key} has all its inputs")

    def on_commit(self, key: TaskKey, value: Any) -> list[TaskSpec]:
        stage = self.job.stages[key[0]]
        for partition, part in split_values(key, value):
            if stage.shuffle_id is not None:
                self.tracker.register(stage.shuffle_id, partition, part)
            else:
                self.results[partition] = part
        return self._submit_ready() + self._unpark()

    def on_refetch(self, key: TaskKey, shuffle_id: int, map_ids: tuple[int, ...],
                   seen_epoch: int | None = None) -> tuple[list[TaskSpec], list[MapStatus]]:
        """Unregister the lost outputs and rerun only their map tasks; park ``key``."""
        lost = self.tracker.unregister(shuffle_id, map_ids, seen_epoch)
        self.parked[key] = {shuffle_id}
        producer = self._by_shuffle.get(shuffle_id)
        if producer is None:
            raise RuntimeError(f"shuffle {shuffle_id} has no producing stage in job {self.job.job_id}")
        missing = set(self.tracker.missing(shuffle_id))
        specs = []
        for m in map_ids:
            if m in missing:  # rerun alone: the rest of its group is still there
                self.groups.pop((producer.stage_id, m), None)
                specs.append(self._spec(producer, m))
        return specs + self._unpark(), lost

    def readers_of(self, shuffle_id: int) -> list[TaskKey]:
        """Every task of this job that reads ``shuffle_id``."""
        return [(s.stage_id, p) for s in self.job.stages.values() for p, pairs in s.reads.items()
                if any(sid == shuffle_id for sid, _ in pairs)]

    def park(self, keys: list[TaskKey], shuffle_id: int) -> None:
        for key in keys:
            self.parked.setdefault(key, set()).add(shuffle_id)

    def _spec(self, stage: StageSpec, partition: int) -> TaskSpec:
        return TaskSpec((stage.stage_id, partition), stage.expected_seconds, stage.name)

    def _ready(self, stage: StageSpec) -> bool:
        return all(self.tracker.complete(self.job.stages[p].shuffle_id) for p in stage.parents)

    def _submit_ready(self) -> list[TaskSpec]:
        specs: list[TaskSpec] = []
        for stage in self.job.stages.values():
            if stage.stage_id in self.submitted or not self._ready(stage):
                continue
            self.submitted.add(stage.stage_id)
            if stage.shuffle_id is not None:
                todo = self.tracker.missing(stage.shuffle_id)
            else:
                todo = list(stage.partitions)
            specs += [self._spec(stage, group[0]) for group in self._grouped(stage, todo)]
        return specs

    def _grouped(self, stage: StageSpec, todo: list[int]) -> list[tuple[int, ...]]:
        """``todo`` cut into the stage's tasks: one partition each, or groups of consecutive
        partitions sized by the shuffle bytes they read (``scheduler.core.coalesce``)."""
        if not stage.coalesce_bytes or len(todo) < 2:
            return [(p,) for p in todo]
        shuffles = {sid for p in todo for sid, _ in stage.reads.get(p, ())}
        per_shuffle = {sid: self.tracker.reduce_bytes(sid) for sid in shuffles}
        sizes: dict[int, int] = {p: sum(per_shuffle[sid][r] for sid, r in stage.reads.get(p, ())) for p in todo}
        target = group_target(sum(sizes.values()), stage.coalesce_bytes, stage.min_tasks, len(todo))
        groups = group_partitions(todo, sizes, target)
        for group in groups:
            if len(group) > 1:
                self.groups[(stage.stage_id, group[0])] = group
        return groups

    def _unpark(self) -> list[TaskSpec]:
        ready = [k for k, shuffles in self.parked.items() if all(self.tracker.complete(s) for s in shuffles)]
        for key in ready:
            del self.parked[key]
        return [self._spec(self.job.stages[k[0]], k[1]) for k in ready]


def split_values(key: TaskKey, value: Any) -> list[tuple[int, Any]]:
    """(partition, value) for each partition a committed task computed."""
    if isinstance(value, GroupValues):
        return list(value.values)
    return [(key[1], value)]
