"""Executor backends, chosen by name and imported lazily.

A backend has one small shape (``ExecutorBackend``): it launches executors by id, kills
one, says how many it can run, and reports what happens to them through ``notify``.  The
driver loop never branches on which backend it has.

The registry holds dotted paths so that ``import dagrun`` never imports boto3; an
ImportError names the extra to install.  Registering a taken name with another target
raises unless ``clobber=True`` (fsspec's ``register_implementation`` rule).

Example:
    >>> get_backend_class("local").__name__
    'LocalBackend'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

known_backends: dict[str, dict[str, str]] = {
    "inline": {"class": "scheduler.backends.inline:InlineBackend"},
    # start_with_context: the Context starts the driver, and so the backend, as it is created
    "local": {"class": "scheduler.backends.local:LocalBackend", "start_with_context": "yes"},
    "lambda": {"class": "lambda_executor.backend:LambdaBackend",
               "err": "the lambda backend needs boto3: pip install 'dagrun[aws]'"},
}


@dataclass(frozen=True)
class ExecutorSettings:
    """What a backend needs to start executors that reach this driver."""

    address: tuple[str, int]
    secret: bytes
    executor_timeout: float
    heartbeat_interval: float
    scratch_dir: str | None
    memory_mb: int
    options: dict
    # modules an executor imports before it registers (the task runtime); a name ending in "?" is
    # optional: imported only while a started executor waits for work, skipped when missing
    preload: tuple[str, ...] = ()


class Notify(Protocol):
    def __call__(self, event: tuple) -> None: ...


class ExecutorBackend(Protocol):
    """Launch executors, stop them, and say how many can run."""

    name: str

    def start(self, settings: ExecutorSettings, notify: Notify) -> None: ...

    def launch(self, executor_ids: Sequence[str]) -> None:
        """Start executors asynchronously; each later connects to the driver and registers.

        Reports ``("exited", id, reason)`` when one ends, ``("throttled", source)`` when the
        service refused a launch, ``("attach", id, connection)`` for in-process executors,
        ``("report", id, dict)`` with what it learned of one (merged into the driver's
        ``executor_log``, e.g. Lambda's billed milliseconds), and ``("failed", exception)``
        when no launch can succeed (e.g. the function does not exist): the job fails with it.
        """

    def kill(self, executor_id: str) -> None: ...

    def capacity(self) -> int: ...

    def close(self) -> None: ...


def register_backend(name: str, target: str, clobber: bool = False, err: str | None = None) -> None:
    """Register ``"module:Class"`` under ``name``."""
    current = known_backends.get(name)
    if current and current["class"] != target and not clobber:
        raise ValueError(f"executor backend {name!r} is already registered as {current['class']!r}; "
                         "pass clobber=True to replace it")
    known_backends[name] = {"class": target, **({"err": err} if err else {})}


def starts_with_context(name: str) -> bool:
    """Whether a Context on ``name`` starts its driver at once (known without importing the backend)."""
    return known_backends.get(name, {}).get("start_with_context") == "yes"


def get_backend_class(name: str) -> Callable[..., ExecutorBackend]:
    if name not in known_backends:
        raise ValueError(f"unknown executor backend {name!r}; choose one of {', '.join(sorted(known_backends))}")
    entry = known_backends[name]
    module, _, cls = entry["class"].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise ImportError(entry.get("err", f"cannot import executor backend {name!r}: {exc}")) from exc
