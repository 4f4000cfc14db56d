"""Shuffle key layout: the only place that formats store keys and dagrun's ids.

State: none.  Policy: a block lives at ``{pp}/{job_id}/s{shuffle_id}/m{map_id}-a{attempt}``
where ``pp`` is a stable hash of (job, shuffle, map) written in hex, and a task result too
big for the control channel at ``{pp}/{job_id}/r{partition}-a{attempt}``.  Job ids are
``{app_id}-j{n}`` (one per job) or ``{app_id}-cache`` (a Context's persisted RDDs), with
``app_id = app-{YYYYmmddHHMMSS}-{6 hex}`` per Context; a Context that must keep its blocks
in a shared store holds a lease object ``_dagrun/leases/{app_id}``.  An in-flight local
write is a hidden sibling ``.{name}.tmp-{pid}-{token}``.  Spreading a job's
blocks over ``prefixes`` first-level prefixes lets S3 partition the request rate across
them; putting the job id under the prefix (not above it) is what makes that spread work.
Promise: the same arguments give the same key in every process and every Python version
(hashlib, never the salted built-in ``hash()``), :func:`job_dirs` lists every folder
that :func:`block_key` can produce for a job, so cleanup needs no LIST of the whole store,
and :func:`parse_block_key` recognises exactly the keys this module makes (the prefix
width, the job-id format and the object name), so ``dagrun store gc`` never touches anything
else in a shared bucket.  :func:`redact` takes credentials out of a URL before it is shown.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any, NamedTuple

__all__ = ["LEASES", "TMP_MARK", "BlockKey", "added_file_key", "app_id", "block_key", "cache_job_id", "job_dirs", "job_id",
           "lease_key", "parse_block_key", "parse_lease_key", "parse_stored_key", "prefix_of", "prefix_width", "redact", "redact_all",
           "result_key", "temporary_name", "transport_key"]

TMP_MARK = ".tmp-"
LEASES = "_dagrun/leases"
# Older dagrun versions and tests write shorter app ids (``app-1``): digits, then optional hex.
_APP = r"app-[0-9]+(?:-[0-9a-f]+)?"
_JOB = rf"{_APP}-(?:j[0-9]+|cache)"
_NAME = r"(?:s(?P<shuffle>[0-9]+)/(?P<tmp>\.)?m(?P<map>[0-9]+)|(?P<tmp_r>\.)?r(?P<part>[0-9]+))-a(?P<attempt>[0-9]+)"
_BLOCK_KEY = re.compile(rf"(?P<pp>[0-9a-f]+)/(?P<job>{_JOB})/{_NAME}(?P<suffix>{re.escape(TMP_MARK)}[0-9]+-[0-9a-f]+)?")
_LEASE_KEY = re.compile(rf"{LEASES}/(?P<app>{_APP})")


def app_id(now: float, token: str) -> str:
    """A Context's id: ``app-20260101120000-a1b2c3`` (local time, 6 hex digits of ``token``)."""
    return f"app-{time.strftime('%Y%m%d%H%M%S', time.localtime(now))}-{token[:6]}"


def job_id(app: str, n: int) -> str:
    return f"{app}-j{n}"


def cache_job_id(app: str) -> str:
    """The job id under which a Context's persisted RDDs are kept."""
    return f"{app}-cache"


def lease_key(app: str) -> str:
    """The object a running Context refreshes so that ``dagrun store gc`` keeps its blocks."""
    return f"{LEASES}/{app}"


def parse_lease_key(key: str) -> str | None:
    """The app id of a lease key, or ``None`` for any other key."""
    m = _LEASE_KEY.fullmatch(key)
    return m["app"] if m else None


def app_of(job: str) -> str:
    """The app id of a job id made by :func:`job_id` or :func:`cache_job_id`."""
    return job.rsplit("-", 1)[0]


def temporary_name(name: str, pid: int, token: str) -> str:
    """The hidden name an atomic local write of ``name`` goes to before its rename."""
    return f".{name}{TMP_MARK}{pid}-{token}"


def is_temporary(name: str) -> bool:
    return name.startswith(".") and TMP_MARK in name


# A password may hold "/" (AWS secret keys do), so after "user:" anything up to the "@" goes.
_SECRET_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)(?:[^/@\s:]*:[^@\s]*|[^/@\s]*)@")


def redact(text: str) -> str:
    """``text`` with every ``user:password@`` of a URL in it removed (``s3://u:p@b/x`` -> ``s3://b/x``)."""
    return _SECRET_IN_URL.sub(r"\g<scheme>", text) if isinstance(text, str) else text


def redact_all(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with :func:`redact` applied to every string in it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_all(k): redact_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_all(v) for v in value]
    return value


