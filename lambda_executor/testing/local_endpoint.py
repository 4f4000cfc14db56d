"""A Lambda-compatible endpoint on 127.0.0.1 that runs functions as Lambda does.

State: the function's settings (handler, timeout, memory, concurrency limit, name), the
extracted deployment package (its task root), the pool of execution environments
(``lambda_executor.testing.environment``: busy ones and frozen idle ones), and the record of
every invocation served: ``invocations`` (one ``Invocation`` each) and ``reports`` (the
REPORT lines returned), so a test can compare what the driver billed with what "Lambda"
reported.

Policy, as AWS Lambda's Invoke API (``POST /2015-03-31/functions/{name}/invocations``,
what boto3's ``invoke`` sends; point boto3 here with ``AWS_ENDPOINT_URL_LAMBDA``):
- Code: the zip ``lambda_executor.packaging`` builds (dagrun's own code, as ``dagrun lambda
  deploy`` uploads it), extracted once per endpoint; the handler's module is added to it when
  the package lacks it (a test's handler), and so is anything in ``code`` (extra files or
  folders).  The package's dependencies come from this interpreter's site-packages, as a
  layer would provide them.  Nothing else of the checkout is on the function's path.
- Each environment runs AWS's runtime interface client (``awslambdaric``) against a Runtime
  API of its own; an invocation goes to the most recently used idle environment, else a new
  one (a cold start: its REPORT line carries ``Init Duration``).  Environments are frozen
  between invocations and reaped after ``idle_seconds`` idle.  ``provisioned`` environments
  are initialized when the endpoint starts (Lambda's provisioned concurrency: no Init
  Duration on their first invocation).
- Concurrency: beyond ``concurrency`` invocations in flight the answer is 429
  ``TooManyRequestsException``, at once, as Lambda's reserved-concurrency limit does.
- Timeout: ``timeout`` seconds after the runtime took the event the environment is killed
  and the answer is a function error (``Sandbox.Timedout``, "Task timed out after X seconds").
- Memory: the RSS of the environment's process tree is sampled every 20 ms (psutil); above
  ``memory_mb`` it is killed and the answer is ``Runtime.OutOfMemory``.  The peak sample is
  "Max Memory Used".  /tmp above ``ephemeral_mb`` after an invocation kills the environment
  too (Lambda would have answered ENOSPC to the write).
- Payloads: a request over 6 MB is refused (413 ``RequestTooLargeException``), a
  response over 6 MB is a function error (``Function.ResponseSizeTooLarge``), as Lambda's.
- Log: START / the invocation's output / END / REPORT, the last 4 KB of it base64-encoded in
  ``X-Amz-Log-Result`` when ``LogType=Tail``.  Duration is from the runtime taking the event
  to its response, and Billed Duration its ceiling in whole milliseconds.
- Function errors answer 200 with ``X-Amz-Function-Error: Unhandled`` and Lambda's payload
  ``{"errorMessage", "errorType", "stackTrace"}``.

Promise: ``serve_in_thread(...)`` starts one in this process (for tests);
``python -m lambda_executor.testing.local_endpoint --port P ...`` runs one and prints its URL.
``close()`` kills every environment.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import importlib.util
import io
import json
import math
import os
import re
import shutil
import signal
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal, Sequence
from urllib.parse import unquote, urlsplit

from lambda_executor.testing.environment import Environment

DEFAULT_HANDLER = "lambda_executor.handler.handler"
_INVOKE = re.compile(r"/2015-03-31/functions/([^/]+)/invocations")
_CONFIG = re.compile(r"/2015-03-31/functions/([^/]+)(/configuration)?")
_TAIL = 4096
PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes, synchronous request and response alike


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
    pid: int = 0  # the execution environment's process
    init_ms: float | None = None  # set on a cold start


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class LocalEndpoint:
    """Serve Lambda's Invoke API for one function; see the module docstring."""

    def __init__(self, handler: str = DEFAULT_HANDLER, *, port: int = 0, timeout: float = 3.0,
                 memory_mb: int = 128, concurrency: int = 10, function: str | None = None,
                 region: str = "us-east-1", python: str = sys.executable, idle_seconds: float = 300.0,
                 provisioned: int = 0, ephemeral_mb: int = 512, code: Sequence[str] = ()):
        self.handler, self.timeout, self.memory_mb = handler, timeout, memory_mb
        self.concurrency, self.function, self.region, self.python = concurrency, function, region, python
        self.idle_seconds, self.ephemeral_mb = idle_seconds, ephemeral_mb
        if importlib.util.find_spec("awslambdaric") is None:
            raise RuntimeError("the local Lambda endpoint runs functions with AWS's runtime interface client: "
                               "pip install awslambdaric (it is in dagrun's dev extra)")
        self.invocations: list[Invocation] = []
        self.reports: list[str] = []
        self.throttled = 0
        self._active = 0
        self._lock = threading.Lock()
        self._work = tempfile.mkdtemp(prefix="dagrun-lambda-")
        self.task_root = _extract_package(self._work, handler, code)
        self.layer = _layer(self._work)
        self._idle: list[Environment] = []
        self._envs: set[Environment] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _HTTPHandler)
        self._server.daemon_threads = True
        self._server.endpoint = self  # type: ignore[attr-defined]
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None
        self._serving = False
        self._closed = threading.Event()
        threading.Thread(target=self._reap, name="dagrun-lambda-reaper", daemon=True).start()
        self._provision(provisioned)

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
        self._closed.set()
        if self._serving:
            self._serving = False
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            envs, self._envs, self._idle = list(self._envs), set(), []
        for env in envs:
            env.kill()
        shutil.rmtree(self._work, ignore_errors=True)

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

    @property
    def environments(self) -> list[int]:
        """The pids of the live execution environments."""
        with self._lock:
            return sorted(e.pid for e in self._envs)

    # ---- the API ---------------------------------------------------------------------------

    def invoke(self, name: str, payload: bytes, invocation_type: str = "RequestResponse",
               log_type: str = "None") -> Reply:
        if self.function is not None and name.rpartition(":")[2] != self.function:
            return _error(404, "ResourceNotFoundException", f"Function not found: {self._arn(name)}")
        if invocation_type == "DryRun":
            return Reply(204, {}, b"")
        if invocation_type not in ("RequestResponse", "Event"):
            return _error(400, "InvalidParameterValueException", f"unknown InvocationType {invocation_type!r}")
        if len(payload) > PAYLOAD_LIMIT:
            return _error(413, "RequestTooLargeException",
                          f"Request must be smaller than {PAYLOAD_LIMIT} bytes for the InvokeFunction operation")
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
        body = {"FunctionName": self.function or name, "FunctionArn": self._arn(name),
                "Runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
                "Handler": self.handler, "Timeout": self.timeout, "MemorySize": self.memory_mb, "State": "Active",
                "Version": "$LATEST", "EphemeralStorage": {"Size": self.ephemeral_mb}}
        return Reply(200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def _arn(self, name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:lambda:{self.region}:123456789012:function:{name}"

    # ---- environments ----------------------------------------------------------------------

    def _new_environment(self) -> Environment:
        env = Environment(python=self.python, task_root=self.task_root, layer=self.layer, handler=self.handler,
                          function=self.function or "local", memory_mb=self.memory_mb, region=self.region,
                          work_dir=self._work, ephemeral_mb=self.ephemeral_mb)
        with self._lock:
            self._envs.add(env)
        return env

    def _provision(self, count: int) -> None:
        envs = [self._new_environment() for _ in range(count)]
        for env in envs:
            if not env.ready.wait(30) or env.init_error is not None:
                raise RuntimeError(f"a provisioned environment did not initialize: {env.init_error!r}")
            env.invocations = 1  # its init is done: its first invocation is not a cold start
            env.freeze()
        with self._lock:
            self._idle.extend(envs)

    def _take(self) -> Environment:
        with self._lock:
            while self._idle:
                env = self._idle.pop()  # the most recently used: Lambda keeps few environments warm
                if env.alive:
                    return env
        return self._new_environment()

    def _give_back(self, env: Environment) -> None:
        if env.alive and env.tmp_bytes() > self.ephemeral_mb << 20:
            env.kill()  # writes past the ephemeral-storage limit would have failed with ENOSPC
        with self._lock:
            if env.alive and not self._closed.is_set():
                self._idle.append(env)
                return
            self._envs.discard(env)
        env.kill()

    def _reap(self) -> None:
        while not self._closed.wait(min(1.0, self.idle_seconds / 4)):
            cutoff = time.time() - self.idle_seconds
            with self._lock:
                old = [e for e in self._idle if e.last_used < cutoff]
                self._idle = [e for e in self._idle if e not in old]
                self._envs.difference_update(old)
            for env in old:
                env.kill()

    # ---- one invocation --------------------------------------------------------------------

    def _run_counted(self, payload: bytes) -> None:
        try:
            self._run(payload, tail=False)
        finally:
            with self._lock:
                self._active -= 1

    def _run(self, payload: bytes, tail: bool) -> Reply:
        request_id = str(uuid.uuid4())
        env = self._take()
        try:
            outcome = env.run(request_id, payload, self.timeout, self._arn(self.function or "local"))
        finally:
            self._give_back(env)
        status, error_type = outcome.status, outcome.error_type
        if status == "ok" and len(outcome.body) > PAYLOAD_LIMIT:
            status, error_type = "error", "Function.ResponseSizeTooLarge"
            body = _function_error(f"Response payload size ({len(outcome.body)} bytes) exceeded maximum allowed "
                                   f"payload size ({PAYLOAD_LIMIT} bytes).", error_type)
        else:
            body, error_type, status = self._outcome(request_id, status, outcome.body, error_type)
        duration_ms = outcome.duration_ms
        billed_ms = math.ceil(duration_ms)
        max_mb = math.ceil(outcome.peak_rss / (1 << 20))
        report = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed_ms} ms\t"
                  f"Memory Size: {self.memory_mb} MB\tMax Memory Used: {max_mb} MB\t")
        if outcome.init_ms is not None:
            report += f"Init Duration: {outcome.init_ms:.2f} ms\t"
        lines = [f"START RequestId: {request_id} Version: $LATEST", outcome.output.rstrip("\n")]
        if status == "timeout":
            lines.append(f"{_now_iso()} {request_id} Task timed out after {self.timeout:.2f} seconds")
        lines += [f"END RequestId: {request_id}", report]
        log_text = "\n".join(line for line in lines if line) + "\n"
        with self._lock:
            self.invocations.append(Invocation(request_id, status, duration_ms, billed_ms, max_mb, error_type, report,
                                               log_text, env.pid, outcome.init_ms))
            self.reports.append(report)
        headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST",
                   "x-amzn-RequestId": request_id}
        if error_type is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if tail:
            headers["X-Amz-Log-Result"] = base64.b64encode(log_text.encode()[-_TAIL:]).decode()
        return Reply(200, headers, body)

    def _outcome(self, request_id: str, status: str, raw: bytes, error_type: str | None) -> tuple[bytes, str | None, str]:
        if status == "timeout":
            return _function_error(f"RequestId: {request_id} Error: Task timed out after {self.timeout:.2f} seconds",
                                   "Sandbox.Timedout"), "Sandbox.Timedout", status
        if status == "oom":
            return _function_error(f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
                                   "Runtime.OutOfMemory"), "Runtime.OutOfMemory", status
        if status == "exit":
            return _function_error(f"RequestId: {request_id} Error: Runtime exited without providing a reason",
                                   "Runtime.ExitError"), "Runtime.ExitError", "error"
        if status == "init-error":
            kind = _error_type_of(raw) or "Runtime.Unknown"
            return raw, kind, "error"
        if status == "error":
            return raw, error_type or _error_type_of(raw) or "Unhandled", "error"
        return raw, None, "ok"


