"""The Lambda backend: each executor is one synchronous invocation of the deployed function.

State: one boto3 Lambda client (thread-safe, shared), and one thread per invocation in
flight, which blocks in ``invoke`` for as long as the executor lives.

Policy:
- ``invoke`` is ``RequestResponse`` with ``LogType=Tail``, a read timeout longer than the
  function's (``executor_timeout + 60``) and botocore's retries off
  (``total_max_attempts=1``): each launch runs exactly once, a throttle comes back at once,
  and the response carries the invocation's REPORT line.
- Outcomes become driver events (``scheduler.backends``):
  429 ``TooManyRequestsException`` -> ``("throttled", "lambda")`` then
  ``("exited", id, "throttled")``, so the ramp cuts its rate and the launch is forgotten;
  a function error (timeout, out of memory, a crash), a read timeout or a dropped
  connection -> ``("exited", id, reason)``, which the driver treats as a lost executor if it
  had not retired; the REPORT line -> ``("report", id, {"billed_ms", "duration_ms",
  "memory_mb", "max_memory_mb", "invocations": 1})`` before the ``exited``.  An error no
  retry can fix (no such function, access denied, a bad request), or three invocations in a
  row that could not reach the driver -> ``("failed", error)``, since relaunching cannot help.
- A driver bound to loopback is refused at construction unless the Lambda endpoint is itself on
  loopback (the local endpoint): a function in AWS could never connect back.
- ``kill`` cannot stop an invocation: Lambda has no API for it.  The driver closes the
  executor's channel instead, and the executor loop returns as soon as it reads from it;
  an executor busy in a task runs until the task ends or the function times out.
- The endpoint is boto3's own resolution: ``AWS_ENDPOINT_URL_LAMBDA`` or
  ``AWS_ENDPOINT_URL`` (the tests point it at ``lambda_executor.testing.local_endpoint``).

Promise: ``("exited", id, ...)`` is reported exactly once per launched executor (unless the
backend is closing), after any ``report`` for it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError, ProfileNotFound

from scheduler.backends import ExecutorSettings, Notify
from scheduler.slots import lambda_vcpus
from scheduler.wire.channel import is_loopback

from lambda_executor.invoke import InvokeConnection, StageCache

log = logging.getLogger("dagrun.lambda")

_CLOSE_WAIT = 15.0  # seconds close() waits for retired invocations to return their REPORT lines
_QUIET_WAIT = 0.25  # seconds of that wait before close() says what it is waiting for
_UNREACHABLE_LIMIT = 3  # invocations in a row that could not reach the driver before the job fails
_TRANSIENT = {"TooManyRequestsException", "ServiceException", "ResourceNotReadyException", "ResourceConflictException",
              "EC2ThrottledException", "ENILimitReachedException", "EFSMountConnectivityException",
              "EFSIOException", "SnapStartTimeoutException", "SubnetIPAddressLimitReachedException"}
_REPORT_FIELDS = {"duration_ms": (r"\bDuration: ([\d.]+) ms", float),
                  "billed_ms": (r"Billed Duration: (\d+) ms", int),
                  "memory_mb": (r"Memory Size: (\d+) MB", int),
                  "max_memory_mb": (r"Max Memory Used: (\d+) MB", int),
                  "init_ms": (r"Init Duration: ([\d.]+) ms", float)}


@dataclass(frozen=True)
class Outcome:
    """How one invocation ended: kind ok | throttled | error, why, the response body, its REPORT."""

    kind: str
    reason: str
    body: Any = None
    report: dict | None = None


class LambdaInvokeError(OSError):
    """Invoking the executor function failed in a way no retry fixes (translated from botocore)."""

    def __init__(self, function: str, code: str, message: str):
        super().__init__(function, code, message)
        self.function, self.code, self.message = function, code, message

    def __str__(self) -> str:
        hint = {"ResourceNotFoundException": "deploy it with `dagrun lambda deploy --function NAME --role ARN`, "
                                            "or set lambda.function and lambda.region to the deployed one",
                "AccessDeniedException": "the driver's credentials need lambda:InvokeFunction on it"}.get(
                    self.code, "check the function's configuration (`dagrun lambda status`)")
        return f"cannot invoke Lambda function {self.function!r}: {self.code}: {self.message}; {hint}"


class DriverUnreachable(ConnectionError):
    """Executors started but could not connect back to the driver's control address."""

    def __init__(self, address: str, detail: str):
        super().__init__(address, detail)
        self.address, self.detail = address, detail

    def __str__(self) -> str:
        return (f"Lambda executors cannot reach the driver at {self.address} ({self.detail}); set driver_host to "
                "an address the function can reach (the driver in the function's VPC, or a routable address), "
                "and let the function's security group reach it on TCP; see the README section 'Running on AWS Lambda'")


