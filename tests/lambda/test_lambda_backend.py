"""The Lambda backend's reading of invoke outcomes, with a stub client (no network)."""

from __future__ import annotations

import base64
import io
import json
import threading

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

import dagrun
from dagrun.config import Config
from lambda_executor.backend import DriverUnreachable, LambdaBackend, LambdaInvokeError, parse_report
from scheduler.backends import ExecutorSettings, get_backend_class

REPORT = ("REPORT RequestId: 3f5e8a1c-0000-4000-8000-000000000001\tDuration: 1234.56 ms\tBilled Duration: 1235 ms\t"
          "Memory Size: 2048 MB\tMax Memory Used: 181 MB\tInit Duration: 301.22 ms\t")


def test_parse_report_reads_lambdas_report_line():
    log = f"START RequestId: x Version: $LATEST\nhello\nEND RequestId: x\n{REPORT}\n"
    assert parse_report(log) == {"invocations": 1, "request_id": "3f5e8a1c-0000-4000-8000-000000000001",
                                 "duration_ms": 1234.56, "billed_ms": 1235, "memory_mb": 2048,
                                 "max_memory_mb": 181, "init_ms": 301.22}
    assert parse_report("START RequestId: x\nno report here\n") is None
    assert parse_report("") is None


class StubClient:
    meta = type("Meta", (), {"endpoint_url": "https://lambda.us-east-1.amazonaws.com"})()

    def __init__(self, outcome):
        self.outcome = outcome

    def invoke(self, **kwargs):
        assert kwargs["InvocationType"] == "RequestResponse" and kwargs["LogType"] == "Tail"
        self.payload = json.loads(kwargs["Payload"])
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome() if callable(self.outcome) else self.outcome


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} says no"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Invoke")


def _response(payload: dict, function_error: str | None = None) -> dict:
    response = {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(payload).encode()),
                "LogResult": base64.b64encode(f"START\n{REPORT}\n".encode()).decode()}
    if function_error:
        response["FunctionError"] = function_error
    return response


def _backend(driver_host: str = "10.0.0.5", **conf) -> LambdaBackend:
    backend = get_backend_class("lambda")(Config.resolve(executor="lambda", lambda_region="us-east-1", max_executors=3,
                                                         executor_timeout=60, driver_host=driver_host, **conf))
    assert isinstance(backend, LambdaBackend) and backend.capacity() == 3 and backend.read_timeout == 120
    return backend


def _settings(host: str = "10.0.0.5", **options) -> ExecutorSettings:
    return ExecutorSettings((host, 4567), b"k" * 32, 60.0, 2.0, None, 2048, options)


def _run(outcome, tls: bool | None = None, launches: int = 1) -> tuple[list[tuple], StubClient]:
    backend = _backend()
    backend._client = client = StubClient(outcome)
    events: list[tuple] = []
    exited = threading.Semaphore(0)

    def notify(event):
        events.append(event)
        if event[0] == "exited":
            exited.release()

    backend.start(_settings(**({} if tls is None else {"tls": tls})), notify)
    for i in range(launches):  # one after another, so the events come in order
        backend.launch([f"x{i + 1}"])
        assert exited.acquire(timeout=10)
    backend.close()
    return events, client


def test_a_returned_invocation_reports_its_billing_then_exits():
    events, client = _run(_response({"executor_id": "x1", "reason": "retired: idle"}))
    assert client.payload == {"driver_host": "10.0.0.5", "driver_port": 4567, "secret": (b"k" * 32).hex(),
                              "tls": True, "heartbeat": 2.0, "executor_id": "x1"}  # not loopback: TLS
    assert events[0][:2] == ("report", "x1") and events[0][2]["billed_ms"] == 1235
    assert events[1] == ("exited", "x1", "retired: idle")


def test_a_throttle_cuts_the_ramp_and_forgets_the_launch():
    events, _ = _run(_client_error("TooManyRequestsException", 429))
    assert events == [("throttled", "lambda"), ("exited", "x1", "throttled")]


def test_a_function_error_loses_the_executor():
    events, _ = _run(_response({"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 3.00 seconds"},
                               "Unhandled"), tls=False)
    assert events[0][0] == "report"
    assert events[1] == ("exited", "x1", "function error: Sandbox.Timedout: Task timed out after 3.00 seconds")


def test_a_read_timeout_loses_the_executor():
    events, _ = _run(ReadTimeoutError(endpoint_url="http://lambda"))
    assert events[0][:2] == ("exited", "x1") and "ReadTimeoutError" in events[0][2]


def test_a_missing_function_fails_the_job():
    events, _ = _run(_client_error("ResourceNotFoundException", 404))
    assert events[0][0] == "failed" and isinstance(events[0][1], LambdaInvokeError)
    assert "dagrun lambda deploy" in str(events[0][1])
    assert events[1][:2] == ("exited", "x1")


def test_a_job_against_a_missing_function_fails_with_the_hint(lambda_endpoint, tmp_path):
    lambda_endpoint(function="the-deployed-one", timeout=30)
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=2, conf={"progress": "off", "lambda.function": "nope"}) as ctx:
        with pytest.raises(LambdaInvokeError, match="ResourceNotFoundException.*dagrun lambda deploy"):
            ctx.parallelize(range(10), 2).map(lambda x: (x, 1)).reduce_by_key(lambda a, b: a + b).collect()


def test_executors_that_cannot_reach_the_driver_fail_the_job():
    refused = {"executor_id": "x", "reason": "driver unreachable: [Errno 111] Connection refused"}
    events, _ = _run(lambda: _response(refused), launches=3)
    failed = [e for e in events if e[0] == "failed"]
    assert len(failed) == 1 and isinstance(failed[0][1], DriverUnreachable)
    assert "driver_host" in str(failed[0][1]) and "10.0.0.5:4567" in str(failed[0][1])


def test_a_loopback_driver_is_refused_when_lambda_is_remote(aws_env):
    with pytest.raises(DriverUnreachable, match="set driver_host"):  # lambda.us-east-1.amazonaws.com
        _backend(driver_host="127.0.0.1", lambda_transport="connect")


def test_a_loopback_driver_with_remote_lambda_gets_the_invoke_transport(aws_env):
    backend = _backend(driver_host="127.0.0.1")  # "auto": nothing to connect back to, so tasks ride the payload
    assert backend.transport == "invoke" and not backend.connects_back
    assert _backend().transport == "connect"  # a routable driver_host: the executors connect back to it
    with pytest.raises(ValueError, match="lambda.transport must be"):
        _backend(lambda_transport="carrier-pigeon")
