"""The Lambda-compatible local endpoint, through boto3: payloads, logs, errors and limits."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import sys
import threading

import boto3
import pytest
from botocore.config import Config

from lambda_executor.backend import parse_report

_NO_RETRIES = Config(retries={"total_max_attempts": 1}, read_timeout=30)


def _invoke(payload: dict, **kwargs):
    client = boto3.client("lambda", config=_NO_RETRIES)
    response = client.invoke(FunctionName="f", Payload=json.dumps(payload).encode(), LogType="Tail", **kwargs)
    body = json.loads(response["Payload"].read())
    log = base64.b64decode(response.get("LogResult", "")).decode()
    return response, body, log


def test_invoke_runs_the_handler_and_returns_lambdas_log_tail(lambda_endpoint):
    # provisioned: initialized before the call, so this REPORT line has no Init Duration (see the cold-start test)
    endpoint = lambda_endpoint(handler="fixture_handlers.echo", timeout=10, memory_mb=256, function="f", provisioned=1)
    response, body, log = _invoke({"n": 7})
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert body["event"] == {"n": 7} and body["memory"] == 256
    assert 0 < body["remaining_ms"] <= 10_000
    request_id = body["request_id"]
    lines = log.splitlines()
    assert lines[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert "echo 7 in f" in lines
    assert lines[-2] == f"END RequestId: {request_id}"
    assert re.fullmatch(rf"REPORT RequestId: {request_id}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
                        r"Memory Size: 256 MB\tMax Memory Used: \d+ MB\t", lines[-1])
    report = parse_report(log)
    assert report["billed_ms"] == math.ceil(report["duration_ms"])  # Lambda bills whole milliseconds
    assert report["memory_mb"] == 256 and 0 < report["max_memory_mb"] < 256
    assert endpoint.reports == [lines[-1]]


def test_handler_exception_is_an_unhandled_function_error(lambda_endpoint):
    lambda_endpoint(handler="fixture_handlers.fail", timeout=10)
    response, body, log = _invoke({})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "bad input"
    assert isinstance(body["stackTrace"], list)
    assert "ValueError: bad input" in log and parse_report(log) is not None


def test_timeout_kills_the_invocation(lambda_endpoint):
    endpoint = lambda_endpoint(handler="fixture_handlers.sleep", timeout=1.0)
    response, body, log = _invoke({"seconds": 30})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    assert "Task timed out after 1.00 seconds" in log
    (invocation,) = endpoint.invocations
    assert invocation.status == "timeout" and 1000 <= invocation.duration_ms < 3000


def test_memory_limit_kills_the_invocation(lambda_endpoint):
    endpoint = lambda_endpoint(handler="fixture_handlers.hog", timeout=20, memory_mb=128)
    response, body, _ = _invoke({"mb": 200})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    assert "Runtime exited with error: signal: killed" in body["errorMessage"]
    assert endpoint.invocations[0].status == "oom" and endpoint.invocations[0].max_memory_mb > 128


def test_over_concurrency_is_a_429_too_many_requests(lambda_endpoint):
    endpoint = lambda_endpoint(handler="fixture_handlers.sleep", timeout=20, concurrency=1)
    first = threading.Thread(target=_invoke, args=({"seconds": 2},))
    first.start()
    try:
        for _ in range(100):  # until the first invocation is in flight
            if endpoint.in_flight:
                break
            threading.Event().wait(0.02)
        client = boto3.client("lambda", config=_NO_RETRIES)
        with pytest.raises(client.exceptions.TooManyRequestsException) as info:
            client.invoke(FunctionName="f", Payload=b"{}")
        error = info.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert error["Error"]["Message"] == "Rate Exceeded."
        assert endpoint.throttled == 1
    finally:
        first.join()


def test_unknown_function_is_resource_not_found(lambda_endpoint):
    lambda_endpoint(handler="fixture_handlers.echo", function="only-this-one")
    client = boto3.client("lambda", config=_NO_RETRIES)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="another", Payload=b"{}")


def test_the_endpoint_runs_as_a_command_and_prints_its_url(aws_env, monkeypatch):
    proc = subprocess.Popen([sys.executable, "-m", "lambda_executor.testing.local_endpoint", "--port", "0", "--handler",
                             "fixture_handlers.echo", "--timeout", "10", "--function", "f"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", url)
        response, body, log = _invoke({"n": 1})
        assert body["event"] == {"n": 1} and parse_report(log) is not None
    finally:
        proc.terminate()
        proc.wait(10)


def test_environments_stay_warm_frozen_between_invocations_with_their_tmp(lambda_endpoint):
    import psutil

    endpoint = lambda_endpoint(handler="fixture_handlers.tmp_note", timeout=10, memory_mb=256, function="f")
    _, first, first_log = _invoke({"n": 1})
    (pid,) = endpoint.environments
    for _ in range(100):  # SIGSTOP takes effect when the kernel next schedules it
        if psutil.Process(pid).status() == psutil.STATUS_STOPPED:
            break
        threading.Event().wait(0.02)
    assert psutil.Process(pid).status() == psutil.STATUS_STOPPED  # frozen until the next invocation
    _, second, second_log = _invoke({"n": 2})
    assert first["pid"] == second["pid"] == pid and second["files"] == ["note-1", "note-2"]
    assert parse_report(first_log)["init_ms"] > 0  # a cold start
    assert "Init Duration" not in second_log and parse_report(second_log)["billed_ms"] >= 1
    assert [i.init_ms is not None for i in endpoint.invocations] == [True, False]


def test_tmp_beyond_the_ephemeral_limit_ends_the_environment(lambda_endpoint):
    endpoint = lambda_endpoint(handler="fixture_handlers.tmp_note", timeout=10, memory_mb=256, function="f",
                               ephemeral_mb=1)
    _, body, _ = _invoke({"n": 1, "kb": 2048})
    assert body["files"] == ["note-1"]
    assert endpoint.environments == []  # over 1 MB of /tmp: the next invocation starts cold
    _, body, log = _invoke({"n": 2})
    assert body["files"] == ["note-2"] and "Init Duration" in log


def test_idle_environments_are_reaped(lambda_endpoint):
    endpoint = lambda_endpoint(handler="fixture_handlers.echo", timeout=10, function="f", idle_seconds=0.5)
    _invoke({"n": 1})
    assert len(endpoint.environments) == 1
    for _ in range(100):
        if not endpoint.environments:
            break
        threading.Event().wait(0.05)
    assert endpoint.environments == []


def test_a_handler_that_cannot_be_loaded_is_an_init_error(lambda_endpoint):
    lambda_endpoint(handler="fixture_handlers.no_such_handler", timeout=10, function="f")
    response, body, log = _invoke({})
    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"].startswith("Runtime.") and "no_such_handler" in body["errorMessage"]


def test_a_payload_over_six_megabytes_is_refused(lambda_endpoint):
    lambda_endpoint(handler="fixture_handlers.echo", timeout=10, function="f")
    client = boto3.client("lambda", config=_NO_RETRIES)
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="f", Payload=json.dumps({"n": "x" * (7 << 20)}).encode())
