"""Resolved configuration: one frozen, typed ``Config`` per Context.

Policy: precedence is defaults < ``dagrun.toml`` (or the file named by ``DAGRUN_CONFIG``)
< environment ``DAGRUN_*`` < ``Context(conf=...)`` and keyword arguments.  Keys are written
``dagrun.split_size`` or ``split_size``; dotted groups such as ``ramp.initial`` map to the
field ``ramp_initial``.  The result is resolved once and ships with every task, so a task
never reads the environment or a file to learn its settings.

Example:
    >>> Config.resolve({"dagrun.max_attempts": "2"}).max_attempts
    2
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1 << 20, "mb": 10**6,
    "mib": 1 << 20, "g": 1 << 30, "gb": 10**9, "gib": 1 << 30, "t": 1 << 40, "tb": 10**12, "tib": 1 << 40,
}
_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_bytes(value: str | int | float) -> int:
    """``"128MiB"`` -> 134217728; plain numbers are bytes."""
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", value)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"cannot read {value!r} as a size; write e.g. 134217728, '128MiB' or '1GB'")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_seconds(value: str | int | float) -> float:
    """``"3s"`` -> 3.0, ``"24h"`` -> 86400.0; plain numbers are seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", value)
    if not match or match.group(2).lower() not in _DURATION_UNITS:
        raise ValueError(f"cannot read {value!r} as a duration; write e.g. 30, '30s', '5m' or '24h'")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class Config:
    """Every setting of a dagrun job.  Build it with :meth:`Config.resolve`."""

    executor: str = "local"
    store: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)  # may hold credentials
    max_executors: int = 0  # 0: os.cpu_count() for local executors
    default_parallelism: int = 0  # 0: derived from max_executors
    split_size: int = 128 << 20
    executor_timeout: float = 900.0
    executor_memory: int = 2 << 30
    retire_margin: float = 5.0
    idle_timeout: float = 60.0
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 30.0
    task_timeout: float = 600.0  # seconds one attempt may run before it is a task error; 0: no limit
    ramp_initial: float = 4.0
    ramp_slope: float = 4.0
    max_attempts: int = 4
    speculation: bool = True
    speculation_quantile: float = 0.75
    speculation_multiplier: float = 1.5
    shuffle_prefixes: int = 16
    shuffle_codec: str | None = None
    shuffle_memory: int = 256 << 20
    keep_shuffle: bool = False
    progress: str = "auto"  # auto | on | off
    ledger: str = "auto"  # auto | on | off: the one-line cost ledger on stderr when a job ends
    job_history: int = 20  # finished jobs kept as JSON under $DAGRUN_HOME/jobs for `dagrun report`; 0: none
    scratch_dir: str | None = None
    faults: tuple = ()
    lambda_function: str = "dagrun-executor"
    lambda_memory_mb: int = 2048
    lambda_region: str | None = None
    lambda_arch: str = "x86_64"
    driver_host: str = "127.0.0.1"
    # how Lambda executors get tasks: "invoke" (in each invocation's payload: the driver needs no
    # inbound network), "connect" (each invocation connects back to driver_host: the driver must be
    # reachable, e.g. in the function's VPC), or "auto": connect when driver_host is set, else invoke
    lambda_transport: str = "auto"
    prices: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def resolve(cls, conf: Mapping[str, Any] | None = None, **kwargs: Any) -> "Config":
        """Merge defaults, config file, ``DAGRUN_*`` environment, ``conf`` and ``kwargs``."""
        merged: dict[str, Any] = {}
        merged.update(_from_file())
        merged.update(_from_environment())
        merged.update({_field_name(k): v for k, v in (conf or {}).items()})
        merged.update({k: v for k, v in kwargs.items() if v is not None})
        return cls(**{name: _coerce(name, value) for name, value in merged.items()})

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})

    @property
    def executors(self) -> int:
        return self.max_executors or os.cpu_count() or 1

    @property
    def parallelism(self) -> int:
        if self.default_parallelism:
            return self.default_parallelism
        return 1 if self.executor == "inline" and not self.max_executors else self.executors


_FIELDS = {f.name: f for f in fields(Config)}


def _field_name(key: str) -> str:
    name = key.removeprefix("dagrun.").replace(".", "_").replace("-", "_").lower()
    if name not in _FIELDS:
        close = [f for f in _FIELDS if f.startswith(name.split("_")[0])]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown dagrun setting {key!r}{hint}")
    return name


def _coerce(name: str, value: Any) -> Any:
    if name not in _FIELDS:
        raise ValueError(f"unknown dagrun setting {name!r}")
    default = _FIELDS[name].default
    if name in ("split_size", "executor_memory", "shuffle_memory"):
        return parse_bytes(value)
    if name in ("executor_timeout", "retire_margin", "idle_timeout", "heartbeat_interval", "heartbeat_timeout",
                "task_timeout"):
        return parse_seconds(value)
    if name == "faults":
        return _coerce_faults(value)
    if name in ("storage_options", "prices") and isinstance(value, str):  # DAGRUN_STORAGE_OPTIONS='{...}'
        import json

        return json.loads(value) if value.strip() else {}
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, int) and not isinstance(value, int):
        return int(value)
    if isinstance(default, float) and not isinstance(value, float):
        return float(value)
    return value


def _coerce_faults(value: Any) -> tuple:
    import json

    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    if isinstance(value, Mapping):
        value = [value]
    return tuple(dict(rule) for rule in value)


def _from_file() -> dict[str, Any]:
    path = os.environ.get("DAGRUN_CONFIG") or ("dagrun.toml" if os.path.exists("dagrun.toml") else None)
    if not path:
        return {}
    with open(path, "rb") as f:
        data = tomllib.load(f)
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping) and key not in ("storage_options", "prices"):
                walk(f"{prefix}{key}.", value)
            else:
                flat[_field_name(prefix + key)] = value

    walk("", data.get("dagrun", data))
    return flat


def _from_environment() -> dict[str, Any]:
    out = {}
    for key, value in os.environ.items():
        if key.startswith("DAGRUN_") and key != "DAGRUN_CONFIG":
            name = key.removeprefix("DAGRUN_").lower()
            if name in _FIELDS:
                out[name] = value
    return out
