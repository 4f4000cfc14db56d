"""A result task's value on its way to the driver: serialized once, inline or through the store.

State: none; a ``TaskValue`` is a frozen record (its size, and its bytes or its store key).

Policy (Spark's ``DirectTaskResult``/``IndirectTaskResult`` and ``spark.driver.maxResultSize``):
the executor pickles an action's per-partition value once, with cloudpickle, so that what
PySpark returns comes back (an instance of a class defined inside a function, a lambda).
A long list (what ``collect`` returns) is pickled ``_SLICE`` items at a time, as PySpark's
batched serializer does: one pickle of a whole list keeps a memo entry per object, and with
471k (str, float) pairs that made it 3x slower than the slices.  Objects shared across two
slices come back as copies, as they do from PySpark.
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

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cloudpickle

from shuffle.store import BlockStore

__all__ = ["GroupValues", "ResultLoader", "ResultTooLarge", "TaskValue", "encode_value", "format_size"]

_SLICE = 4096  # list items per pickle: the pickler's memo stays in cache


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


class _Slices:
    """A list as the pickles of its slices: how a long list travels (see the module docstring)."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[bytes]):
        self.parts = parts

    def __reduce__(self) -> tuple:
        return _Slices, (self.parts,)

    def join(self) -> list:
        out: list = []
        for part in self.parts:
            out.extend(cloudpickle.loads(part))
        return out


def _dumps(value: Any) -> bytes:
    if type(value) is list and len(value) > _SLICE:
        value = _Slices([cloudpickle.dumps(value[i:i + _SLICE], protocol=5) for i in range(0, len(value), _SLICE)])
    return cloudpickle.dumps(value, protocol=5)


def _loads(blob: bytes) -> Any:
    value = cloudpickle.loads(blob)
    return value.join() if type(value) is _Slices else value


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
            return _loads(self.blob)
        if self.key is None:
            raise RuntimeError("this task's result was dropped for being over max_result_size")
        value = _loads(store.get(self.key))
        self.discard(store)
        return value

    def discard(self, store: BlockStore) -> None:
        if self.key is not None:
            store.delete(self.key)


class ResultLoader:
    """Loads result values on a thread of its own as their tasks commit, as Spark's task-result
    getter does, so that a job's last task is followed by its own value's load only, not every one.

    >>> loader = ResultLoader(store)
    >>> loader.submit(value)         # on commit, on the driver's loop: returns at once
    >>> loader.load(value)           # after the job: the value, loaded by now or here
    >>> loader.settle()              # at the job's end: loads under way finish, the rest are dropped
    """

    def __init__(self, store: BlockStore) -> None:
        self._store = store
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[int, tuple[TaskValue, Future]] = {}  # by id(): a blob's hash would read it

    def submit(self, value: TaskValue) -> None:
        if value.dropped:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="dagrun-results")
        try:
            future = self._pool.submit(value.load, self._store)
        except RuntimeError:  # the interpreter is shutting down: ``load`` loads it at the call
            return
        self._pending[id(value)] = (value, future)

    def load(self, value: TaskValue) -> Any:
        """``value.load(store)``, or what the thread loaded (its exception, if it raised)."""
        entry = self._pending.pop(id(value), None)  # an entry holds its value, so its id is not reused
        if entry is None:
            return value.load(self._store)
        return entry[1].result()

    def settle(self) -> None:
        """Drop the loads not begun and wait for those under way: nothing reads the store after."""
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.cancel():
                future.exception()  # waits; a failed load's value is nobody's now

    def close(self) -> None:
        self.settle()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def encode_value(value: Any, store: BlockStore, key: str, *, max_direct: int, max_result_size: int) -> TaskValue:
    """``value`` pickled once; through the store at ``key`` when over ``max_direct`` bytes."""
    blob = _dumps(value)
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
