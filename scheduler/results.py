"""A result task's value on its way to the driver: serialized once, inline or through the store.

State: none; a ``TaskValue`` is a frozen record (its size, and its bytes or its store key).

Policy (Spark's ``DirectTaskResult``/``IndirectTaskResult`` and ``spark.driver.maxResultSize``):
the executor pickles an action's per-partition value once, with cloudpickle, so that what
PySpark returns comes back (an instance of a class defined inside a function, a lambda).
Up to ``max_direct`` bytes travel inside the task's result message; a larger value is
written to the store at ``layout.result_key`` and only its key travels.  A value that alone
exceeds ``max_result_size`` is neither sent nor stored: its size is reported and the driver
fails the job.  The driver adds up the sizes of a job's committed results and fails the
job with ``ResultTooLarge`` once the total passes ``max_result_size`` (0: no limit).

Promise: ``load`` returns an equal value; a stored value's object is deleted once loaded
(or by ``discard``), and what a crashed driver leaves is a result key ``dagrun store gc``
recognises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cloudpickle

from shuffle.store import BlockStore

__all__ = ["GroupValues", "ResultTooLarge", "TaskValue", "encode_value", "format_size"]


def format_size(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


@dataclass(frozen=True)
class GroupValues:
    """What a task that computed several consecutive partitions returns: (partition, value) for
    each, in order; a value is what a one-partition task returns (``scheduler.core.coalesce``)."""

    values: tuple[tuple[int, Any], ...]


@dataclass(frozen=True)
class TaskValue:
    """One task's serialized value: ``blob`` inline, or ``key`` in the store, or neither (too large)."""

    size: int
    blob: bytes | None = None
    key: str | None = None

    @property
    def dropped(self) -> bool:
        return self.blob is None and self.key is None

    def load(self, store: BlockStore) -> Any:
        if self.blob is not None:
            return cloudpickle.loads(self.blob)
        if self.key is None:
            raise RuntimeError("this task's result was dropped for being over max_result_size")
        value = cloudpickle.loads(store.get(self.key))
        self.discard(store)
        return value

    def discard(self, store: BlockStore) -> None:
        if self.key is not None:
            store.delete(self.key)


def encode_value(value: Any, store: BlockStore, key: str, *, max_direct: int, max_result_size: int) -> TaskValue:
    """``value`` pickled once; through the store at ``key`` when over ``max_direct`` bytes."""
    blob = cloudpickle.dumps(value, protocol=5)
    size = len(blob)
    if max_result_size and size > max_result_size:
        return TaskValue(size)
    if size <= max_direct:
        return TaskValue(size, blob=blob)
    store.put(key, blob)
    return TaskValue(size, key=key)


class ResultTooLarge(RuntimeError):
    """The serialized results of a job's tasks add up to more than ``max_result_size``."""

    def __init__(self, job_id: str, tasks: int, total: int, limit: int):
        super().__init__(job_id, tasks, total, limit)
        self.job_id, self.tasks, self.total, self.limit = job_id, tasks, total, limit

    def __str__(self) -> str:
        return (f"job {self.job_id} aborted: the serialized results of {self.tasks} tasks "
                f"({format_size(self.total)}) are bigger than max_result_size ({format_size(self.limit)}). "
                "Bring less to the driver (take, sample, an aggregation, or save_as_text_file), or raise "
                "the max_result_size setting (0: unlimited).")
