"""The Lambda and S3 models of ``dagrun.sim.cloud``, driven by hand in SimPy time."""

from __future__ import annotations

import random

import pytest
import simpy

from dagrun.sim.cloud import LambdaCloud, LambdaModel, S3Cloud, S3Model, Storm, Throttled503
from shuffle.retry import RetryPolicy

pytestmark = pytest.mark.timeout(60)


def test_invokes_above_the_concurrency_quota_get_429():
    lam = LambdaCloud(LambdaModel(concurrency_quota=3))
    assert [lam.invoke(f"x{i}", 0.0) for i in range(5)] == [1.0, 1.0, 1.0, None, None]
    assert lam.throttled == 2 and lam.peak == 3
    assert lam.end("x0", 2.0)
    assert lam.invoke("x5", 2.0) == pytest.approx(0.05)  # the freed environment is warm
    assert lam.cold == 3


def test_new_environments_are_limited_per_window():
    lam = LambdaCloud(LambdaModel(concurrency_quota=10_000, scaling_per_window=1000, scaling_window_s=10.0))
    started = sum(lam.invoke(f"a{i}", 0.0) is not None for i in range(1500))
    assert started == 1000 and lam.throttled == 500
    assert lam.invoke("late", 9.99) is None
    assert lam.invoke("next", 10.0) == 1.0  # the window has moved on


def test_billing_is_per_started_millisecond_at_the_memory():
    lam = LambdaCloud(LambdaModel(memory_mb=1024))
    lam.invoke("x", 0.0)
    lam.end("x", 1.0004)
    assert lam.billed_ms == 1001
    assert lam.gb_s == pytest.approx(1.001)
    assert not lam.end("x", 3.0)  # an invocation ends once


def test_cpu_follows_memory_up_to_six_vcpus():
    assert LambdaModel(memory_mb=1769).vcpus == pytest.approx(1.0)
    assert LambdaModel(memory_mb=10240).vcpus == pytest.approx(6)
    assert 1 < LambdaModel(memory_mb=3008).vcpus < 2
    assert LambdaModel(memory_mb=884).cpu_share == pytest.approx(884 / 1769)
    assert LambdaModel(memory_mb=3538).cpu_share == 1.0  # one task uses one vCPU


def _run(env, gen):
    box = {}

    def wrap():
        try:
            box["value"] = yield from gen
        except Throttled503 as exc:
            box["error"] = exc

    env.process(wrap())
    env.run()
    return box


def test_gets_above_5500_per_second_on_a_prefix_are_slowed_down_and_retried():
    env = simpy.Environment()
    s3 = S3Cloud(S3Model(), random.Random(1))
    box = _run(env, s3.request(env, "get", {"00": 6000, "01": 100}))
    assert "value" in box and box["value"] > 0  # it backed off, then succeeded
    assert s3.slowdowns >= 500  # 500 at once, and some of them again on the first retries
    assert s3.requests["get"] == 6100  # every request was answered in the end
    assert s3.peak_rates()["00"] >= 6000  # the busiest second counts the retries too


def test_puts_are_limited_at_3500_per_second():
    env = simpy.Environment()
    s3 = S3Cloud(S3Model(), random.Random(1))
    _run(env, s3.request(env, "put", {"00": 3500}))
    assert s3.slowdowns == 0
    env2 = simpy.Environment()
    s3b = S3Cloud(S3Model(), random.Random(1))
    _run(env2, s3b.request(env2, "put", {"00": 3600}))
    assert s3b.slowdowns == 100


def test_a_storm_that_outlasts_the_retries_fails_the_request():
    env = simpy.Environment()
    model = S3Model(storm=Storm("07", start_s=0.0, seconds=600.0, factor=0.0), retry=RetryPolicy(max_attempts=4))
    s3 = S3Cloud(model, random.Random(1))
    box = _run(env, s3.request(env, "get", {"07": 1}))
    assert isinstance(box["error"], Throttled503)
    assert "503 SlowDown on prefix '07' 4 times" in str(box["error"]) and "shuffle_prefixes" in str(box["error"])
    assert s3.slowdowns == 4 and s3.gave_up == 1
    # the waits are the store's: capped exponential back-off, bounded in total
    assert env.now < 4 * model.latency_s + sum(min(2.0, 0.05 * 2 ** i) for i in range(3)) + 1e-9


def test_a_storm_only_touches_its_prefix_and_its_window():
    env = simpy.Environment()
    s3 = S3Cloud(S3Model(storm=Storm("07", start_s=0.0, seconds=5.0, factor=0.1)), random.Random(1))
    _run(env, s3.request(env, "get", {"08": 1000}))
    assert s3.slowdowns == 0
    _run(env, s3.request(env, "get", {"07": 1000}))  # 550 a second allowed: slowed, not failed
    assert s3.slowdowns > 0 and s3.gave_up == 0 and env.now < 5.0
    before = s3.slowdowns
    env.run(until=6.0)
    _run(env, s3.request(env, "get", {"07": 1000}))  # the storm is over
    assert s3.slowdowns == before
