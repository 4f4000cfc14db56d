"""PySpark's spellings of dagrun's API, generated from the snake_case names at import time.

State: none.  Policy: a PySpark name is the camelCase of dagrun's snake_case name
(``reduce_by_key`` -> ``reduceByKey``, ``num_partitions`` -> ``numPartitions``); the few
PySpark names that are not plain camelCase of dagrun's are in ``_RENAMED_KEYWORDS``.
Promise: the aliases are made from the public methods of the wrapped class when this module
is imported, so a method added to dagrun appears under its PySpark name with nothing
written by hand, and a method removed from dagrun disappears from both spellings.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any, Callable

# PySpark keywords whose snake_case is not dagrun's name for the same parameter.
_RENAMED_KEYWORDS = {"compression_codec_class": "compression", "check_code": "check_code"}


def camel(name: str) -> str:
    """>>> camel("map_partitions_with_index")
    'mapPartitionsWithIndex'"""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake(name: str) -> str:
    """>>> snake("numPartitions"), snake("use_unicode"), snake("f")
    ('num_partitions', 'use_unicode', 'f')"""
    out = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    return _RENAMED_KEYWORDS.get(out, out)


def public_methods(cls: type) -> list[str]:
    """The snake_case public methods of ``cls`` (properties excluded)."""
    names = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, (staticmethod, classmethod)) or inspect.isfunction(attr):
            names.append(name)
    return names


def generate(target: type, source: type, forward: Callable[[Any, str, tuple, dict], Any]) -> list[str]:
    """Give ``target`` a method per public method of ``source``, under both spellings.

    ``forward(self, name, args, kwargs)`` performs the call of ``source``'s ``name``.
    Names ``target`` defines itself (its own PySpark-specific versions) are kept.
    Returns the names added.
    """
    added = []
    for name in public_methods(source):
        original = getattr(source, name)
        for alias in dict.fromkeys((camel(name), name)):
            if alias in target.__dict__:
                continue
            setattr(target, alias, _forwarder(name, alias, original, forward))
            added.append(alias)
    return added


def _forwarder(name: str, alias: str, original: Callable, forward: Callable) -> Callable:
    def method(self, *args: Any, **kwargs: Any) -> Any:
        return forward(self, name, args, {snake(k): v for k, v in kwargs.items()})

    functools.update_wrapper(method, original)
    method.__name__ = method.__qualname__ = alias
    return method


def not_in_dagrun(what: str, instead: str) -> Callable:
    """A method PySpark has and a pure-Python engine cannot: raises saying what to use."""

    def method(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{what} needs Spark's JVM, which dagrun does not have; {instead}")

    method.__name__ = what.rpartition(".")[2]
    method.__doc__ = f"Not available in dagrun: {instead}"
    return method
