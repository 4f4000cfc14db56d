"""The planner: Node lineage becomes a stage DAG, and the stage DAG becomes a ``JobSpec``.

Policy:
- Narrow operations fuse: a stage is the chain of narrow RDDs between its sources (input
  splits, parallelize slices) or shuffle reads, and its top RDD.  Every shuffle dependency
  cuts a stage; so does a persisted RDD, whose partitions are written once to the store
  (a "cache" map stage, skipped by later jobs once complete).
- One task spec per partition of the stage's top RDD.  For each the planner lists exactly
  the (shuffle, reduce partition) pairs it reads, found by walking its partition's lineage.
  A stage that reads only shuffles whose partition count was not given may run consecutive
  partitions in one task once their sizes are known (``StageSpec.coalesce_bytes``, see
  ``scheduler.core.coalesce``).
- The stage graph is the stages by id and the edges from a stage to the stages that read it;
  stages are handed to the scheduler in topological order (``graphlib``, generation by
  generation, each in the order the stages were found from the final RDD).
"""

from __future__ import annotations

import graphlib
import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, NoReturn

import cloudpickle

from scheduler.core.dag import JobSpec, StageSpec

from dagrun.graph import traceable_pickle
from dagrun.graph.nodes import Node, ShuffleDependency, Split
from dagrun.graph.user_code import ship_user_modules
from dagrun.runtime.task import StagePlan
from dagrun.runtime.user_files import pack_stage

# what executors run each task with; the scheduler knows it only as this dotted path
TASK_RUNNER = "dagrun.runtime.task:run_task"


@dataclass(frozen=True)
class CachePartitioner:
    """A persisted RDD's 'shuffle': map partition i is read back as partition i."""

    num_partitions: int

    def __call__(self, key: Any) -> int:  # pragma: no cover - the task routes by map index
        raise TypeError("a cache partitioner routes by map index")


@dataclass
class Stage:
    stage_id: int
    rdd: Node
    kind: str  # "shuffle" | "cache" | "result"
    dependency: ShuffleDependency | None = None
    parents: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        if self.kind == "result":
            return f"result of {self.rdd.name()}"
        if self.kind == "cache":
            return f"persist {self.rdd.name()}"
        return f"map for shuffle {self.dependency.shuffle_id} ({self.rdd.name()})"


class StageGraph:
    """The stage DAG of one job, built by walking lineage from the final RDD."""

    def __init__(self, final: Node, ctx_next_id: Callable[[str], int], result_kind: str = "result"):
        self._stages: dict[int, Stage] = {}
        self._edges: list[tuple[int, int]] = []  # (stage, a stage that reads it), as found
        self._next_id = ctx_next_id
        self._by_shuffle: dict[int, Stage] = {}
        self.result = self._new_stage(final, result_kind, None)
        self._link(self.result)

    def stages(self) -> list[Stage]:
        """Every stage, each after the stages it reads."""
        order: graphlib.TopologicalSorter = graphlib.TopologicalSorter()
        for stage_id in self._stages:
            order.add(stage_id)
        for parent, child in self._edges:
            order.add(child, parent)
        return [self._stages[s] for s in order.static_order()]

    def stage(self, stage_id: int) -> Stage:
        return self._stages[stage_id]

    def _new_stage(self, rdd: Node, kind: str, dep: ShuffleDependency | None) -> Stage:
        stage = Stage(self._next_id("stage"), rdd, kind, dep)
        self._stages[stage.stage_id] = stage
        return stage

    def _link(self, stage: Stage) -> None:
        for boundary_rdd, dep, kind, source in self._boundaries(stage.rdd, stage.kind == "cache"):
            parent = self._by_shuffle.get(dep.shuffle_id)
            if parent is None:
                parent = self._new_stage(source, kind, dep)
                self._by_shuffle[dep.shuffle_id] = parent
                self._link(parent)
            if parent.stage_id not in stage.parents:
                stage.parents.append(parent.stage_id)
                self._edges.append((parent.stage_id, stage.stage_id))

    def _boundaries(self, top: Node, top_is_cache: bool) -> list[tuple]:
        """Shuffle and persist boundaries reachable from ``top`` through narrow dependencies."""
        found, seen, stack = [], set(), [(top, True)]
        while stack:
            rdd, is_top = stack.pop()
            if rdd.rdd_id in seen:
                continue
            seen.add(rdd.rdd_id)
            if rdd._cache_id is not None and not (is_top and top_is_cache):
                dep = ShuffleDependency(rdd._cache_id, CachePartitioner(rdd.get_num_partitions()), None, "context")
                found.append((rdd, dep, "cache", rdd))
                continue
            dep = rdd.shuffle_dependency
            if dep is not None:
                found.append((rdd, dep, "shuffle", rdd.parents[0]))
                continue
            stack.extend((p, False) for p in rdd.parents)
        return found


def reads_of(rdd: Node, split: Split, is_top: bool = True, cache_top: bool = False) -> list[tuple[int, int]]:
    """The (shuffle, reduce partition) pairs that computing ``split`` of ``rdd`` reads."""
    if rdd._cache_id is not None and not (is_top and cache_top):
        return [(rdd._cache_id, split.index)]
    dep = rdd.shuffle_dependency
    if dep is not None:
        return [(dep.shuffle_id, split.index)]
    out: list[tuple[int, int]] = []
    for parent, parent_split in rdd.narrow_parents(split):
        for pair in reads_of(parent, parent_split, False):
            if pair not in out:
                out.append(pair)
    return out


