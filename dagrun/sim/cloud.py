"""Lambda and S3 in virtual time: what the simulator's executors and tasks run against.

State:
- ``LambdaCloud``: the invocations running (the account concurrency they hold), the warm
  execution environments free for reuse, the times the recent new environments were made
  (the scaling window), the 429 count and the billed milliseconds.
- ``S3Cloud``: per (prefix, request class) a token bucket of the rate S3 allows there, the
  requests made by kind, the 503 SlowDown answers, and requests per prefix per second (for
  the peak rate).

Policy (the model; every figure is a field of ``LambdaModel`` or ``S3Model``):
- An invoke is refused with a 429 when the running invocations already hold the
  concurrency quota, or when it needs a new environment and ``scaling_per_window`` new ones
  were made in the last ``scaling_window_s``.  Otherwise it reuses a warm environment
  (``warm_start_s``) or makes one (``cold_start_s``).  An invocation holds concurrency from
  invoke to end, is billed per started millisecond of that (the init phase included) at
  its memory, and is ended by Lambda at ``timeout_s`` whatever it is doing.
- A function gets ``network_mb_s`` whatever its memory, and CPU in proportion to memory:
  one vCPU at 1,769 MB, at most six; a task uses one vCPU (one task per executor).
- S3 allows ``put_per_s`` PUT-class (PUT, DELETE, LIST) and ``get_per_s`` GET-class
  requests per second per partitioned prefix; above that it answers 503 SlowDown.  A
  throttled request is retried as the block store retries (``shuffle.retry.RetryPolicy``:
  its waits, attempt limit and time limit); one that runs out of retries fails its task,
  as ``StoreThrottled`` does.  Each round of requests takes ``latency_s``.
- A 503 storm multiplies one prefix's allowed rates by ``factor`` for a while.

Promise: a pure function of the virtual clock and the random generators it is given.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Generator

from shuffle.retry import RetryPolicy

VCPU_MB = 1769
MAX_VCPUS = 6
MAX_MB = 10240
PUT_CLASS = frozenset({"put", "delete", "list"})


@dataclass(frozen=True)
class LambdaModel:
    memory_mb: int = 2048
    concurrency_quota: int = 1000  # the account's default
    scaling_per_window: int = 1000  # new execution environments per window per function
    scaling_window_s: float = 10.0
    cold_start_s: float = 1.0  # invoke to a registered executor: init of Python, dagrun and the channel
    warm_start_s: float = 0.05
    timeout_s: float = 900.0
    network_mb_s: float = 75.0  # sustained per function, independent of memory

    @property
    def vcpus(self) -> float:
        """In proportion to memory: one at 1,769 MB, six at the 10,240 MB maximum."""
        if self.memory_mb <= VCPU_MB:
            return self.memory_mb / VCPU_MB
        return min(MAX_VCPUS, 1 + (MAX_VCPUS - 1) * (self.memory_mb - VCPU_MB) / (MAX_MB - VCPU_MB))

    @property
    def cpu_share(self) -> float:
        """The fraction of one vCPU a single-threaded task gets."""
        return min(1.0, self.vcpus)


@dataclass(frozen=True)
class Storm:
    prefix: str
    start_s: float = 5.0
    seconds: float = 10.0
    factor: float = 0.1  # the prefix's allowed rate during the storm, as a fraction


@dataclass(frozen=True)
class S3Model:
    put_per_s: float = 3500.0
    get_per_s: float = 5500.0
    latency_s: float = 0.03  # one round of requests (first byte of a GET, a small PUT)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    storm: Storm | None = None


class LambdaCloud:
    """The function's invocations: concurrency, scaling, warm environments, billing."""

    def __init__(self, model: LambdaModel):
        self.model = model
        self.running: dict[str, float] = {}  # executor id -> invoke time
        self.warm = 0
        self.new_envs: deque[float] = deque()
        self.throttled = 0
        self.invocations = 0
        self.cold = 0
        self.billed_ms = 0
        self.peak = 0

    def invoke(self, executor_id: str, now: float) -> float | None:
        """Seconds until the executor is up, or None for a 429."""
        m = self.model
        if len(self.running) >= m.concurrency_quota:
            self.throttled += 1
            return None
        if self.warm:
            self.warm -= 1
            startup = m.warm_start_s
        else:
            while self.new_envs and self.new_envs[0] <= now - m.scaling_window_s:
                self.new_envs.popleft()
            if len(self.new_envs) >= m.scaling_per_window:
                self.throttled += 1
                return None
            self.new_envs.append(now)
            self.cold += 1
            startup = m.cold_start_s
        self.running[executor_id] = now
        self.invocations += 1
        self.peak = max(self.peak, len(self.running))
        return startup

    def end(self, executor_id: str, now: float, reuse: bool = True) -> bool:
        """The invocation returned (or was ended); False if it was not running."""
        start = self.running.pop(executor_id, None)
        if start is None:
            return False
        self.billed_ms += max(1, math.ceil((now - start) * 1000 - 1e-9))
        if reuse:  # a crashed environment is not reused
            self.warm += 1
        return True

    def close(self, now: float) -> None:
        for executor_id in list(self.running):
            self.end(executor_id, now)

    @property
    def gb_s(self) -> float:
        return self.billed_ms / 1000 * self.model.memory_mb / 1024