class LambdaBackend:
    name = "lambda"

    def __init__(self, config: Any):
        self.function: str = config.lambda_function
        self.max_executors: int = config.max_executors or 1000
        self.read_timeout = float(config.executor_timeout) + 60
        try:
            self._client = boto3.session.Session(profile_name=config.lambda_profile).client(
                "lambda", region_name=config.lambda_region,
                config=BotoConfig(read_timeout=self.read_timeout, connect_timeout=10,
                                  retries={"total_max_attempts": 1}, max_pool_connections=self.max_executors))
        except NoRegionError as exc:
            raise ValueError("the lambda backend needs a region: set lambda.region (conf or DAGRUN_LAMBDA_REGION) "
                             "or AWS_DEFAULT_REGION") from exc
        except ProfileNotFound as exc:
            raise ValueError(f"setting lambda_profile: no AWS profile {config.lambda_profile!r} in the AWS "
                             "config files; fix lambda.profile (or dagrun run --profile)") from exc
        self.transport = resolve_transport(config)
        self.connects_back = self.transport == "connect"  # the driver listens only for this transport
        endpoint = urlsplit(self._client.meta.endpoint_url).hostname or ""
        if self.connects_back and is_loopback(config.driver_host) and not is_loopback(endpoint):
            raise DriverUnreachable(config.driver_host, f"a loopback address, and Lambda is at {endpoint}")
        self._store_url, self._storage_options = config.store, dict(config.storage_options)
        self._prefixes = config.shuffle_prefixes
        self._memory_mb = config.lambda_memory_mb
        self._slots = 1  # invoke: set from the deployed function's memory at start
        self._stages = None
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._closing = False
        self._unreachable = 0

    def start(self, settings: ExecutorSettings, notify: Notify) -> None:
        self.settings, self.notify = settings, notify
        if not self.connects_back:
            from shuffle.store import BlockStore

            self._slots = lambda_vcpus(self._function_memory())

            self._stages = StageCache(BlockStore(self._store_url, self._storage_options), self._prefixes)
            self._event = {"transport": "invoke", "store": self._store_url, "storage_options": self._storage_options,
                           "prefixes": self._prefixes, "heartbeat": settings.heartbeat_interval}
            return
        host, port = settings.address
        if host in ("0.0.0.0", "::", ""):
            host = _primary_address()  # bound to every interface: advertise the one that routes out
        self._event = {"driver_host": host, "driver_port": port, "secret": settings.secret.hex(),
                       "tls": bool(settings.options.get("tls", not is_loopback(host))),
                       "heartbeat": settings.heartbeat_interval}

    def _function_memory(self) -> int:
        """The deployed function's memory, which sets its vCPUs; lambda.memory_mb when it cannot be read."""
        try:
            memory = self._client.get_function_configuration(FunctionName=self.function).get("MemorySize")
            return int(memory or self._memory_mb)
        except (ClientError, BotoCoreError, ValueError, TypeError):  # no lambda:GetFunctionConfiguration: the setting
            return self._memory_mb

    def capacity(self) -> int:
        return self.max_executors

    def launch(self, executor_ids: Sequence[str]) -> None:
        if not self.connects_back:  # a logical executor: each task it gets is one invocation
            for executor_id in executor_ids:
                self.notify(("attach", executor_id, InvokeConnection(
                    executor_id, invoke=self.invoke_once, event=self._event, stages=self._stages, notify=self._post,
                    heartbeat=self.settings.heartbeat_interval, track=self._track, slots=self._slots)))
            return
        for executor_id in executor_ids:
            thread = threading.Thread(target=self._invoke, args=(executor_id,), daemon=True,
                                      name=f"dagrun-invoke-{executor_id}")
            with self._lock:
                self._threads[executor_id] = thread
            thread.start()

    def kill(self, executor_id: str) -> None:
        """Nothing to do: see the module docstring (the driver closes the channel)."""

    def _track(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = {k: t for k, t in self._threads.items() if t.is_alive() or not t.ident}
            self._threads[thread.name] = thread

    def _post(self, event: tuple) -> None:
        if not (self._closing and event[0] == "exited"):
            self.notify(event)

    def close(self) -> None:
        self._closing = True
        started = time.monotonic()
        deadline = started + _CLOSE_WAIT
        with self._lock:
            threads = [t for t in self._threads.values() if t.is_alive()]
        for thread in threads:  # retired executors return at once; only a longer wait is worth a line
            thread.join(timeout=max(0.0, started + _QUIET_WAIT - time.monotonic()))
        busy = [t for t in threads if t.is_alive()]
        if busy:  # say what the wait is for: Lambda has no way to stop an invocation
            print(f"dagrun: waiting for {len(busy)} Lambda invocation(s) to return (at most {_CLOSE_WAIT:.0f} s) "
                  "before cleaning the store", file=sys.stderr, flush=True)
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._stages is not None:
            self._stages.clear()

    # ---- one invocation --------------------------------------------------------------------

    def _invoke(self, executor_id: str) -> None:
        try:
            reason = self._call(executor_id)
        except Exception as exc:  # noqa: BLE001 - a backend bug must lose the executor, not hang the job
            log.exception("invoking executor %s failed", executor_id)
            reason = f"invoke failed: {exc!r}"
        finally:
            with self._lock:
                self._threads.pop(executor_id, None)
        if not self._closing:
            self.notify(("exited", executor_id, reason))

    def _call(self, executor_id: str) -> str:
        outcome = self.invoke_once(executor_id, json.dumps({**self._event, "executor_id": executor_id}).encode())
        if outcome.report is not None:
            self.notify(("report", executor_id, outcome.report))
        if outcome.kind == "throttled":
            self.notify(("throttled", "lambda"))
            return "throttled"
        if outcome.kind != "ok":
            return outcome.reason
        result = outcome.body
        reason = str(result.get("reason", "returned")) if isinstance(result, dict) else "returned"
        self._count_unreachable(reason)
        return reason

    def invoke_once(self, executor_id: str, payload: bytes) -> "Outcome":
        """One synchronous invocation, its errors sorted into kinds (see the module docstring)."""
        try:
            response = self._client.invoke(FunctionName=self.function, InvocationType="RequestResponse",
                                           LogType="Tail", Payload=payload)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code == "TooManyRequestsException" or status == 429:
                return Outcome("throttled", "throttled")
            if code not in _TRANSIENT and 400 <= status < 500:
                self._fail(LambdaInvokeError(self.function, code, error.get("Message", str(exc))), exc)
            return Outcome("error", f"invoke failed: {code}: {error.get('Message', exc)}")
        except BotoCoreError as exc:  # read timeout, connection dropped or refused
            return Outcome("error", f"invoke failed: {type(exc).__name__}: {exc}")
        body = response["Payload"].read()
        report = parse_report(_decode_log(response.get("LogResult")))
        result = _loads(body)
        if response.get("FunctionError"):
            kind = result.get("errorType", response["FunctionError"]) if isinstance(result, dict) else "?"
            message = result.get("errorMessage", "") if isinstance(result, dict) else body[:200]
            return Outcome("error", f"function error: {kind}: {message}", result, report)
        return Outcome("ok", "returned", result, report)

    def _count_unreachable(self, reason: str) -> None:
        with self._lock:
            self._unreachable = self._unreachable + 1 if reason.startswith("driver unreachable") else 0
            failing = self._unreachable >= _UNREACHABLE_LIMIT
        if failing and not self._closing:
            host, port = self._event["driver_host"], self._event["driver_port"]
            self.notify(("failed", DriverUnreachable(f"{host}:{port}", reason.removeprefix("driver unreachable: "))))

    def _fail(self, error: LambdaInvokeError, cause: BaseException) -> None:
        error.__cause__ = cause
        self.notify(("failed", error))  # the driver fails the running job; with none running it is a no-op


def resolve_transport(config: Any) -> str:
    """``lambda.transport``: "auto" is "connect" for a driver on a routable address, else "invoke"."""
    transport = getattr(config, "lambda_transport", "auto")
    if transport == "auto":
        return "invoke" if is_loopback(config.driver_host) else "connect"
    if transport not in ("invoke", "connect"):
        raise ValueError(f"lambda.transport must be 'invoke', 'connect' or 'auto', got {transport!r}")
    return transport


def parse_report(log_text: str) -> dict | None:
    """The numbers of a Lambda ``REPORT RequestId: ...`` log line, or None when there is none."""
    line = next((ln for ln in reversed(log_text.splitlines()) if ln.startswith("REPORT RequestId:")), None)
    if line is None:
        return None
    out: dict[str, Any] = {"invocations": 1}
    request = re.search(r"RequestId: (\S+)", line)
    if request:
        out["request_id"] = request.group(1)
    for name, (pattern, kind) in _REPORT_FIELDS.items():
        match = re.search(pattern, line)
        if match:
            out[name] = kind(match.group(1))
    return out if "billed_ms" in out else None


def _decode_log(value: str | None) -> str:
    if not value:
        return ""
    try:
        return base64.b64decode(value).decode(errors="replace")
    except ValueError:
        return ""


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def _primary_address() -> str:
    """The local address of the interface that routes outward (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return socket.gethostbyname(socket.gethostname())
