"""Deterministic fault injection, configured by ``conf={"dagrun.faults": [...]}``.

Each rule is a dict with a ``kind`` and a selector.  Task faults fire in the executor, on
the given attempt only (default 0, so the retry succeeds); block faults fire in the driver
right after the selected map output commits; store and launch faults share their counts
through marker files, so every process draws from one budget (STYLE item 12).

Kinds:
- ``fail``: the task raises ``InjectedFault``.
- ``kill``: the executor running the task dies at once (exit 137, like an OOM kill).
- ``delay``: the task sleeps ``seconds`` first (a straggler).
- ``delete_block`` / ``corrupt_block``: the committed map output is deleted, or bytes in
  its middle are flipped, before any reducer reads it.
- ``store_503``: the next ``count`` store requests of the job fail with 503 SlowDown.
- ``throttle_launch``: the next ``count`` executor launches are refused as throttled.

Selector: ``stage`` is the stage's position in the job (0-based, in dependency order) or a
substring of its name ("reduce_by_key"); ``partition`` is the task's partition (the map
partition for block faults); a missing field matches anything.

Example:
    >>> rules = parse_faults([{"kind": "fail", "stage": 0, "partition": 2}])
    >>> rules[0].matches(0, "map for shuffle 0", 2, 0), rules[0].matches(0, "x", 2, 1)
    (True, False)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields
from typing import Any, Iterable, Literal

Kind = Literal["fail", "kill", "delay", "delete_block", "corrupt_block", "store_503", "throttle_launch"]
_KINDS = ("fail", "kill", "delay", "delete_block", "corrupt_block", "store_503", "throttle_launch")


class InjectedFault(RuntimeError):
    """The failure a ``fail`` rule asked for."""


class SimulatedCrash(BaseException):
    """Raised where an executor cannot really die (the inline backend): the loop drops out."""


@dataclass(frozen=True)
class Fault:
    kind: Kind
    stage: int | str | None = None
    partition: int | None = None
    attempt: int | None = 0
    seconds: float = 0.0
    count: int = 1

    def matches(self, stage_index: int, stage_name: str, partition: int, attempt: int) -> bool:
        if self.attempt is not None and attempt != self.attempt:
            return False
        if self.partition is not None and partition != self.partition:
            return False
        if isinstance(self.stage, int):
            return stage_index == self.stage
        if isinstance(self.stage, str):
            return self.stage in stage_name
        return True


def parse_faults(rules: Iterable[dict[str, Any]]) -> tuple[Fault, ...]:
    known = {f.name for f in fields(Fault)}
    out = []
    for rule in rules:
        if rule.get("kind") not in _KINDS:
            raise ValueError(f"fault rule {rule!r} needs a kind, one of {', '.join(_KINDS)}")
        unknown = set(rule) - known
        if unknown:
            raise ValueError(f"fault rule {rule!r} has unknown fields {sorted(unknown)}; known: {sorted(known)}")
        out.append(Fault(**rule))
    return tuple(out)


def apply_task_faults(faults: tuple[Fault, ...], stage_index: int, stage_name: str, partition: int,
                      attempt: int, can_exit: bool) -> None:
    """Fire the executor-side rules that select this task attempt."""
    for fault in faults:
        if fault.kind not in ("fail", "kill", "delay") or not fault.matches(stage_index, stage_name, partition, attempt):
            continue
        if fault.kind == "delay":
            time.sleep(fault.seconds)
        elif fault.kind == "fail":
            raise InjectedFault(f"injected failure of partition {partition} attempt {attempt} of {stage_name}")
        elif can_exit:
            os._exit(137)
        else:
            raise SimulatedCrash(f"injected executor crash at partition {partition} of {stage_name}")


class SharedBudget:
    """A count shared by every process on this machine: one marker file per token spent."""

    def __init__(self, directory: str, name: str, count: int):
        self.directory, self.name, self.count = directory, name, count

    def take(self) -> bool:
        for i in range(self.count):
            try:
                fd = os.open(os.path.join(self.directory, f"{self.name}-{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.close(fd)
            return True
        return False


def damage_block(store: Any, status: Any, kind: str) -> None:
    """Delete a committed map output, or flip bytes inside its first non-empty segment."""
    if kind == "delete_block":
        store.delete(status.key)
        return
    data = bytearray(store.get(status.key))
    segment = next((s for s in status.segments if s.length), None)
    if segment is None:
        return
    middle = segment.offset + segment.length // 2
    data[middle] ^= 0xFF
    store.put(status.key, bytes(data))