class BlockKey(NamedTuple):
    """The parts of a block key: ``{pp}/{job_id}/s{shuffle_id}/m{map_id}-a{attempt}``."""

    prefix: str
    job_id: str
    shuffle_id: int  # -1 for a task result
    map_id: int  # the partition, for a task result
    attempt: int

    @property
    def job_dir(self) -> str:
        return f"{self.prefix}/{self.job_id}"


def prefix_width(prefixes: int) -> int:
    """Hex digits in a prefix: enough for ``prefixes - 1``, and at least two (``pp``)."""
    if prefixes < 1:
        raise ValueError(f"prefixes must be >= 1, got {prefixes}")
    return max(2, len(f"{prefixes - 1:x}"))


def _check_job_id(job_id: str) -> None:
    if not job_id or "/" in job_id or job_id in (".", ".."):
        raise ValueError(f"job_id must be a non-empty name without '/', got {job_id!r}")


def prefix_of(job_id: str, shuffle_id: int, map_id: int, prefixes: int = 16) -> str:
    """The first-level prefix of a map output, e.g. ``"0a"``."""
    _check_job_id(job_id)
    width = prefix_width(prefixes)
    digest = hashlib.blake2b(f"{job_id}/{shuffle_id}/{map_id}".encode(), digest_size=8).digest()
    return f"{int.from_bytes(digest, 'big') % prefixes:0{width}x}"


def block_key(job_id: str, shuffle_id: int, map_id: int, attempt: int, prefixes: int = 16) -> str:
    """Store key of one map attempt's output object (invariant 2: one object per attempt)."""
    for name, value in (("shuffle_id", shuffle_id), ("map_id", map_id), ("attempt", attempt)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    pp = prefix_of(job_id, shuffle_id, map_id, prefixes)
    return f"{pp}/{job_id}/s{shuffle_id}/m{map_id}-a{attempt}"


def result_key(job_id: str, partition: int, attempt: int, prefixes: int = 16) -> str:
    """Store key of a task result that travels through the store instead of the channel."""
    _check_job_id(job_id)
    width = prefix_width(prefixes)
    digest = hashlib.blake2b(f"{job_id}/r/{partition}".encode(), digest_size=8).digest()
    return f"{int.from_bytes(digest, 'big') % prefixes:0{width}x}/{job_id}/r{partition}-a{attempt}"


def transport_key(job_id: str, name: str, prefixes: int = 16) -> str:
    """Store key of something a Lambda invocation's payload refers to (a stage, a task or result
    too large for the payload): inside one of the job's folders, so the job's cleanup removes it,
    and never shaped like a block key, so ``parse_block_key`` and gc leave it alone."""
    if not name or "/" in name:
        raise ValueError(f"name must be a non-empty name without '/', got {name!r}")
    return f"{prefix_of(job_id, 0, 0, prefixes)}/{job_id}/t/{name}"


def added_file_key(app: str, n: int, prefixes: int = 16) -> str:
    """Store key of the ``n``-th file a Context added (``add_file``): a transport key of the
    Context's cache job, deleted when the Context stops."""
    return transport_key(cache_job_id(app), f"f{n}", prefixes)


def job_dirs(job_id: str, prefixes: int = 16) -> list[str]:
    """Every ``{pp}/{job_id}`` folder a job may have written, for cleanup."""
    _check_job_id(job_id)
    width = prefix_width(prefixes)
    return [f"{p:0{width}x}/{job_id}" for p in range(prefixes)]


def parse_block_key(key: str, prefixes: int | None = None) -> BlockKey | None:
    """The parts of a key made by :func:`block_key` or :func:`result_key`, or ``None`` for any
    other key.  The prefix must be as wide as ``prefixes`` makes it (16, the default setting,
    when not given)."""
    found = parse_stored_key(key, prefixes)
    return found[0] if found is not None and not found[1] else None


def parse_stored_key(key: str, prefixes: int | None = None) -> tuple[BlockKey, bool] | None:
    """``(parts, temporary)`` for a block or result key or for the temporary name of one (an
    in-flight local write); ``None`` for any key this module does not make."""
    m = _BLOCK_KEY.fullmatch(key)
    if m is None or len(m["pp"]) != prefix_width(prefixes or 16):
        return None
    temporary = bool(m["suffix"])
    if temporary != bool(m["tmp"] or m["tmp_r"]):
        return None
    if m["shuffle"] is not None:
        return BlockKey(m["pp"], m["job"], int(m["shuffle"]), int(m["map"]), int(m["attempt"])), temporary
    return BlockKey(m["pp"], m["job"], -1, int(m["part"]), int(m["attempt"])), temporary
