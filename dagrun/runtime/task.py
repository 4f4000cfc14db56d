"""The task runtime: what an executor does with one task of a dagrun stage.

``run_task`` is the runner every executor calls (``dagrun.runtime.task:run_task``): it unpickles
the stage (cached per executor), computes the partition through the stage's fused chain of
narrow operations, and then either writes the map output of a shuffle (returning its
``MapStatus``) or applies the action's per-partition function (returning its value).  A task
given a group of consecutive partitions (``scheduler.core.coalesce``) fetches the group's shuffle
segments together, computes each partition in turn as above, and returns ``GroupValues``.

The stage travels as ``dagrun.runtime.user_files.pack_stage`` made it: the files added to the
Context are fetched before the plan is unpickled.

``TaskContext`` is what lineage code sees while it runs: the blocks it was given to read,
the store, the memory budget and scratch directory for spilling, and the task's metrics.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal

import cloudpickle

from scheduler.results import GroupValues, TaskValue, encode_value
from scheduler.wire.channel import DEFAULT_MAX_MESSAGE
from shuffle.layout import result_key
from shuffle.reader import fetch_segments, merge_combiners, read_blocks, sort_records
from shuffle.store import BlockStore
from shuffle.writer import write_map_output

from dagrun.config import Config
from dagrun.runtime.faults import apply_task_faults, store_fault_hook
from dagrun.runtime.inputs import input_get_hook
from dagrun.runtime.shared_vars import task_updates
from dagrun.runtime.user_files import fetch_added, unpack_stage

_STAGE_CACHE_SIZE = 32
_stores: dict[tuple, BlockStore] = {}


@dataclass(frozen=True)
class StagePlan:
    """What every task of one stage shares; pickled once per stage."""

    rdd: Any
    kind: Literal["shuffle", "result", "count_lines"]
    config: Config
    store_url: str
    dependency: Any = None  # lineage.ShuffleDependency for a map stage
    write_job_id: str = ""  # the layout's job id for this stage's blocks
    func: Callable | None = None  # (tc, iterator) -> value, for a result stage
    stage_index: int = 0  # position in the job, for fault selectors
    stage_name: str = ""
    faults: tuple = ()  # dagrun.runtime.faults.Fault rules
    fault_dir: str | None = None  # where executors on this machine share fault budgets


class TaskContext:
    """The running task's view of its inputs, its store and its budgets."""

    def __init__(self, plan: StagePlan, partition: int, attempt: int, inputs: dict, scratch_dir: str,
                 store: BlockStore, fetched: dict | None = None):
        self.plan, self.partition_index, self.attempt = plan, partition, attempt
        self.inputs, self.scratch_dir, self.store = inputs, scratch_dir, store
        self.config = plan.config
        self.records_read = 0
        self.fetched = fetched  # a group's segments, fetched together (shuffle.reader.fetch_segments)

    def has_input(self, shuffle_id: int, reduce_id: int) -> bool:
        return (shuffle_id, reduce_id) in self.inputs

    def read_shuffle(self, shuffle_id: int, reduce_id: int) -> Iterator:
        blocks = self.inputs.get((shuffle_id, reduce_id))
        if blocks is None:
            raise RuntimeError(f"task was not given the blocks of shuffle {shuffle_id} partition {reduce_id}; "
                               "this is a planner bug, please report it")
        return read_blocks(self.store, blocks, on_batch=self._count_read, fetched=self.fetched)

    def _count_read(self, n: int) -> None:
        self.records_read += n

    def merge_combiners(self, records: Iterable, aggregator, combined: bool) -> Iterator:
        return merge_combiners(records, aggregator, memory_budget=self.config.shuffle_memory,
                               scratch_dir=self.scratch_dir, combined=combined)

    def sort(self, records: Iterable, key: Callable, reverse: bool) -> Iterator:
        return sort_records(records, key=key, reverse=reverse, memory_budget=self.config.shuffle_memory,
                            scratch_dir=self.scratch_dir)


def store_for(url: str, storage_options: dict | None) -> BlockStore:
    """One BlockStore per (url, options) per process, so connections are reused."""
    key = (url, repr(sorted((storage_options or {}).items())))
    if key not in _stores:
        _stores[key] = BlockStore(url, dict(storage_options or {}))
    return _stores[key]


def _load_stage(task, env) -> StagePlan:
    cache = env.stage_cache
    if task.stage_key not in cache:
        if task.stage_blob is None:
            raise RuntimeError(f"executor {env.executor_id} lacks stage {task.stage_key}; the driver will resend it")
        files, store_url, storage_options, plan_blob = unpack_stage(task.stage_blob)
        if files:  # before the plan: it may refer to a module that was added with add_py_file
            fetch_added(files, store_for(store_url, storage_options), env.scratch_dir)
        cache[task.stage_key] = cloudpickle.loads(plan_blob)
        while len(cache) > _STAGE_CACHE_SIZE:
            cache.pop(next(iter(cache)))
    return cache[task.stage_key]


