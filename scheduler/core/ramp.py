"""The launch-rate controller (docs/architecture.md, Invariants, 6. Linear ramp).

State: the rate's base and the time the current ramp began, and a token balance.

Policy: executors may be launched at ``rate(t) = initial + slope * t`` per second, where t is
the time since the ramp (re)started.  Tokens accrue by the integral of that rate; one launch
spends one token.  A throttle (Lambda 429, S3 503 SlowDown) cuts the current rate by
``backoff`` and restarts the ramp from that lower base.  A fresh ramp starts with one
second's worth of tokens so that the first executors launch at once.

Promise: pure arithmetic over the times it is given; no clock of its own.

Example:
    >>> r = Ramp(initial=2, slope=1, now=0.0)
    >>> r.take(10, now=0.0), r.take(10, now=1.0)
    (2, 2)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ramp:
    initial: float
    slope: float
    now: float
    backoff: float = 0.5
    min_rate: float = 0.5

    memory: float = 10.0  # seconds a throttle is remembered across a restart

    def __post_init__(self) -> None:
        self.throttled_at: float | None = None
        self.restart(self.now, self.initial)

    def restart(self, now: float, base: float | None = None) -> None:
        if base is None:
            base = self.initial
            # new demand right after a throttle must not jump back to the full initial rate
            if self.throttled_at is not None and now - self.throttled_at < self.memory:
                base = min(base, self.base)
        self.base = max(self.min_rate, base)
        self.start = now
        self.last = now
        self.tokens = max(1.0, self.base)

    def rate(self, now: float) -> float:
        return self.base + self.slope * max(0.0, now - self.start)

    def _accrue(self, now: float) -> None:
        if now <= self.last:
            return
        a, b = self.last - self.start, now - self.start
        self.tokens += self.base * (b - a) + self.slope * (b * b - a * a) / 2
        # an idle ramp must not bank an unbounded burst
        self.tokens = min(self.tokens, max(1.0, self.rate(now)))
        self.last = now

    def available(self, now: float) -> int:
        self._accrue(now)
        return int(self.tokens + 1e-9)

    def take(self, wanted: int, now: float) -> int:
        granted = min(max(0, wanted), self.available(now))
        self.tokens -= granted
        return granted

    def throttle(self, now: float) -> None:
        """Cut the rate multiplicatively and ramp again from there."""
        cut = self.rate(now) * self.backoff
        self.throttled_at = now
        self.base = max(self.min_rate, cut)
        self.start = now
        self.last = now
        self.tokens = 0.0
