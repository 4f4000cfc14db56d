"""Shared variables, as in PySpark: broadcast values and accumulators.

An accumulator is added to inside tasks and read in the driver.  A task gets a copy of the
accumulator with its closure; what the task adds goes to that task's own updates (a context
variable set by ``dagrun.runtime.task.run_task``), which travel back in the task's metrics.  The
driver applies the updates of committed attempts only, once the job ends, so a retried,
speculative or discarded attempt never counts twice; a map task recomputed after a lost
block counts again, as in Spark.

>>> with dagrun.Context(executor="inline") as ctx:                 # doctest: +SKIP
...     a = ctx.accumulator(0)
...     ctx.parallelize([1, 2, 3]).foreach(lambda x: a.add(x))
...     a.value
6
"""

from __future__ import annotations

import itertools
from contextvars import ContextVar
from typing import Any

# The running task's updates: accumulator id -> partial value.  None outside tasks.
task_updates: ContextVar[dict[int, Any] | None] = ContextVar("task_updates", default=None)
_ids = itertools.count(1)


class AccumulatorParam:
    """How to add values of one type: a zero and an in-place add (PySpark's interface)."""

    def zero(self, value: Any) -> Any:
        raise NotImplementedError

    def add_in_place(self, value1: Any, value2: Any) -> Any:
        legacy = getattr(type(self), "addInPlace", None)  # a param written for PySpark
        if legacy is not None:
            return legacy(self, value1, value2)
        raise NotImplementedError(f"{type(self).__name__} must define add_in_place(value1, value2)")


class AddingAccumulatorParam(AccumulatorParam):
    def __init__(self, zero_value: Any):
        self.zero_value = zero_value

    def zero(self, value: Any) -> Any:
        return self.zero_value

    def add_in_place(self, value1: Any, value2: Any) -> Any:
        value1 += value2
        return value1


INT_ACCUMULATOR_PARAM = AddingAccumulatorParam(0)
FLOAT_ACCUMULATOR_PARAM = AddingAccumulatorParam(0.0)
COMPLEX_ACCUMULATOR_PARAM = AddingAccumulatorParam(0.0j)


def _in_task(aid: int, zero: Any, param: AccumulatorParam) -> "Accumulator":
    accumulator = Accumulator.__new__(Accumulator)
    accumulator.aid, accumulator._value, accumulator.accum_param = aid, zero, param
    accumulator._in_driver = False
    return accumulator


class Accumulator:
    """A value tasks can only add to; the driver reads it with ``.value``."""

    def __init__(self, aid: int, value: Any, accum_param: AccumulatorParam):
        self.aid, self._value, self.accum_param = aid, value, accum_param
        self._in_driver = True

    def __reduce__(self) -> tuple:
        return _in_task, (self.aid, self.accum_param.zero(self._value), self.accum_param)

    @property
    def value(self) -> Any:
        if not self._in_driver:
            raise RuntimeError("Accumulator.value cannot be accessed inside tasks; read it in the driver")
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        if not self._in_driver:
            raise RuntimeError("Accumulator.value cannot be set inside tasks; use add()")
        self._value = value

    def add(self, term: Any) -> None:
        updates = task_updates.get()
        if self._in_driver or updates is None:
            self._value = self.accum_param.add_in_place(self._value, term)
            return
        current = updates.get(self.aid)
        if current is None:
            current = self.accum_param.zero(self._value)
        updates[self.aid] = self.accum_param.add_in_place(current, term)

    def __iadd__(self, term: Any) -> "Accumulator":
        self.add(term)
        return self

    def merge(self, update: Any) -> None:
        """Apply a task's partial value (driver side)."""
        self._value = self.accum_param.add_in_place(self._value, update)

    def __str__(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return f"Accumulator<id={self.aid}, value={self._value}>"


def new_accumulator(value: Any, accum_param: AccumulatorParam | None = None) -> Accumulator:
    if accum_param is None:
        if isinstance(value, bool) or not isinstance(value, (int, float, complex)):
            raise TypeError(f"No default accumulator param for type {type(value)}")
        accum_param = {int: INT_ACCUMULATOR_PARAM, float: FLOAT_ACCUMULATOR_PARAM}.get(
            type(value), COMPLEX_ACCUMULATOR_PARAM)
    return Accumulator(next(_ids), value, accum_param)


class Broadcast:
    """A read-only value shipped to the tasks that use it (with their closures)."""

    def __init__(self, value: Any):
        self._value, self._destroyed = value, False

    @property
    def value(self) -> Any:
        if self._destroyed:
            raise RuntimeError("this Broadcast was destroyed; it can no longer be used")
        return self._value

    def unpersist(self, blocking: bool = False) -> None:
        """Nothing is kept on executors between stages, so there is nothing to drop."""

    def destroy(self, blocking: bool = False) -> None:
        self._destroyed = True
        self._value = None