def _encode(plan: StagePlan, task, partition: int, store: BlockStore, value: Any) -> TaskValue:
    """An action's value, pickled once (cloudpickle), inline or through the store when large."""
    c = plan.config
    key = result_key(task.job_id, partition, task.attempt, c.shuffle_prefixes)
    # below the channel's frame limit whatever the setting, so a large value never fails the send
    direct = min(c.max_direct_result_size, DEFAULT_MAX_MESSAGE // 2)
    return encode_value(value, store, key, max_direct=direct, max_result_size=c.max_result_size)


def run_task(task, env) -> Any:
    """Run one task (a ``scheduler.wire.messages.RunTask``) on this executor.

    The task's store requests (and throttles) go to ``env.metrics`` whether it succeeds or
    fails, so the job's counts include failed attempts, as the store's bill does.
    """
    plan = _load_stage(task, env)
    store = store_for(plan.store_url, plan.config.storage_options).view()
    counting_inputs = input_get_hook.set(lambda nbytes: store.count_request("get", bytes_in=nbytes))
    updates: dict[int, Any] = {}
    collecting_updates = task_updates.set(updates)
    metrics: dict[str, Any] = {"records_read": 0}
    try:
        if not task.members:
            return _run_partition(plan, task, task.partition, task.task_blob, store, env, None, metrics)
        _arm_faults(plan, task, task.partition, store, env)  # the group's fetch counts as its first partition's
        fetched = fetch_segments(store, task.inputs.values())
        return GroupValues(tuple((partition, _run_partition(plan, task, partition, blob, store, env, fetched, metrics))
                                 for partition, blob in ((task.partition, task.task_blob), *task.members)))
    finally:
        input_get_hook.reset(counting_inputs)
        task_updates.reset(collecting_updates)
        if updates:
            metrics["accumulators"] = dict(updates)
        used = store.counts
        metrics["bytes_read"] = used.bytes_in
        metrics["store_requests"] = {k: v for k, v in used.as_dict().items() if v}
        env.metrics.update(metrics)


def _arm_faults(plan: StagePlan, task, partition: int, store: BlockStore, env) -> None:
    """Injected faults (tests only) for ``partition``: raised now, or armed on its store requests."""
    if plan.faults:
        apply_task_faults(plan.faults, plan.stage_index, plan.stage_name, partition, task.attempt,
                          getattr(env, "can_exit", False))
        store.before_request = store_fault_hook(plan.faults, plan.fault_dir, task.job_id, plan.stage_index,
                                                plan.stage_name, partition, task.attempt, store.protocol)


def _run_partition(plan: StagePlan, task, partition: int, task_blob: bytes, store: BlockStore, env,
                   fetched: dict | None, metrics: dict[str, Any]) -> Any:
    """One partition of ``task``: its map output's ``MapStatus``, or the action's encoded value."""
    if fetched is None or partition != task.partition:  # a group's first partition was armed for its fetch
        _arm_faults(plan, task, partition, store, env)
    split = pickle.loads(task_blob)
    tc = TaskContext(plan, partition, task.attempt, task.inputs, env.scratch_dir, store, fetched)
    try:
        if plan.kind == "count_lines":
            value = plan.rdd.count_lines(split)
            metrics["records_read"] += value
            return value
        if plan.kind == "result":
            return _encode(plan, task, partition, store, plan.func(tc, plan.rdd.iterator(split, tc)))
        dep = plan.dependency
        records = plan.rdd.iterator(split, tc)
        if dep.job_scope == "context":  # a persisted RDD: every record goes to its own partition
            records = ((None, x) for x in records)
            partition_of: Callable[[Any], int] = lambda _k: split.index  # noqa: E731
        else:
            partition_of = dep.partitioner
        status = write_map_output(store, records, job_id=plan.write_job_id, shuffle_id=dep.shuffle_id,
                                  map_id=partition, attempt=task.attempt,
                                  num_partitions=dep.partitioner.num_partitions, partition_of=partition_of,
                                  aggregator=dep.aggregator, codec=plan.config.shuffle_codec,
                                  prefixes=plan.config.shuffle_prefixes, memory_budget=plan.config.shuffle_memory,
                                  raw=dep.raw)
        metrics["records_written"] = metrics.get("records_written", 0) + status.records_written
        metrics["bytes_written"] = metrics.get("bytes_written", 0) + status.bytes_written
        return status
    finally:
        metrics["records_read"] += tc.records_read
