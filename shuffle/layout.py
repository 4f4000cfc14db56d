"""Shuffle key layout: the only place that formats store keys.

State: none.  Policy: a block lives at ``{pp}/{job_id}/s{shuffle_id}/m{map_id}-a{attempt}``
where ``pp`` is a stable hash of (job, shuffle, map) written in hex.  Spreading a job's
blocks over ``prefixes`` first-level prefixes lets S3 partition the request rate across
them; putting the job id under the prefix (not above it) is what makes that spread work.
Promise: the same arguments give the same key in every process and every Python version
(hashlib, never the salted built-in ``hash()``), :func:`job_dirs` lists every folder
that :func:`block_key` can produce for a job, so cleanup needs no LIST of the whole store,
and :func:`parse_block_key` recognises exactly the keys :func:`block_key` makes (so
``dagrun store gc`` never touches anything else in a shared bucket).
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

__all__ = ["BlockKey", "block_key", "job_dirs", "parse_block_key", "prefix_of", "prefix_width", "transport_key"]

_BLOCK_KEY = re.compile(r"(?P<pp>[0-9a-f]{2,})/(?P<job>[^/]+)/s(?P<shuffle>\d+)/m(?P<map>\d+)-a(?P<attempt>\d+)")


class BlockKey(NamedTuple):
    """The parts of a block key: ``{pp}/{job_id}/s{shuffle_id}/m{map_id}-a{attempt}``."""

    prefix: str
    job_id: str
    shuffle_id: int
    map_id: int
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


def transport_key(job_id: str, name: str, prefixes: int = 16) -> str:
    """Store key of something a Lambda invocation's payload refers to (a stage, a task or result
    too large for the payload): inside one of the job's folders, so the job's cleanup removes it,
    and never shaped like a block key, so ``parse_block_key`` and gc leave it alone."""
    if not name or "/" in name:
        raise ValueError(f"name must be a non-empty name without '/', got {name!r}")
    return f"{prefix_of(job_id, 0, 0, prefixes)}/{job_id}/t/{name}"


def job_dirs(job_id: str, prefixes: int = 16) -> list[str]:
    """Every ``{pp}/{job_id}`` folder a job may have written, for cleanup."""
    _check_job_id(job_id)
    width = prefix_width(prefixes)
    return [f"{p:0{width}x}/{job_id}" for p in range(prefixes)]


def parse_block_key(key: str) -> BlockKey | None:
    """The parts of a key made by :func:`block_key`, or ``None`` for any other key."""
    m = _BLOCK_KEY.fullmatch(key)
    if m is None or m["job"] in (".", ".."):
        return None
    return BlockKey(m["pp"], m["job"], int(m["shuffle"]), int(m["map"]), int(m["attempt"]))
