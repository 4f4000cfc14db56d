"""Deterministic fault injection, configured by ``conf={"dagrun.faults": [...]}``.

Each rule is a dict with a ``kind`` and a selector.  Task faults fire in the executor, on
the given attempt only (default 0, so the retry succeeds); block faults fire in the driver
right after the selected map output commits; store and launch faults share their counts
through marker files, so every process draws from one budget.

Kinds:
- ``fail``: the task raises ``InjectedFault``.
- ``kill``: the executor running the task dies at once (exit 137, like an OOM kill).
- ``delay``: the task sleeps ``seconds`` first (a straggler).
- ``delete_block`` / ``corrupt_block``: the committed map output is deleted, or bytes in
  its middle are flipped, before any reducer reads it.
- ``store_503``: the next ``count`` shuffle-store requests of the job's selected tasks
  fail with 503 SlowDown: the block store's retry layer sees the very error the store's
  client raises for a real 503 (s3fs: ``OSError(EBUSY)`` caused by botocore's
  ``ClientError``), backs off, retries and counts a throttle.  The count is shared by
  every executor process through marker files in the Context's fault directory.
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
from typing import Any, Callable, Iterable, Literal

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
        self._spent = False  # once every token is gone it stays gone: skip the file probes

    def take(self) -> bool:
        if self._spent:
            return False
        for i in range(self.count):
            try:
                fd = os.open(os.path.join(self.directory, f"{self.name}-{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.close(fd)
            return True
        self._spent = True
        return False


_S3_OPERATIONS = {"get": "GetObject", "put": "PutObject", "head": "HeadObject", "list": "ListObjectsV2",
                  "delete": "DeleteObjects"}


def store_throttle_error(protocol: str, kind: str) -> OSError:
    """The exception this store's client raises when the store answers ``503 SlowDown``."""
    if protocol in ("s3", "s3a"):
        from botocore.exceptions import ClientError
        from s3fs.errors import translate_boto_error

        response = {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                    "ResponseMetadata": {"HTTPStatusCode": 503, "RequestId": "dagrun-injected-fault"}}
        return translate_boto_error(ClientError(response, _S3_OPERATIONS.get(kind, kind)))
    from shuffle.errors import StoreThrottled

    return StoreThrottled(f"injected 503 SlowDown on a {kind} request")


def store_fault_hook(faults: tuple[Fault, ...], fault_dir: str | None, job_id: str, stage_index: int,
                     stage_name: str, partition: int, attempt: int,
                     protocol: str) -> Callable[[str], None] | None:
    """A ``BlockStore.before_request`` hook that throttles this task's requests while the
    ``store_503`` rules selecting it have budget left; ``None`` when no rule selects it."""
    budgets = [SharedBudget(fault_dir, f"store_503-{job_id}-{i}", f.count) for i, f in enumerate(faults)
               if f.kind == "store_503" and f.matches(stage_index, stage_name, partition, attempt)]
    if not budgets or fault_dir is None:
        return None

    def before_request(kind: str) -> None:
        if any(b.take() for b in budgets):
            raise store_throttle_error(protocol, kind)

    return before_request


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


def launch_budget(faults: tuple, fault_dir: str | None) -> Callable[[], bool] | None:
    """The ``throttle_launch`` rules as one budget every executor launch takes from, or ``None``."""
    rules = [f for f in faults if f.kind == "throttle_launch"]
    if not rules:
        return None
    return SharedBudget(fault_dir, "launch", sum(f.count for f in rules)).take
