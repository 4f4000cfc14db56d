"""Store retries: which errors are worth another try, and how long to wait before it.

State: none; a :class:`RetryPolicy` is a frozen value.

Policy (docs/architecture.md, "Shuffle block layout", store requests):
- Only three kinds of failure are retried: a throttle (HTTP 503, S3 ``SlowDown``), a
  server error (HTTP 500/502/504) and a transport failure (connection refused, reset or
  timed out, a response cut short).  A definite answer such as 404 or 403 is never
  retried: retrying cannot change it.
- Waits grow exponentially from ``base`` and are capped at ``cap``, with jitter (each
  wait is drawn uniformly from its upper half) so that many executors throttled together
  do not come back together.
- Both the number of attempts and the total time are bounded: a request is given up when
  ``max_attempts`` are used or when the next wait would end after ``max_seconds``.
- Errors are recognised by their HTTP status (on the exception or its ``__cause__``, as
  s3fs chains botocore's ``ClientError``) and by the transport error types of the client
  libraries already imported.  This module imports no AWS library itself: if botocore
  is not loaded, no botocore error can have been raised.

Promise: :func:`classify` never raises, and the delays of a policy never exceed ``cap``.
"""

from __future__ import annotations

import http.client
import random
import sys
from dataclasses import dataclass
from typing import Literal

from shuffle.errors import StoreThrottled

__all__ = ["Retryable", "RetryPolicy", "classify"]

Retryable = Literal["throttle", "transient"]

_THROTTLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                             "TooManyRequests", "TooManyRequestsException", "ServiceUnavailable", "503"})
_SERVER_CODES = frozenset({"InternalError", "InternalFailure", "500", "502", "504"})
_SERVER_STATUS = frozenset({500, 502, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a store request is retried."""

    # enough that the 30 s budget, not the count, ends a long 503 storm (waits cap at 2 s):
    # simulated, 8 attempts (~4 s) let a 10 s storm on one prefix fail tasks
    max_attempts: int = 16
    base: float = 0.05  # seconds before the first retry
    cap: float = 2.0  # no single wait is longer
    max_seconds: float = 30.0  # no retry starts after this much time on one request

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure (1-based): jittered, capped."""
        ceiling = min(self.cap, self.base * 2 ** (failures - 1))
        return random.uniform(ceiling / 2, ceiling)


def classify(exc: BaseException) -> Retryable | None:
    """``"throttle"``, ``"transient"``, or ``None`` when retrying cannot help."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen and len(seen) < 8:
        seen.add(id(e))
        if isinstance(e, StoreThrottled):
            return "throttle"
        response = getattr(e, "response", None)
        if isinstance(response, dict) and ("Error" in response or "ResponseMetadata" in response):
            # botocore's ClientError: the server answered, so its status decides.
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            code = str((response.get("Error") or {}).get("Code", ""))
            if status in (503, 429) or code in _THROTTLE_CODES:
                return "throttle"
            if status in _SERVER_STATUS or code in _SERVER_CODES:
                return "transient"
            return None
        if isinstance(e, _transport_errors()):
            return "transient"
        e = e.__cause__ or e.__context__
    return None


def _transport_errors() -> tuple[type[BaseException], ...]:
    # FileNotFoundError and PermissionError are OSErrors too, so OSError as such is not
    # retried: only the connection and timeout kinds of it.
    types: list[type[BaseException]] = [ConnectionError, TimeoutError, http.client.IncompleteRead]
    botocore_exceptions = sys.modules.get("botocore.exceptions")
    if botocore_exceptions is not None:
        types += [botocore_exceptions.HTTPClientError, botocore_exceptions.ConnectionError,
                  botocore_exceptions.IncompleteReadError]
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        types += [aiohttp.ClientConnectionError, aiohttp.ClientPayloadError]
    return tuple(types)
