"""dagrun: Spark-style data jobs in Python, on local processes or AWS Lambda.

>>> import dagrun
>>> with dagrun.Context(executor="inline") as ctx:
...     ctx.parallelize(["a b", "b"]).flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(lambda a, b: a + b).collect()
[('a', 1), ('b', 2)]
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any


def _refuse_shadowed_packages() -> None:
    """Fail at once, naming the file, when a user's module stands in for one of dagrun's packages.

    dagrun ships four top-level packages; Python puts a script's folder first on ``sys.path``,
    so a ``scheduler.py`` or ``shuffle.py`` beside a user's script would be imported in their
    place and break dagrun later in a confusing way.
    """
    from importlib.util import find_spec

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("shuffle", "scheduler", "lambda_executor"):
        module = sys.modules.get(name)
        origin = getattr(module, "__file__", None) if module is not None else getattr(find_spec(name), "origin", None)
        if origin and os.path.dirname(os.path.dirname(os.path.abspath(origin))) != root:
            raise ImportError(f"{origin} shadows dagrun's own package {name!r}: Python imports it instead, because "
                              f"its folder comes first on sys.path. Rename that file (and remove the __pycache__ "
                              f"beside it), then run again.", name=name, path=origin)


_refuse_shadowed_packages()


# Names are imported on first use: an executor unpickling a stage imports ``dagrun`` too,
# and must not pay for the driver's side (the planner, the scheduler) at every start.
_EXPORTS = {
    "Context": "dagrun.api.context",
    "RDD": "dagrun.api.rdd",
    "Config": "dagrun.config",
    "JobFailed": "dagrun.errors",
    "JobAborted": "dagrun.errors",
    "FetchFailed": "dagrun.errors",
    "StatCounter": "dagrun.api.statcounter",
    "portable_hash": "dagrun.graph.partitioners",
    "key_prefix": "dagrun.runtime.prefix_sort",
    "AccumulatorParam": "dagrun.runtime.shared_vars",
}

# Modules under a short name: ``dagrun.files.get(name)`` is PySpark's ``SparkFiles.get(name)``.
_MODULES = {"files": "dagrun.runtime.user_files"}

__all__ = list(_EXPORTS) + list(_MODULES)

if TYPE_CHECKING:
    from dagrun.api.statcounter import StatCounter
    from dagrun.config import Config
    from dagrun.api.context import Context
    from dagrun.errors import FetchFailed, JobAborted, JobFailed
    from dagrun.api.rdd import RDD
    from dagrun.graph.partitioners import portable_hash
    from dagrun.runtime.prefix_sort import key_prefix
    from dagrun.runtime.shared_vars import AccumulatorParam


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("dagrun")  # the one place the version is written: pyproject.toml
    except metadata.PackageNotFoundError:  # a checkout on sys.path without an install
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read on first use: executors import dagrun and never ask
        globals()[name] = value = _version()
        return value
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'dagrun' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
