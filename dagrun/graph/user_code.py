"""Ship the user's own modules with a job: pickled by value for executors that cannot import them.

State: the set of top-level module names already registered with cloudpickle's
``register_pickle_by_value`` (process-wide, as cloudpickle's own registry is), and the
directories where installed distributions live, computed once.

Policy: cloudpickle pickles a function it can import by reference (module + name), so a
task that calls ``mylib.parse`` fails on a Lambda function with ``ModuleNotFoundError:
No module named 'mylib'``.  Before a job's stages are pickled, every loaded module whose
file lies outside the interpreter's stdlib and site-packages (the script's own folder, a
package under development, an editable install) and that is not one of dagrun's own
packages (the function has those) is registered to be pickled by value.  Only executors
that do not share this machine's files need that: local and inline executors import from
the driver's own path, so for them nothing is registered and objects keep pickling by
reference (the same classes on both sides).  Modules from installed distributions are never
shipped: on Lambda they come from the deployment package (``dagrun lambda deploy
--requirements``).

Promise: ``ship_user_modules(executor)`` is cheap after its first call for a module set,
and returns the names it registered this time (for the job's log).
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from functools import lru_cache

import cloudpickle

# executors that share the driver's files import the user's modules themselves
_SHARED_FILES = {"inline", "local"}
_OWN = {"dagrun", "shuffle", "scheduler", "lambda_executor"}
_registered: set[str] = set()
_checked: dict[str, bool] = {}


def ship_user_modules(executor: str) -> list[str]:
    """Register the user's importable-only-here modules to be pickled by value; see the module docstring."""
    if executor in _SHARED_FILES:
        return []
    shipped = []
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if top in _registered or top in _OWN or name != top or module is None:
            continue
        if top not in _checked:
            _checked[top] = _is_users(module)
        if _checked[top]:
            try:
                cloudpickle.register_pickle_by_value(module)
            except ValueError:  # not importable by its name (a module made at run time)
                _checked[top] = False
                continue
            _registered.add(top)
            shipped.append(top)
    return shipped


def _is_users(module) -> bool:
    path = getattr(module, "__file__", None)
    if not path or getattr(module, "__name__", "") == "__main__":  # __main__ goes by value already
        return False
    path = os.path.realpath(path)
    return not any(path.startswith(root) for root in _installed_roots())


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    paths = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    paths.add(site.getusersitepackages() if hasattr(site, "getusersitepackages") else None)
    paths.update({sys.base_prefix, sys.base_exec_prefix})
    return tuple(os.path.realpath(p) + os.sep for p in paths if p)
