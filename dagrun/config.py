"""Resolved configuration: one frozen, typed ``Config`` per Context.

Policy: precedence is defaults < the user's ``$DAGRUN_HOME/config.toml`` < ``./dagrun.toml``
(or the file named by ``DAGRUN_CONFIG``) < environment ``DAGRUN_*`` < ``Context(conf=...)`` and
keyword arguments.  Keys are written
``dagrun.split_size`` or ``split_size``; dotted groups such as ``ramp.initial`` map to the
field ``ramp_initial``.  The result is resolved once and ships with every task, so a task
never reads the environment or a file to learn its settings.

Promise: every value is checked by type and range when the Config is made (so when a
Context is made), and every error names the setting, where the value came from and what it
accepts; an unknown key, keyword or ``DAGRUN_*`` variable is refused with the closest names
first.  ``settings_table()`` is the README's table of settings (``python -m dagrun.config``).

Example:
    >>> Config.resolve({"dagrun.max_attempts": "2"}).max_attempts
    2
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

# Bare K/M/G/T are binary, as in Spark's size settings ("1g" is 1 GiB); KB/MB/GB/TB are decimal.
_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1 << 20, "mb": 10**6,
    "mib": 1 << 20, "g": 1 << 30, "gb": 10**9, "gib": 1 << 30, "t": 1 << 40, "tb": 10**12, "tib": 1 << 40,
}
_SHORTHAND = frozenset({"k", "m", "g", "t"})
_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"\s*(\d+\.?\d*|\.\d+)\s*([a-zA-Z]*)\s*"
_TRUE, _FALSE = frozenset({"true", "yes", "on", "1"}), frozenset({"false", "no", "off", "0"})
# DAGRUN_* variables that are not settings: where files live, and what drivers hand executors.
NOT_SETTINGS = frozenset({"DAGRUN_CONFIG", "DAGRUN_HOME", "DAGRUN_SECRET", "DAGRUN_BENCH_DATA"})


def parse_bytes(value: str | int | float, *, shorthand: bool = True) -> int:
    """The one size parser: ``"128MiB"`` -> 134217728, ``"1g"`` -> 1 GiB; plain numbers are bytes.

    KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB and (unless ``shorthand=False``) bare
    K/M/G/T powers of 1024.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"cannot read {value!r} as a size; write e.g. 134217728, '64KiB', '128MiB' or '1GB'")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value) or value != int(value):
            raise ValueError(f"a size must be a whole number of bytes >= 0, got {value!r}")
        return int(value)
    match = re.fullmatch(_NUMBER, value)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS or (not shorthand and unit in _SHORTHAND):
        raise ValueError(f"cannot read {value!r} as a size; write a number of bytes with an optional unit: "
                         "KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024), e.g. '64MB'")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_seconds(value: str | int | float) -> float:
    """The one duration parser: ``"3s"`` -> 3.0, ``"24h"`` -> 86400.0; plain numbers are seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"cannot read {value!r} as a duration; write e.g. 30, '30s', '5m' or '24h'")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"a duration must be a finite number of seconds >= 0, got {value!r}")
        return float(value)
    match = re.fullmatch(_NUMBER, value)
    if not match or match.group(2).lower() not in _DURATION_UNITS:
        raise ValueError(f"cannot read {value!r} as a duration; write e.g. 30, '30s', '500ms', '5m' or '24h'")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_bool(value: Any) -> bool:
    """``True``/``False`` or the words true/false (also yes/no, on/off, 1/0); nothing else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"cannot read {value!r} as a boolean; write true or false")


def dagrun_home() -> str:
    """``$DAGRUN_HOME``, by default ``~/.dagrun``: the user's config file and job history."""
    return os.environ.get("DAGRUN_HOME") or os.path.join(os.path.expanduser("~"), ".dagrun")


