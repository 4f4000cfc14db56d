"""A Lambda-compatible endpoint on 127.0.0.1 that runs the real handler in subprocesses.

State: the function's settings (handler, timeout, memory, concurrency limit, name), the
invocations in flight, and the record of every invocation served: ``invocations`` (one
``Invocation`` each) and ``reports`` (the REPORT lines returned), so a test can compare
what the driver billed with what "Lambda" reported.

Policy, as AWS Lambda's Invoke API (``POST /2015-03-31/functions/{name}/invocations``,
what boto3's ``invoke`` sends; point boto3 here with ``AWS_ENDPOINT_URL_LAMBDA``):
- Each invocation runs ``python -m lambda_executor.testing.local_runtime`` with the event on stdin.
- Concurrency: beyond ``concurrency`` invocations in flight the answer is 429
  ``TooManyRequestsException``, at once, as Lambda's reserved-concurrency limit does.
- Timeout: at ``timeout`` seconds after the invocation started the process group is
  killed and the answer is a function error (``Sandbox.Timedout``, "Task timed out after
  X seconds").
- Memory: the process's RSS is sampled every 20 ms (psutil); above ``memory_mb`` it is
  killed and the answer is ``Runtime.OutOfMemory``.  The peak sample is "Max Memory Used".
- Log: START / the process's output / END / REPORT, the last 4 KB of it base64-encoded in
  ``X-Amz-Log-Result`` when ``LogType=Tail``.  Duration is the process's wall time, and
  Billed Duration its ceiling in whole milliseconds (Lambda bills by the millisecond).
- Function errors answer 200 with ``X-Amz-Function-Error: Unhandled`` and Lambda's payload
  ``{"errorMessage", "errorType", "stackTrace"}``.

Promise: ``serve_in_thread(...)`` starts one in this process (for tests);
``python -m lambda_executor.testing.local_endpoint --port P ...`` runs one and prints its URL.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import unquote, urlsplit

DEFAULT_HANDLER = "lambda_executor.handler.handler"
_INVOKE = re.compile(r"/2015-03-31/functions/([^/]+)/invocations")
_CONFIG = re.compile(r"/2015-03-31/functions/([^/]+)(/configuration)?")
_SAMPLE = 0.02
_TAIL = 4096


@dataclass(frozen=True)
class Invocation:
    request_id: str
    status: Literal["ok", "error", "timeout", "oom"]
    duration_ms: float
    billed_ms: int
    max_memory_mb: int
    error_type: str | None
    report: str
    log: str  # the whole log, of which the caller got the last 4 KB


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class LocalEndpoint:
    """Serve Lambda's Invoke API for one function; see the module docstring."""

    def __init__(self, handler: str = DEFAULT_HANDLER, *, port: int = 0, timeout: float = 3.0,
                 memory_mb: int = 128, concurrency: int = 10, function: str | None = None,
                 region: str = "us-east-1", python: str = sys.executable):
        self.handler, self.timeout, self.memory_mb = handler, timeout, memory_mb
        self.concurrency, self.function, self.region, self.python = concurrency, function, region, python
        self.invocations: list[Invocation] = []
        self.reports: list[str] = []
        self.throttled = 0
        self._active = 0
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _HTTPHandler)
        self._server.daemon_threads = True
        self._server.endpoint = self  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None
        self._serving = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LocalEndpoint":
        """Serve on a daemon thread of this process."""
        self._serving = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="dagrun-lambda-endpoint", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until ``close`` (or KeyboardInterrupt)."""
        self._serving = True
        self._server.serve_forever(poll_interval=0.1)

    def close(self) -> None:
        if self._serving:
            self._serving = False
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            _kill(proc)

    def __enter__(self) -> "LocalEndpoint":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._active

    @property
    def billed_ms(self) -> int:
        with self._lock:
            return sum(i.billed_ms for i in self.invocations)

    # ---- the API ---------------------------------------------------------------------------

    def invoke(self, name: str, payload: bytes, invocation_type: str = "RequestResponse",
               log_type: str = "None") -> Reply:
        if self.function is not None and name.rpartition(":")[2] != self.function:
            return _error(404, "ResourceNotFoundException", f"Function not found: {self._arn(name)}")
        if invocation_type == "DryRun":
            return Reply(204, {}, b"")
        if invocation_type not in ("RequestResponse", "Event"):
            return _error(400, "InvalidParameterValueException", f"unknown InvocationType {invocation_type!r}")
        with self._lock:
            if self._active >= self.concurrency:
                self.throttled += 1
                return _error(429, "TooManyRequestsException", "Rate Exceeded.",
                              Reason="ReservedFunctionConcurrentInvocationLimitExceeded")
            self._active += 1
        if invocation_type == "Event":
            threading.Thread(target=self._run_counted, args=(payload,), daemon=True).start()
            return Reply(202, {}, b"")
        try:
            return self._run(payload, tail=log_type == "Tail")
        finally:
            with self._lock:
                self._active -= 1

    def configuration(self, name: str) -> Reply:
        body = {"FunctionName": self.function or name, "FunctionArn": self._arn(name), "Runtime": "python3.11",
                "Handler": self.handler, "Timeout": self.timeout, "MemorySize": self.memory_mb, "State": "Active",
                "Version": "$LATEST"}
        return Reply(200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def _arn(self, name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:lambda:{self.region}:123456789012:function:{name}"

    # ---- one invocation --------------------------------------------------------------------

    def _run_counted(self, payload: bytes) -> None:
        try:
            self._run(payload, tail=False)
        finally:
            with self._lock:
                self._active -= 1

    def _run(self, payload: bytes, tail: bool) -> Reply:
        request_id = str(uuid.uuid4())
        with tempfile.TemporaryDirectory(prefix="dagrun-lambda-") as tmp:
            event_path, result_path, log_path = (os.path.join(tmp, n) for n in ("event.json", "result.json", "log"))
            with open(event_path, "wb") as f:
                f.write(payload)
            started = time.time()
            deadline = started + self.timeout
            cmd = [self.python, "-m", "lambda_executor.testing.local_runtime", "--handler", self.handler,
                   "--request-id", request_id, "--function", self.function or "local", "--memory-mb",
                   str(self.memory_mb), "--deadline", repr(deadline), "--region", self.region, "--result", result_path]
            with open(event_path, "rb") as stdin, open(log_path, "wb") as log:
                proc = subprocess.Popen(cmd, stdin=stdin, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                                        start_new_session=True)
                with self._lock:
                    self._procs.add(proc)
                try:
                    status, peak = self._watch(proc, deadline)
                finally:
                    with self._lock:
                        self._procs.discard(proc)
            duration_ms = round((time.time() - started) * 1000, 2)
            with open(log_path, "rb") as f:
                output = f.read().decode(errors="replace")
            outcome = _read_json(result_path)
        body, error_type, status = self._outcome(request_id, status, proc.returncode, outcome)
        billed_ms = math.ceil(duration_ms)
        max_mb = math.ceil(peak / (1 << 20))
        report = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed_ms} ms\t"
                  f"Memory Size: {self.memory_mb} MB\tMax Memory Used: {max_mb} MB\t")
        lines = [f"START RequestId: {request_id} Version: $LATEST", output.rstrip("\n")]
        if status == "timeout":
            lines.append(f"{_now_iso()} {request_id} Task timed out after {self.timeout:.2f} seconds")
        lines += [f"END RequestId: {request_id}", report]
        log_text = "\n".join(line for line in lines if line) + "\n"
        with self._lock:
            self.invocations.append(Invocation(request_id, status, duration_ms, billed_ms, max_mb, error_type, report,
                                                log_text))
            self.reports.append(report)
        headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST",
                   "x-amzn-RequestId": request_id}
        if error_type is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if tail:
            headers["X-Amz-Log-Result"] = base64.b64encode(log_text.encode()[-_TAIL:]).decode()
        return Reply(200, headers, json.dumps(body).encode())

    def _watch(self, proc: subprocess.Popen, deadline: float) -> tuple[str, int]:
        """Wait for the process, sampling its RSS; kill it at the deadline or over the memory limit."""
        import psutil

        limit, peak = self.memory_mb << 20, 0
        try:
            watched = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            watched = None
        while True:
            if watched is not None:
                try:
                    peak = max(peak, watched.memory_info().rss)
                except psutil.Error:
                    watched = None
            if peak > limit:
                _kill(proc)
                return "oom", peak
            try:
                proc.wait(timeout=max(0.0, min(_SAMPLE, deadline - time.time())))
                return "ok", peak
            except subprocess.TimeoutExpired:
                pass
            if time.time() >= deadline:
                _kill(proc)
                return "timeout", peak

    def _outcome(self, request_id: str, status: str, code: int | None, outcome: dict | None) -> tuple[dict, str | None, str]:
        if status == "timeout":
            return _function_error(f"RequestId: {request_id} Error: Task timed out after {self.timeout:.2f} seconds",
                                   "Sandbox.Timedout"), "Sandbox.Timedout", status
        if status == "oom":
            return _function_error(f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
                                   "Runtime.OutOfMemory"), "Runtime.OutOfMemory", status
        if outcome is None:
            how = f"signal: {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
            return _function_error(f"RequestId: {request_id} Error: Runtime exited with error: {how}",
                                   "Runtime.ExitError"), "Runtime.ExitError", "error"
        if "payload" in outcome:
            return outcome["payload"], None, "ok"
        return outcome, outcome.get("errorType", "Unhandled"), "error"

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "AWS_LAMBDA_FUNCTION_NAME": self.function or "local",
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb), "AWS_REGION": self.region}
        # the endpoint's sys.path (a checkout, a test's rootdir) must reach the function too
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
        return env


def _function_error(message: str, error_type: str) -> dict:
    return {"errorMessage": message, "errorType": error_type, "stackTrace": []}


def _error(status: int, error_type: str, message: str, **extra: str) -> Reply:
    body = {"Type": "User", "message": message, "__type": error_type, **extra}
    return Reply(status, {"Content-Type": "application/json", "x-amzn-ErrorType": error_type,
                          "x-amzn-RequestId": str(uuid.uuid4())}, json.dumps(body).encode())


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # boto3 keeps its connections alive
    server_version = "dagrun-local-lambda"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = _INVOKE.fullmatch(urlsplit(self.path).path)
        if match is None:
            self._send(_error(404, "UnknownOperationException", f"not served here: POST {self.path}"))
            return
        endpoint: LocalEndpoint = self.server.endpoint  # type: ignore[attr-defined]
        self._send(endpoint.invoke(unquote(match.group(1)), payload,
                                   self.headers.get("X-Amz-Invocation-Type", "RequestResponse"),
                                   self.headers.get("X-Amz-Log-Type", "None")))

    def do_GET(self) -> None:  # noqa: N802
        match = _CONFIG.fullmatch(urlsplit(self.path).path)
        if match is None:
            self._send(_error(404, "UnknownOperationException", f"not served here: GET {self.path}"))
            return
        self._send(self.server.endpoint.configuration(unquote(match.group(1))))  # type: ignore[attr-defined]

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: the tests' output stays readable
        pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_in_thread(handler: str = DEFAULT_HANDLER, **settings) -> LocalEndpoint:
    """Start an endpoint on a free port in a thread of this process; ``close()`` it when done."""
    return LocalEndpoint(handler, **settings).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambda_executor.testing.local_endpoint",
                                     description="a Lambda-compatible Invoke endpoint on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--handler", default=DEFAULT_HANDLER)
    parser.add_argument("--timeout", type=float, default=900.0, help="the function's timeout, seconds")
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=10, help="invocations in flight before 429")
    parser.add_argument("--function", default=None, help="the only function name served (default: any)")
    args = parser.parse_args(argv)
    endpoint = LocalEndpoint(args.handler, port=args.port, timeout=args.timeout, memory_mb=args.memory_mb,
                             concurrency=args.concurrency, function=args.function)
    print(f"dagrun local Lambda endpoint listening on {endpoint.url}", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # terminate like Ctrl-C: in-flight invocations are killed too
    try:
        endpoint.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
