"""Right-sized reduce tasks: consecutive reduce partitions of a small shuffle run as one task.

State: none.  Pure arithmetic over the map statuses of complete shuffles.

Policy (docs/architecture.md, "Right-sized shuffles"; Spark's adaptive coalescing of
shuffle partitions, without changing the partition count):
- Only a stage the planner marked (``StageSpec.coalesce_bytes`` > 0: every shuffle it reads
  got its partition count by default, none the user fixed) is grouped.
- Partitions keep their identity: a group of partitions [a, b) is one task that computes
  each partition in turn, so ``glom``, ``mapPartitionsWithIndex``, output file names and the
  result order are what one task per partition gives.  What changes is the task count and,
  on an object store, the requests: one ranged GET per map object covers the whole group,
  so a shuffle of M maps read by G groups costs M x G GETs instead of M x R.
- Groups are runs of consecutive partitions of about the target's shuffle bytes each (a
  partition goes with the target-sized slice its middle byte falls in); a partition larger
  than the target is a group of its own.  The target is ``coalesce_bytes``, lowered so that
  the bytes spread over ``min_tasks`` groups when there are that many partitions (parallelism first on local executors, where requests are
  free; bytes first on Lambda, where each one is billed).

Promise: every partition of ``partitions`` is in exactly one group, groups are in order and
each is consecutive.
"""

from __future__ import annotations

import math
import operator
from typing import Iterable, Sequence

__all__ = ["group_partitions", "group_target", "reduce_bytes"]


def reduce_bytes(lengths_per_map: Iterable[Sequence[int]], num_partitions: int) -> list[int]:
    """Bytes each reduce partition reads: the column sums of the maps' segment lengths."""
    totals = [0] * num_partitions
    for lengths in lengths_per_map:
        totals = list(map(operator.add, totals, lengths))
    return totals


def group_target(total_bytes: int, coalesce_bytes: int, min_tasks: int, partitions: int) -> int:
    """The bytes a group may hold: ``coalesce_bytes``, or less so that ``min_tasks`` groups exist.

    >>> group_target(100 << 20, 256 << 20, 2, 8) == 50 << 20
    True
    """
    want = max(1, min(min_tasks, partitions))
    return max(1, min(coalesce_bytes, math.ceil(total_bytes / want)))


def group_partitions(partitions: Sequence[int], sizes: Sequence[int], target: int) -> list[tuple[int, ...]]:
    """Runs of consecutive ``partitions`` of about ``target`` bytes each (``sizes`` is indexed by
    partition): a partition joins the group its middle byte falls in, counting from the first
    partition, so ``total / target`` groups come out of ``total`` bytes, each within half a
    partition of the target, and a partition larger than the target is alone.

    >>> group_partitions([0, 1, 2, 3, 5], [10, 10, 30, 5, 0, 1], 20)
    [(0, 1), (2,), (3,), (5,)]
    """
    groups: list[tuple[int, ...]] = []
    run: list[int] = []
    before, run_index = 0, -1
    for p in partitions:
        size = sizes[p]
        index = int((before + size / 2) // target)
        if run and (p != run[-1] + 1 or index != run_index):
            groups.append(tuple(run))
            run = []
        run.append(p)
        run_index = index
        before += size
    if run:
        groups.append(tuple(run))
    return groups