@dataclass(frozen=True)
class Config:
    """Every setting of a dagrun job.  Build it with :meth:`Config.resolve`; each is described in ``_SPEC``."""

    executor: str = "local"
    store: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)  # may hold credentials
    max_executors: int = 0  # 0: os.cpu_count() for local executors
    default_parallelism: int = 0  # 0: derived from max_executors
    split_size: int = 0  # 0: the file system's block size (dagrun.runtime.inputs.block_size)
    executor_timeout: float = 900.0
    executor_memory: int = 2 << 30
    retire_margin: float = 5.0
    idle_timeout: float = 60.0  # LAMBDA_IDLE_TIMEOUT when the executors are Lambda's
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 30.0
    task_timeout: float = 600.0  # seconds one attempt may run before it is a task error; 0: no limit
    ramp_initial: float = 100.0  # launches per second at first; these three chosen by simulation
    ramp_slope: float = 100.0  # (docs/architecture.md, "The cloud in virtual time")
    max_attempts: int = 4
    speculation: bool = True
    speculation_quantile: float = 0.75
    speculation_multiplier: float = 1.5
    shuffle_prefixes: int = 16  # LAMBDA_SHUFFLE_PREFIXES when the executors are Lambda's
    shuffle_codec: str | None = None
    shuffle_memory: int = 256 << 20
    reduce_task_bytes: int = 256 << 20  # docs/architecture.md, "Right-sized shuffles"; 0: a task per partition
    keep_shuffle: bool = False
    max_result_size: int = 1 << 30  # spark.driver.maxResultSize; 0: unlimited
    max_direct_result_size: int = 16 << 20  # larger task results travel through the store
    progress: str = "auto"  # auto | on | off
    ledger: str = "auto"  # auto | on | off: the one-line cost ledger on stderr when a job ends
    job_history: int = 20  # finished jobs kept as JSON under $DAGRUN_HOME/jobs for `dagrun report`; 0: none
    history_dir: str | None = None  # any fsspec URL: job records go to <history_dir>/<user>/ instead
    log_format: str | None = None  # None: dagrun's loggers left to the application; "text" or "json": INFO lines on stderr
    scratch_dir: str | None = None
    faults: tuple = ()
    lambda_function: str = "dagrun-executor"
    lambda_memory_mb: int = 2048
    lambda_region: str | None = None
    lambda_arch: str = "x86_64"
    lambda_profile: str | None = None
    driver_host: str = "127.0.0.1"
    # how Lambda executors get tasks: "invoke" (in each invocation's payload: the driver needs no
    # inbound network), "connect" (each invocation connects back to driver_host: the driver must be
    # reachable, e.g. in the function's VPC), or "auto": connect when driver_host is set, else invoke
    lambda_transport: str = "auto"
    prices: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in fields(self):
            _check(f.name, getattr(self, f.name))
        if self.heartbeat_timeout <= self.heartbeat_interval:
            raise ValueError(f"setting heartbeat_timeout ({self.heartbeat_timeout:g} s) must be longer than "
                             f"heartbeat_interval ({self.heartbeat_interval:g} s), or every executor looks lost")

    @classmethod
    def resolve(cls, conf: Mapping[str, Any] | None = None, **kwargs: Any) -> "Config":
        """Merge defaults, config files, ``DAGRUN_*`` environment, ``conf`` and ``kwargs``."""
        merged: dict[str, Any] = {}
        merged.update(_from_file(os.path.join(dagrun_home(), "config.toml"), required=False))
        project = os.environ.get("DAGRUN_CONFIG")
        merged.update(_from_file(project or "dagrun.toml", required=bool(project)))
        merged.update(_from_environment())
        merged.update({_field_name(k, "conf key"): (k, v) for k, v in (conf or {}).items()})
        merged.update({_field_name(k, "keyword"): (k, v) for k, v in kwargs.items() if v is not None})
        config = cls(**{name: _coerce(name, value, source) for name, (source, value) in merged.items()})
        if config.executor == "lambda":
            config = dataclasses.replace(config, **{k: v for k, v in LAMBDA_DEFAULTS.items() if k not in merged})
        return config

    def on_lambda(self) -> "Config":
        """This config as a Context on Lambda would resolve it, for estimates made elsewhere: the
        Lambda defaults (``LAMBDA_DEFAULTS``) for the settings still at their general default."""
        if self.executor == "lambda":
            return self
        return dataclasses.replace(self, **{k: v for k, v in LAMBDA_DEFAULTS.items()
                                            if getattr(self, k) == _FIELDS[k].default})

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **{_field_name(k, "keyword"): _coerce(k, v) for k, v in changes.items()})

    @property
    def executors(self) -> int:
        """How many executors at most: ``max_executors``, or the CPU count when it is 0."""
        return self.max_executors or os.cpu_count() or 1

    @property
    def reduce_min_tasks(self) -> int:
        """Fewest tasks a right-sized reduce stage is cut into: the parallelism on local executors,
        where a request costs nothing and idle cores do; 1 on Lambda, where every GET is billed
        and the fleet grows to the work (docs/architecture.md, "Right-sized shuffles")."""
        return 1 if self.executor == "lambda" else self.effective_parallelism

    @property
    def effective_parallelism(self) -> int:
        """``Context.default_parallelism``: the ``default_parallelism`` setting, or when it is 0 the
        executor count (1 for inline executors when ``max_executors`` is unset)."""
        if self.default_parallelism:
            return self.default_parallelism
        return 1 if self.executor == "inline" and not self.max_executors else self.executors


