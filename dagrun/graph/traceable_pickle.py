"""Stages pickled with cloudpickle, keeping the file name of every function's code.

State: none.  Policy: cloudpickle (3.x) writes ``<dynamic-code>`` as the file name of the
code it pickles by value, so that payloads are the same wherever a function was defined; a
task's traceback then points at ``<dynamic-code>``, and shows no line of source.  PySpark's
own copy of cloudpickle keeps the name, so its tracebacks show the user's file and line.
Here a code object travels with its ``co_filename``, and an executor that has the file (a
local executor, or the same path on another machine) shows the source line too.

Promise: ``dumps`` pickles what ``cloudpickle.dumps`` pickles, and loads with ``pickle.loads``.
"""

from __future__ import annotations

import io
import types
from collections import ChainMap
from typing import Any

import cloudpickle
from cloudpickle import cloudpickle as _cloudpickle


_CLOUDPICKLE_CODE_REDUCE = getattr(_cloudpickle, "_code_reduce", None)  # private: absent, names are lost


def _code_reduce(code: types.CodeType) -> tuple[Any, tuple[Any, ...]]:
    rebuild, args = _CLOUDPICKLE_CODE_REDUCE(code)
    if rebuild is not types.CodeType:  # a cloudpickle that rebuilds code another way: leave it be
        return rebuild, args
    return named_code, (args, code.co_filename)


def named_code(args: tuple[Any, ...], filename: str) -> types.CodeType:
    """A code object rebuilt from cloudpickle's arguments, with its file name."""
    return types.CodeType(*args).replace(co_filename=filename)


class _Pickler(cloudpickle.Pickler):
    dispatch_table = (ChainMap({types.CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table)
                      if _CLOUDPICKLE_CODE_REDUCE is not None else cloudpickle.Pickler.dispatch_table)


def dumps(obj: Any, protocol: int = 5) -> bytes:
    """``cloudpickle.dumps(obj)``, with the code objects' file names kept."""
    with io.BytesIO() as f:
        _Pickler(f, protocol=protocol).dump(obj)
        return f.getvalue()
