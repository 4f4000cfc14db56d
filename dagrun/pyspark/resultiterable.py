"""``ResultIterable``: the grouped values of ``groupByKey``, ``groupBy``, ``cogroup`` and
``groupWith`` in the PySpark API, as PySpark's own class is: iterable and sized, its list
in ``.data``, and not indexable (``list(values)`` makes one).

>>> values = ResultIterable([2, 3])
>>> len(values), list(values), values.data
(2, [2, 3], [2, 3])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class ResultIterable(Iterable):
    """A key's values, as PySpark gives them."""

    def __init__(self, data: list):
        self.data = data
        self.index = 0
        self.maxindex = len(data)

    def __iter__(self) -> Iterator:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def each_group(groups: tuple[list, ...]) -> tuple[ResultIterable, ...]:
    """cogroup's per-RDD lists of one key, as PySpark gives them."""
    return tuple(ResultIterable(group) for group in groups)