class _Bucket:
    """Requests allowed at ``rate`` per second with a one-second burst."""

    def __init__(self, rate: float, now: float):
        self.rate, self.tokens, self.last = rate, rate, now

    def take(self, wanted: int, now: float, factor: float) -> int:
        rate = self.rate * factor
        self.tokens = min(rate, self.tokens + (now - self.last) * rate)
        self.last = now
        granted = min(wanted, int(self.tokens + 1e-9))
        self.tokens -= granted
        return granted


class S3Cloud:
    """Per-prefix request rates, 503s and the store's retries."""

    def __init__(self, model: S3Model, rng: Any):
        self.model = model
        self.rng = rng
        self.buckets: dict[tuple[str, str], _Bucket] = {}
        self.requests: Counter = Counter()
        self.slowdowns = 0
        self.gave_up = 0
        self.per_second: dict[str, Counter] = {}

    def _factor(self, prefix: str, now: float) -> float:
        s = self.model.storm
        if s is not None and s.prefix == prefix and s.start_s <= now < s.start_s + s.seconds:
            return s.factor
        return 1.0

    def _delay(self, failures: int) -> float:
        # RetryPolicy.delay's schedule, drawn from the simulation's own generator so that
        # a seeded run repeats exactly
        p = self.model.retry
        ceiling = min(p.cap, p.base * 2 ** (failures - 1))
        return self.rng.uniform(ceiling / 2, ceiling)

    def _bucket(self, prefix: str, klass: str, now: float) -> _Bucket:
        bucket = self.buckets.get((prefix, klass))
        if bucket is None:
            rate = self.model.put_per_s if klass == "put" else self.model.get_per_s
            bucket = self.buckets[(prefix, klass)] = _Bucket(rate, now)
        return bucket

    def request(self, env: Any, kind: str, counts: dict[str, int]) -> Generator[Any, Any, float]:
        """One round of concurrent requests of one kind, ``counts[prefix]`` to each prefix: a
        SimPy process body.  Returns the seconds spent backing off from 503s; raises
        ``Throttled503`` when a request ran out of retries."""
        klass = "put" if kind in PUT_CLASS else "get"
        policy, failures, began, backoff = self.model.retry, 0, env.now, 0.0
        left = {p: n for p, n in counts.items() if n > 0}
        while left:
            now, rejected = env.now, {}
            for prefix, n in left.items():
                granted = self._bucket(prefix, klass, now).take(n, now, self._factor(prefix, now))
                self.requests[kind] += granted
                self.per_second.setdefault(prefix, Counter())[int(now)] += n
                if granted < n:
                    rejected[prefix] = n - granted
            yield env.timeout(self.model.latency_s)
            if not rejected:
                break
            self.slowdowns += sum(rejected.values())
            failures += 1
            wait = self._delay(failures)
            if failures >= policy.max_attempts or env.now + wait - began > policy.max_seconds:
                self.gave_up += sum(rejected.values())
                raise Throttled503(next(iter(rejected)), failures)
            backoff += wait
            yield env.timeout(wait)
            left = rejected
        return backoff

    def peak_rates(self) -> dict[str, int]:
        """The busiest second's request count (answered or not), per prefix."""
        return {p: max(c.values()) for p, c in sorted(self.per_second.items()) if c}


class Throttled503(Exception):
    """A simulated request that S3 kept answering SlowDown until the retries ran out."""

    def __init__(self, prefix: str, attempts: int):
        super().__init__(prefix, attempts)
        self.prefix, self.attempts = prefix, attempts

    def __str__(self) -> str:
        return (f"S3 answered 503 SlowDown on prefix {self.prefix!r} {self.attempts} times; "
                "spread the keys over more prefixes (shuffle_prefixes) or slow the launch ramp")
