"""Shuffle key layout: the only place that formats store keys.

State: none.  Policy: a block lives at ``{pp}/{job_id}/s{shuffle_id}/m{map_id}-a{attempt}``
where ``pp`` is a stable hash of (job, shuffle, map) written in hex.  Spreading a job's
blocks over ``prefixes`` first-level prefixes lets S3 partition the request rate across
them; putting the job id under the prefix (not above it) is what makes that spread work.
Promise: the same arguments give the same key in every process and every Python version
(hashlib, never the salted built-in ``hash()``), and :func:`job_dirs` lists every folder
that :func:`block_key` can produce for a job, so cleanup needs no LIST of the whole store.
"""

from __future__ import annotations

import hashlib

__all__ = ["block_key", "job_dirs", "prefix_of", "prefix_width"]


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


def job_dirs(job_id: str, prefixes: int = 16) -> list[str]:
    """Every ``{pp}/{job_id}`` folder a job may have written, for cleanup."""
    _check_job_id(job_id)
    width = prefix_width(prefixes)
    return [f"{p:0{width}x}/{job_id}" for p in range(prefixes)]