@lru_cache(maxsize=1)
def _package_zip() -> bytes:
    """dagrun's own code as ``dagrun lambda deploy --no-deps`` ships it (built once per process)."""
    from lambda_executor.packaging import build_zip

    return build_zip(with_deps=False)


def _extract_package(work: str, handler: str, code: Sequence[str]) -> str:
    root = os.path.join(work, "task")
    with zipfile.ZipFile(io.BytesIO(_package_zip())) as zf:
        zf.extractall(root)
    for path in code:
        target = os.path.join(root, os.path.basename(os.path.normpath(path)))
        (shutil.copytree if os.path.isdir(path) else shutil.copy2)(path, target)
    module = handler.rpartition(".")[0]
    top = module.partition(".")[0]
    if not os.path.exists(os.path.join(root, top)) and not os.path.exists(os.path.join(root, f"{top}.py")):
        spec = importlib.util.find_spec(top)  # a handler of the caller's own (a test's): deploy it with the package
        if spec is None or spec.origin is None:
            raise ValueError(f"handler module {module!r} is neither in the deployment package nor importable here")
        if spec.submodule_search_locations:
            shutil.copytree(list(spec.submodule_search_locations)[0], os.path.join(root, top))
        else:
            shutil.copy2(spec.origin, os.path.join(root, f"{top}.py"))
    return root


