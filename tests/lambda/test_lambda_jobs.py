"""Whole jobs on executor="lambda": boto3 invokes the real handler through the local endpoint.

The endpoint enforces Lambda's limits (timeout, concurrency) and reports each invocation
as Lambda does, so these tests check the backend's reactions: exact results, backing off on
429s, rerunning a task whose invocation was killed, and billing equal to the REPORT lines.
"""

from __future__ import annotations

import math
import socket
import time
from operator import add

import pytest

import dagrun
from lambda_executor.backend import parse_report
from word_job import expected, report_sum, word_job

CONF = {"progress": "off", "lambda.transport": "connect"}  # the invoke transport: test_lambda_invoke.py


def test_three_stage_job_on_lambda_is_exact(lambda_endpoint, tmp_path):
    endpoint = lambda_endpoint(timeout=60, memory_mb=512, concurrency=8)
    words = [f"w{(i * 7919) % 53}" for i in range(3000)]
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=4, conf=CONF) as ctx:
        result = sorted(word_job(ctx, words).collect())
        job = ctx.last_job
    assert result == expected(words)
    assert len(job.stages) == 3
    assert {a.outcome for a in job.attempts} == {"committed"}
    assert endpoint.invocations and {i.status for i in endpoint.invocations} == {"ok"}, [i.log for i in endpoint.invocations if i.status != "ok"]
    connected = [i.log for i in endpoint.invocations if "connected to" in i.log]  # late launches find it gone
    assert connected and all("over TCP" in log for log in connected)  # a loopback driver: no TLS


def test_throttled_launches_back_off_and_the_job_completes(lambda_endpoint, tmp_path):
    endpoint = lambda_endpoint(timeout=60, memory_mb=512, concurrency=4)

    def slow(x):
        time.sleep(0.15)
        return x % 6, x

    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=16, conf={**CONF, "speculation": False}) as ctx:
        result = sorted(ctx.parallelize(range(48), 48).map(slow).reduce_by_key(add, 4).collect())
        job = ctx.last_job
        slope = ctx.config.ramp_slope
    assert result == [(k, sum(range(k, 48, 6))) for k in range(6)]
    assert endpoint.throttled > 0
    log = job.scheduler_log
    throttles = [e for e in log if e.what == "throttle"]
    assert throttles and {e.detail["source"] for e in throttles} == {"lambda"}
    # after a throttle the ramp restarts from the cut rate with no tokens: the next launch waits
    # until base*dt + slope*dt^2/2 reaches one token (unless new demand restarted the ramp)
    checked = 0
    for i, entry in enumerate(log):
        if entry.what != "throttle":
            continue
        later = log[i + 1:]
        nxt = next((e for e in later if e.what in ("launch", "throttle", "submit")), None)
        if nxt is None or nxt.what != "launch":
            continue
        rate = entry.detail["rate"]
        wait = (-rate + math.sqrt(rate * rate + 2 * slope)) / slope
        assert nxt.time - entry.time >= wait - 1e-6, (entry, nxt, wait)
        checked += 1
    assert checked >= 1
    assert [e for e in log if e.what == "lost" and e.detail == "throttled"]  # refused launches are forgotten


def test_an_invocation_killed_at_its_timeout_reruns_its_task(lambda_endpoint, tmp_path):
    # the function lives 5 s; partition 0 of the first stage sleeps 20 s on its first attempt, so
    # its invocation is killed mid-task (a task that fits is assigned: remaining >= 1 s + 0.5 s)
    endpoint = lambda_endpoint(timeout=5, memory_mb=512, concurrency=8)
    conf = {**CONF, "speculation": False, "retire_margin": 0.5, "executor_timeout": 5,
            "faults": [{"kind": "delay", "stage": 0, "partition": 0, "seconds": 20}]}
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=4, conf=conf) as ctx:
        result = sorted(ctx.parallelize(range(100), 4).map(lambda x: (x % 5, x)).reduce_by_key(add, 2).collect())
        job = ctx.last_job
    assert result == [(k, sum(range(k, 100, 5))) for k in range(5)]
    (lost,) = [a for a in job.attempts if a.outcome == "lost"]
    assert (lost.partition, lost.attempt) == (0, 0) and lost.stage_id == job.stages[0].stage_id
    rerun = [a for a in job.attempts if (a.stage_id, a.partition) == (lost.stage_id, 0) and a.attempt > 0]
    assert [a.outcome for a in rerun] == ["committed"]
    assert [i for i in endpoint.invocations if i.status == "timeout" and i.error_type == "Sandbox.Timedout"]
    assert job.billed_ms == report_sum(endpoint)  # the killed invocation is billed too


def test_billed_milliseconds_equal_the_report_lines(lambda_endpoint, tmp_path):
    endpoint = lambda_endpoint(timeout=60, memory_mb=1024, concurrency=8)
    words = [f"w{i % 11}" for i in range(500)]
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=3, conf=CONF) as ctx:
        assert sorted(word_job(ctx, words).collect()) == expected(words)
        job = ctx.last_job
    # REPORT lines arrive as invocations end; after stop() every one has
    assert len(endpoint.reports) == len(endpoint.invocations) >= 1
    assert job.billed_ms == report_sum(endpoint) == endpoint.billed_ms > 0
    reported = {parse_report(line)["request_id"] for line in endpoint.reports}
    assert reported == {i.request_id for i in endpoint.invocations}


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: routes, sends nothing
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_a_driver_on_a_non_loopback_address_is_reached_over_tls(lambda_endpoint, tmp_path):
    host = _non_loopback_address()
    if host is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    endpoint = lambda_endpoint(timeout=60, memory_mb=512, concurrency=4)
    words = [f"w{i % 13}" for i in range(400)]
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=2, conf={**CONF, "driver_host": host}) as ctx:
        assert sorted(word_job(ctx, words).collect()) == expected(words)
    connected = [i.log for i in endpoint.invocations if "connected to" in i.log]
    assert connected and all(f"connected to {host}:" in log and "over TLS" in log for log in connected)