_FIELDS = {f.name: f for f in fields(Config)}

# Shuffle prefixes on Lambda, chosen by simulation (docs/architecture.md, "The cloud in virtual
# time"): at hundreds of executors 16 prefixes draw 503s and 32 or more draw none.  Local and
# EFS stores keep 16, since every job's cleanup lists each prefix once.
LAMBDA_SHUFFLE_PREFIXES = 64
# An idle Lambda executor is billed by the millisecond and a warm re-invocation costs about 50 ms,
# so the fleet a wide stage needed retires soon after a narrow one starts (docs/architecture.md,
# "Right-sized shuffles"): 5 s still spans the gap between a job's stages and between jobs.
LAMBDA_IDLE_TIMEOUT = 5.0
LAMBDA_DEFAULTS = {"shuffle_prefixes": LAMBDA_SHUFFLE_PREFIXES, "idle_timeout": LAMBDA_IDLE_TIMEOUT}

# name -> (kind, lowest value, lowest allowed too?, meaning).  Kinds: size, duration, int, float,
# bool, str, choice:a|b, executor, mapping, faults.  What the README lists is made from this.
_SPEC: dict[str, tuple[str, float | None, bool, str]] = {
    "executor": ("executor", None, True, "where tasks run: a backend name (local, inline, lambda)"),
    "store": ("str", None, True, "fsspec URL for shuffle data (s3://bucket/x, /mnt/efs/x); unset: a temp folder"),
    "storage_options": ("mapping", None, True, "fsspec options for the store (JSON in DAGRUN_STORAGE_OPTIONS)"),
    "max_executors": ("int", 0, True, "executors at most; 0: the CPU count"),
    "default_parallelism": ("int", 0, True, "partitions of parallelize and shuffles when not given; 0: derived"),
    "split_size": ("size", 0, True, "bytes per input split of text_file and binary_records; 0: the block size, 32 MiB for local files and 128 MiB in a store"),
    "executor_timeout": ("duration", 0, False, "an executor's lifetime (Lambda's function timeout)"),
    "executor_memory": ("size", 1, True, "memory of a local executor"),
    "retire_margin": ("duration", 0, True, "no new task for an executor this close to its deadline"),
    "idle_timeout": ("duration", 0, False, "an idle executor retires after this long (5 s with Lambda executors)"),
    "heartbeat_interval": ("duration", 0, False, "how often a busy executor says it is alive"),
    "heartbeat_timeout": ("duration", 0, False, "an executor silent this long is lost"),
    "task_timeout": ("duration", 0, True, "an attempt running this long is a task error; 0: no limit"),
    "ramp_initial": ("float", 0, False, "executors launched at first"),
    "ramp_slope": ("float", 0, True, "executors added per second while tasks wait"),
    "max_attempts": ("int", 1, True, "attempts of a task before the job fails"),
    "speculation": ("bool", None, True, "launch a copy of a straggling task"),
    "speculation_quantile": ("float", 0, True, "share of a stage's tasks done before speculating (at most 1)"),
    "speculation_multiplier": ("float", 0, False, "a task is a straggler at this many times the median"),
    "shuffle_prefixes": ("int", 1, True, "first-level key prefixes a job's shuffle blocks spread over (64 with Lambda executors)"),
    "shuffle_codec": ("str", None, True, "shuffle compression: lz4, zstd or none; unset: lz4 on a local store "
                                         "(none for the block sort's raw runs), zstd on an object store"),
    "shuffle_memory": ("size", 1, True, "memory for combining and sorting before spilling to disk"),
    "reduce_task_bytes": ("size", 0, True, "shuffle bytes one reduce task reads when it runs several consecutive "
                                           "partitions of a shuffle whose partition count was not given; 0: a task "
                                           "per partition"),
    "keep_shuffle": ("bool", None, True, "keep a job's shuffle blocks in the store after it ends"),
    "max_result_size": ("size", 0, True, "total serialized result of one action (spark.driver.maxResultSize); "
                                         "0: unlimited"),
    "max_direct_result_size": ("size", 1, True, "task results larger than this travel through the store"),
    "progress": ("choice:auto|on|off", None, True, "progress bar on stderr; auto: when it is a terminal"),
    "ledger": ("choice:auto|on|off", None, True, "one-line cost ledger on stderr when a job ends"),
    "job_history": ("int", 0, True, "finished jobs kept under $DAGRUN_HOME/jobs for dagrun report; 0: none"),
    "history_dir": ("str", None, True, "where finished jobs are recorded, any fsspec URL (<dir>/<user>/); "
                                       "unset: $DAGRUN_HOME/jobs"),
    "log_format": ("str", None, True, "INFO events on stderr: text or json; unset: left to the application"),
    "scratch_dir": ("str", None, True, "where executors spill; unset: the system temp folder"),
    "faults": ("faults", None, True, "injected faults for tests (JSON list of rules)"),
    "lambda_function": ("str", None, True, "name of the deployed Lambda function"),
    "lambda_memory_mb": ("int", 128, True, "Lambda memory in MB (128 to 10240)"),
    "lambda_region": ("str", None, True, "AWS region of the function; unset: boto3's default"),
    "lambda_arch": ("choice:x86_64|arm64", None, True, "Lambda architecture"),
    "lambda_profile": ("str", None, True, "AWS profile for the Lambda client (dagrun run --profile); "
                                          "unset: boto3's default"),
    "driver_host": ("str", None, True, "address executors reach the driver at"),
    "lambda_transport": ("choice:auto|invoke|connect", None, True, "how Lambda executors get tasks: in each "
                         "invocation's payload (invoke) or by connecting back to driver_host (connect); "
                         "auto: connect when driver_host is routable, else invoke"),
    "prices": ("mapping", None, True, "price overrides for the cost ledger (JSON)"),
}
_CEILING = {"speculation_quantile": 1.0, "lambda_memory_mb": 10240}


