"""dagrun: Spark-style data jobs in Python, on local processes or AWS Lambda.

>>> import dagrun
>>> with dagrun.Context(executor="inline") as ctx:
...     ctx.parallelize(["a b", "b"]).flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(lambda a, b: a + b).collect()
[('a', 1), ('b', 2)]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Names are imported on first use: an executor unpickling a stage imports ``dagrun`` too,
# and must not pay for the driver's side (networkx, the scheduler) at every start.
_EXPORTS = {
    "Context": ".context",
    "RDD": ".lineage",
    "Config": ".config",
    "JobFailed": ".errors",
    "JobAborted": ".errors",
    "FetchFailed": ".errors",
    "StatCounter": ".actions",
    "portable_hash": ".partitioners",
    "key_prefix": ".prefix_sort",
    "AccumulatorParam": ".shared_vars",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:
    from .actions import StatCounter
    from .config import Config
    from .context import Context
    from .errors import FetchFailed, JobAborted, JobFailed
    from .lineage import RDD
    from .partitioners import portable_hash
    from .prefix_sort import key_prefix
    from .shared_vars import AccumulatorParam


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'dagrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