def _layer(work: str) -> str:
    """This interpreter's site-packages under a path of the function's own, as a layer's /opt/python."""
    layer = os.path.join(work, "opt")
    os.mkdir(layer)
    link = os.path.join(layer, "python")
    os.symlink(sysconfig.get_paths()["purelib"], link)
    platlib = sysconfig.get_paths()["platlib"]
    if platlib != sysconfig.get_paths()["purelib"]:
        os.symlink(platlib, os.path.join(layer, "python-platlib"))
        return f"{link}:{os.path.join(layer, 'python-platlib')}"
    return link


def _error_type_of(raw: bytes) -> str | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return str(value.get("errorType")) if isinstance(value, dict) and value.get("errorType") else None


def _function_error(message: str, error_type: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": []}).encode()


def _error(status: int, error_type: str, message: str, **extra: str) -> Reply:
    body = {"Type": "User", "message": message, "__type": error_type, **extra}
    return Reply(status, {"Content-Type": "application/json", "x-amzn-ErrorType": error_type,
                          "x-amzn-RequestId": str(uuid.uuid4())}, json.dumps(body).encode())


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
    parser.add_argument("--idle-seconds", type=float, default=300.0, help="reap environments idle this long")
    parser.add_argument("--provisioned", type=int, default=0, help="environments initialized at start")
    parser.add_argument("--ephemeral-mb", type=int, default=512, help="the /tmp limit of each environment")
    parser.add_argument("--code", action="append", default=[], metavar="PATH",
                        help="a file or folder to add to the deployment package (repeatable)")
    args = parser.parse_args(argv)
    endpoint = LocalEndpoint(args.handler, port=args.port, timeout=args.timeout, memory_mb=args.memory_mb,
                             concurrency=args.concurrency, function=args.function, idle_seconds=args.idle_seconds,
                             provisioned=args.provisioned, ephemeral_mb=args.ephemeral_mb, code=args.code)
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