def _field_name(key: str, where: str = "") -> str:
    name = key.removeprefix("dagrun.").replace(".", "_").replace("-", "_").lower()
    if name not in _FIELDS:
        where = f" ({where})" if where else ""
        raise ValueError(f"unknown dagrun setting {key!r}{where}{_hint(name, list(_FIELDS))}")
    return name


def _hint(name: str, names: list[str]) -> str:
    """``; did you mean a, b?`` with the closest name first, or nothing when none is close."""
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    close += [n for n in names if n not in close and (n.startswith(name) or name.startswith(n))][:3 - len(close)]
    return f"; did you mean {', '.join(close)}?" if close else "; see the settings table in the README"


def _coerce(name: str, value: Any, source: str | None = None) -> Any:
    """``value`` read as setting ``name``; errors name the setting (and ``source``, e.g. an env variable)."""
    try:
        return _read(name, value)
    except (ValueError, TypeError) as exc:
        where = f" (from {source})" if source and source != name else ""
        raise ValueError(f"setting {name}{where}: {exc}") from None


def _read(name: str, value: Any) -> Any:
    kind = _SPEC.get(name, ("any",))[0]
    if kind == "size":
        return parse_bytes(value)
    if kind == "duration":
        return parse_seconds(value)
    if kind == "bool":
        return parse_bool(value)
    if kind == "faults":
        return _coerce_faults(value)
    if kind == "mapping" and isinstance(value, str):  # DAGRUN_STORAGE_OPTIONS='{...}'
        import json

        try:
            return json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"cannot read {value!r} as JSON: {exc}") from None
    if kind == "int":
        if isinstance(value, bool) or (isinstance(value, float) and value != int(value)):
            raise ValueError(f"cannot read {value!r} as a whole number")
        try:
            return int(value.strip()) if isinstance(value, str) else int(value)
        except (ValueError, TypeError):
            raise ValueError(f"cannot read {value!r} as a whole number; write e.g. "
                             f"{_FIELDS[name].default}") from None
    if kind == "float":
        if isinstance(value, bool):
            raise ValueError(f"cannot read {value!r} as a number")
        try:
            return float(value)
        except (ValueError, TypeError):
            raise ValueError(f"cannot read {value!r} as a number; write e.g. {_FIELDS[name].default}") from None
    return value