def plan_job(ctx, rdd: Node, func: Callable | None, partitions: list[int], job_id: str,
             kind: str = "result") -> tuple[JobSpec, StageGraph]:
    """Cut ``rdd``'s lineage into stages and serialize them for the scheduler."""
    graph = StageGraph(rdd, ctx._next_id)
    specs: dict[int, StageSpec] = {}
    blobs: dict[int, bytes] = {}
    task_blobs: dict[tuple[int, int], bytes] = {}
    faults = ctx.faults
    ship_user_modules(ctx.config.executor)  # before any stage is pickled: the user's modules go by value
    for index, stage in enumerate(graph.stages()):
        is_result = stage is graph.result
        splits = stage.rdd.splits
        todo = partitions if is_result else list(range(len(splits)))
        reads = {p: tuple(reads_of(stage.rdd, splits[p], True, stage.kind == "cache")) for p in todo}
        write_job = ""
        if stage.dependency is not None:
            write_job = ctx._cache_job_id if stage.dependency.job_scope == "context" else job_id
        plan = StagePlan(stage.rdd, kind if is_result else "shuffle", ctx.config, ctx.store_url,
                         stage.dependency, write_job, func if is_result else None, index, stage.name, faults,
                         ctx._fault_dir)
        try:
            plan_blob = traceable_pickle.dumps(plan)  # tracebacks name the user's files
        except Exception as exc:
            raise SerializationError.of(stage.name, exc, "Functions passed to RDD operations must be picklable by "
                                        "cloudpickle (no open files, locks, sockets, RDDs or Context objects "
                                        "captured in closures).") from exc
        blobs[stage.stage_id] = pack_stage(plan_blob, ctx.added_files.entries, ctx.store_url,
                                           ctx.config.storage_options)
        for p in todo:
            task_blobs[(stage.stage_id, p)] = _dumps_split(splits[p])
        specs[stage.stage_id] = StageSpec(
            stage_id=stage.stage_id, name=stage.name, partitions=tuple(todo),
            shuffle_id=None if is_result else stage.dependency.shuffle_id,
            num_maps=0 if is_result else len(splits), reads=reads, parents=tuple(stage.parents),
            expected_seconds=_expected_seconds(stage.rdd), index=index,
            coalesce_bytes=ctx.config.reduce_task_bytes if coalescible(graph, stage) else 0,
            min_tasks=ctx.config.reduce_min_tasks)
    job = JobSpec(job_id, specs, graph.result.stage_id, blobs, task_blobs, runner=TASK_RUNNER)
    return job, graph


def coalescible(graph: StageGraph, stage: Stage) -> bool:
    """Whether the stage's tasks may each run several partitions (``scheduler.core.coalesce``): it
    reads only shuffles, every one of them with a partition count the user left to dagrun."""
    if not stage.parents:
        return False
    for parent in stage.parents:
        dep = graph.stage(parent).dependency
        if not dep.adaptive or dep.job_scope != "job":
            return False
    # an input split or parallelized slice in the chain has work the shuffle sizes do not show
    return all(node.parents or node.shuffle_dependency is not None for node in fused_chain(stage.rdd, False)
               if node._cache_id is None or node is stage.rdd)


class SerializationError(pickle.PicklingError, TypeError):
    """A function or a partition's data that cannot be pickled for the executors.

    A ``pickle.PicklingError`` as in PySpark, and a ``TypeError`` as dagrun raised before."""

    @classmethod
    def of(cls, what: str, exc: Exception, advice: str) -> "SerializationError":
        return cls(f"cannot serialize {what}: {type(exc).__name__}: {str(exc).rstrip('.')}. {advice}")


def refuse_pickling(name: str) -> NoReturn:
    """Raise what PySpark raises when a function shipped to executors captures the driver's ``name``."""
    raise RuntimeError(f"It appears that you are attempting to reference the {name} from a broadcast variable, "
                       "action or transformation (PySpark's SPARK-5063). It can only be used on the driver, not "
                       "in code that runs on executors: run the inner job on the driver first and pass its "
                       "result, or broadcast it")


def _dumps_split(split: Split) -> bytes:
    try:
        return pickle.dumps(split, protocol=5)
    except Exception:  # noqa: BLE001 - data holding lambdas or local classes needs cloudpickle
        try:
            return cloudpickle.dumps(split, protocol=5)
        except Exception as exc:
            raise SerializationError.of(f"partition {split.index}'s data", exc, "The data of parallelize must be "
                                        "picklable (no RDDs, Context objects, open files or locks).") from exc


def _expected_seconds(rdd: Node) -> float:
    """A first guess of a task's duration before any has finished: ~100 MB/s of input."""
    from dagrun.graph.nodes import TextFileNode

    stack, seen = [rdd], set()
    while stack:
        r = stack.pop()
        if r.rdd_id in seen:
            continue
        seen.add(r.rdd_id)
        if isinstance(r, TextFileNode):
            return max(1.0, (r.split_size or 128e6) / 100e6)
        if r.shuffle_dependency is None:
            stack.extend(r.parents)
    return 1.0


def fused_chain(top: Node, cache_top: bool) -> list[Node]:
    """The nodes of ``top``'s stage, top first: the narrow steps fused into one task."""
    chain, stack, seen = [], [top], set()
    while stack:
        rdd = stack.pop()
        if rdd.rdd_id in seen:
            continue
        seen.add(rdd.rdd_id)
        chain.append(rdd)
        if (rdd._cache_id is not None and not (rdd is top and cache_top)) or rdd.shuffle_dependency is not None:
            continue
        stack.extend(reversed(rdd.parents))
    return chain
