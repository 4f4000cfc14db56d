"""Shuffle errors: what a reducer raises when map output cannot be trusted, and what the
block store raises when the store itself keeps failing.

State: none.  Policy: every reader-side failure to obtain a map output (a missing object
or a checksum that does not match) surfaces as one :class:`FetchFailed` that names the
shuffle and every map id that must be recomputed, so the driver reruns exactly those map
tasks (invariant 4) and does not count the failure against the reduce task.  A store
that still throttles or fails after the block store's bounded retries surfaces as
:class:`StoreUnavailable`, a task error (the task is retried, up to ``max_attempts``).
Promise: all errors survive pickling with all their fields (they cross process and
Lambda boundaries), and their messages never contain credentials.
"""

from __future__ import annotations

__all__ = ["ChecksumMismatch", "FetchFailed", "StoreThrottled", "StoreUnavailable"]


class FetchFailed(OSError):
    """Map output of ``shuffle_id`` could not be read; rerun the listed map tasks.

    Args:
        shuffle_id: the shuffle whose blocks failed.
        map_ids: every map id whose block was missing or corrupt (sorted, no duplicates).
        reason: what went wrong, for the log.
    """

    def __init__(self, shuffle_id: int, map_ids: tuple[int, ...], reason: str) -> None:
        # OSError with 2-5 positional args would read them as (errno, strerror, filename),
        # so the base class gets one message and __reduce__ carries the real fields.
        self.shuffle_id = shuffle_id
        self.map_ids = tuple(sorted(set(map_ids)))
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        ids = ", ".join(map(str, self.map_ids[:20])) + (" ..." if len(self.map_ids) > 20 else "")
        return (
            f"fetch failed for shuffle {self.shuffle_id}, map ids ({ids}): {self.reason}. "
            "The driver should rerun those map tasks and then retry this reduce task."
        )

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple:
        return (type(self), (self.shuffle_id, self.map_ids, self.reason))


class ChecksumMismatch(ValueError):
    """Encoded shuffle data failed its checksum or could not be parsed.

    The reader turns this into :class:`FetchFailed`; callers of ``decode_records`` see it
    directly.  ``expected``/``actual`` are CRC32 values when the checksum itself failed,
    ``None`` when the bytes passed the checksum but were malformed.
    """

    def __init__(self, message: str, expected: int | None = None, actual: int | None = None) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(message, expected, actual)

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple:
        return (type(self), (self.args[0], self.expected, self.actual))


class StoreThrottled(OSError):
    """A store asked the client to slow down (what S3's ``503 SlowDown`` means).

    Stores whose client library has its own throttle error (s3fs/botocore) raise that
    one instead; this class is for the rest, and for injected throttles on stores that
    have no such error.  The block store retries it with backoff and counts it.
    """

    def __init__(self, message: str = "the store asked to reduce the request rate (503 SlowDown)") -> None:
        super().__init__(message)

    def __reduce__(self) -> tuple:
        return (type(self), (str(self),))


class StoreUnavailable(OSError):
    """A store request kept failing with throttles or transient errors; retries ran out.

    Args:
        what: the request and key, e.g. ``"put 0a/job/s0/m1-a0"``.
        store: the store's URL, credentials already removed.
        attempts: how many times the request was tried.
        seconds: how long the tries took.
        last_error: the last error, as text (the exception itself is ``__cause__``).
    """

    def __init__(self, what: str, store: str, attempts: int, seconds: float, last_error: str) -> None:
        self.what, self.store, self.attempts = what, store, attempts
        self.seconds, self.last_error = seconds, last_error
        super().__init__(self._message())

    def _message(self) -> str:
        return (f"{self.what} on store {self.store!r} failed {self.attempts} times over {self.seconds:.1f}s "
                f"(last error: {self.last_error}). The store is throttling or unreachable: check its endpoint "
                "and health, spread keys over more prefixes (shuffle.prefixes), or run fewer executors.")

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple:
        return (type(self), (self.what, self.store, self.attempts, self.seconds, self.last_error))