def _check(name: str, value: Any) -> None:
    """Type and range of a coerced value; the error names the setting and what it accepts."""
    kind, low, inclusive, _ = _SPEC.get(name, ("any", None, True, ""))
    problem = None
    if kind in ("int", "size") and (isinstance(value, bool) or not isinstance(value, int)):
        problem = f"must be a whole number, got {value!r}"
    elif kind in ("float", "duration") and (isinstance(value, bool) or not isinstance(value, (int, float))
                                             or not math.isfinite(value)):
        problem = f"must be a finite number, got {value!r}"
    elif kind == "bool" and not isinstance(value, bool):
        problem = f"must be true or false, got {value!r}"
    elif kind == "str" and value is not None and (not isinstance(value, str) or not value.strip()):
        problem = f"must be a non-empty string, got {value!r}"
    elif kind.startswith("choice:") and value not in kind[7:].split("|"):
        problem = f"must be one of {', '.join(kind[7:].split('|'))}, got {value!r}{_hint(str(value), kind[7:].split('|'))}"
    elif kind == "executor":
        from scheduler.backends import known_backends

        if value not in known_backends:
            problem = (f"no executor backend named {value!r}{_hint(str(value), sorted(known_backends))} "
                       f"(known: {', '.join(sorted(known_backends))})")
    elif kind == "mapping" and not isinstance(value, Mapping):
        problem = f"must be a table of options, got {value!r}"
    if problem is None and low is not None and (value < low if inclusive else value <= low):
        unit = {"size": " bytes", "duration": " s"}.get(kind, "")
        problem = f"must be {'at least' if inclusive else 'above'} {low:g}{unit}, got {value!r}"
    if problem is None and name in _CEILING and value > _CEILING[name]:
        problem = f"must be at most {_CEILING[name]:g}, got {value!r}"
    if problem is None and name == "shuffle_codec" and value is not None:
        from shuffle.codec import CODECS

        if value not in CODECS:
            problem = f"must be one of {', '.join(CODECS)}, got {value!r}{_hint(value, list(CODECS))}"
    if problem is not None:
        raise ValueError(f"setting {name} {problem}")


def _coerce_faults(value: Any) -> tuple:
    import json

    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    if isinstance(value, Mapping):
        value = [value]
    return tuple(dict(rule) for rule in value)


def _from_file(path: str, *, required: bool) -> dict[str, tuple[str, Any]]:
    """Settings of one TOML file as ``name -> (where, value)``; a missing optional file gives none."""
    if not os.path.exists(path):
        if required:
            raise FileNotFoundError(f"DAGRUN_CONFIG names {path!r}, which does not exist; "
                                    "fix the path or unset DAGRUN_CONFIG")
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path}: {exc}") from None
    flat: dict[str, tuple[str, Any]] = {}

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping) and key not in ("storage_options", "prices"):
                walk(f"{prefix}{key}.", value)
            else:
                flat[_field_name(prefix + key, f"in {path}")] = (f"{path}: {prefix}{key}", value)

    walk("", data.get("dagrun", data))
    return flat


def _from_environment() -> dict[str, tuple[str, Any]]:
    out = {}
    names = [f"DAGRUN_{n.upper()}" for n in _FIELDS]
    for key, value in os.environ.items():
        if not key.startswith("DAGRUN_") or key in NOT_SETTINGS:
            continue
        name = key.removeprefix("DAGRUN_").lower()
        if name not in _FIELDS:
            raise ValueError(f"unknown dagrun setting in the environment: {key}{_hint(key, names)}; "
                             "rename or unset it")
        out[name] = (key, value)
    return out


def _show(name: str, value: Any) -> str:
    kind = _SPEC[name][0]
    if value is None or value == () or value == {}:
        return "unset"
    if kind == "size" and value:
        for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value % size == 0:
                return f"{value // size}{unit}"
    if kind == "duration":
        return f"{value:g}s"
    if kind == "bool":
        return str(value).lower()
    return str(value)


def settings_table() -> str:
    """The README's table of settings, made from the Config so that it cannot drift."""
    rows = ["| Setting | Default | Meaning |", "|---|---|---|"]
    for f in fields(Config):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        meaning = _SPEC[f.name][3] if f.name in _SPEC else ""
        rows.append(f"| `{f.name}` | {_show(f.name, default) if f.name in _SPEC else default} | {meaning} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m dagrun.config: print the README's settings table
    print(settings_table(), end="")
