"""One Lambda execution environment of the local endpoint: AWS's runtime client in a process.

State: the process (``python -S -m awslambdaric HANDLER`` in its own session), the Runtime
API server it polls (one per environment, on 127.0.0.1, as each Lambda sandbox has its own),
the invocation handed to it (at most one), its /tmp (``TMPDIR``), its log file, and when
it was spawned, initialized and last used.

Policy, as Lambda runs a function:
- The code is the extracted deployment package (``LAMBDA_TASK_ROOT``) and the runtime's
  libraries (``layer``, this interpreter's site-packages seen through a path of its own, as
  /opt/python): ``-S`` keeps ``.pth`` files (an editable install of a checkout) out, so the
  package is the only project code on the path.
- Runtime API (``/2018-06-01/runtime/...``): ``GET invocation/next`` blocks until an
  invocation is handed over; ``POST invocation/{id}/response`` and ``.../error`` end it;
  ``POST init/error`` marks the environment failed (the process then exits).
- Between invocations the process group is frozen (SIGSTOP) and thawed (SIGCONT) for the
  next one, so nothing runs in the background, as in Lambda; /tmp, module state and
  threads survive.  Init Duration is the time from spawn to the first ``next``.
- Output goes to a file, so once the runtime asks for the next event everything the
  invocation printed is in it (stdout is unbuffered under awslambdaric).

Promise: ``run`` returns one ``Outcome`` per invocation and never hangs past the deadline:
a timeout, the memory limit (RSS of the process tree above ``memory_mb``) or a dead process
ends it, and such an environment is killed (``alive`` turns False).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_SAMPLE = 0.02
_INIT_LIMIT = 10.0  # seconds Lambda allows a runtime to initialize
_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
_NEXT = "/2018-06-01/runtime/invocation/next"


@dataclass
class Outcome:
    status: str  # ok | error | timeout | oom | exit | init-error
    body: bytes
    output: str
    peak_rss: int
    duration_ms: float
    init_ms: float | None  # set on a cold start only
    error_type: str | None = None


class _Pending:
    def __init__(self, request_id: str, payload: bytes, timeout: float, arn: str):
        self.request_id, self.payload, self.timeout, self.arn = request_id, payload, timeout, arn
        self.handed: float | None = None
        self.done = threading.Event()
        self.status: str | None = None
        self.body = b""
        self.error_type: str | None = None


class Environment:
    """One execution environment; see the module docstring."""

    def __init__(self, *, python: str, task_root: str, layer: str, handler: str, function: str, memory_mb: int,
                 region: str, work_dir: str, ephemeral_mb: int = 512):
        self.memory_mb, self.ephemeral_mb = memory_mb, ephemeral_mb
        self.dir = tempfile.mkdtemp(prefix="env-", dir=work_dir)
        self.tmp = os.path.join(self.dir, "tmp")
        os.mkdir(self.tmp)
        self.log_path = os.path.join(self.dir, "log")
        self._next: queue.Queue[_Pending | None] = queue.Queue()
        self._current: _Pending | None = None
        self._lock = threading.Lock()
        self.next_calls = 0
        self.init_error: bytes | None = None
        self.invocations = 0
        self.alive = True
        self.frozen = False
        self.ready = threading.Event()
        self.init_ms: float | None = None
        self.server = _QuietServer(("127.0.0.1", 0), _RuntimeAPI)
        self.server.daemon_threads = True
        self.server.environment = self  # type: ignore[attr-defined]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                         name="dagrun-runtime-api").start()
        env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        env.update({k: v for k, v in os.environ.items() if k.startswith(("AWS_", "DAGRUN_"))})
        env.pop("AWS_ENDPOINT_URL_LAMBDA", None)
        env.update({"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.server.server_address[1]}",
                    "LAMBDA_TASK_ROOT": task_root, "LAMBDA_RUNTIME_DIR": layer, "PYTHONPATH": f"{task_root}:{layer}",
                    "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": self.tmp,
                    "AWS_LAMBDA_FUNCTION_NAME": function, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
                    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
                    "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
                    "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
                    "AWS_LAMBDA_LOG_STREAM_NAME": os.path.basename(self.dir)})
        self.spawned = self.last_used = time.time()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([python, "-S", "-m", "awslambdaric", handler], cwd=task_root, env=env,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self, request_id: str, payload: bytes, timeout: float, arn: str) -> Outcome:
        """Hand one invocation to the runtime and wait for its end (see the module docstring)."""
        cold = self.invocations == 0
        self.invocations += 1
        mark = os.path.getsize(self.log_path)
        pending = _Pending(request_id, payload, timeout, arn)
        with self._lock:
            self._current = pending
        self.thaw()
        self._next.put(pending)
        calls = self.next_calls
        started = time.time()
        peak, status = self._watch(pending)
        if pending.handed is not None:
            started = pending.handed
        duration_ms = round((time.time() - started) * 1000, 2)
        if status in ("ok", "error"):
            self._settle(calls)
        else:
            _signal_group(self.proc, signal.SIGKILL)  # stop it before its log is read; kill() cleans up
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            output = f.read().decode(errors="replace")
        if status not in ("ok", "error"):
            self.kill()
        self.last_used = time.time()
        with self._lock:
            self._current = None
        init_ms = self.init_ms if cold else None
        return Outcome(status, pending.body, output, peak, duration_ms, init_ms, pending.error_type)

    def _watch(self, pending: _Pending) -> tuple[int, str]:
        limit, peak = self.memory_mb << 20, 0
        while True:
            peak = max(peak, _tree_rss(self.proc.pid))  # sampled at least once, however short the invocation
            if pending.done.wait(_SAMPLE):
                return peak, pending.status or "ok"
            if peak > limit:
                return peak, "oom"
            if self.init_error is not None:
                pending.body = self.init_error
                return peak, "init-error"
            if self.proc.poll() is not None:
                return peak, "exit"
            now = time.time()
            if pending.handed is None and now - self.spawned > max(_INIT_LIMIT, pending.timeout):
                return peak, "timeout"
            if pending.handed is not None and now - pending.handed >= pending.timeout:
                return peak, "timeout"

    def _settle(self, calls: int) -> None:
        """Wait (briefly) for the runtime to ask for its next event, then freeze it there."""
        deadline = time.time() + 2.0
        while self.next_calls <= calls and self.proc.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        self.freeze()

    def freeze(self) -> None:
        if self.alive and not self.frozen:
            _signal_group(self.proc, signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            _signal_group(self.proc, signal.SIGCONT)
            self.frozen = False

    def kill(self) -> None:
        if not self.alive:
            return
        self.alive = False
        _signal_group(self.proc, signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._next.put(None)  # a blocked ``next`` handler returns
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def tmp_bytes(self) -> int:
        total = 0
        for root, _, files in os.walk(self.tmp):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        return total

    # ---- the Runtime API, called from the server's threads ----------------------------------

    def on_next(self) -> _Pending | None:
        if self.init_ms is None:
            self.init_ms = round((time.time() - self.spawned) * 1000, 2)
            self.ready.set()
        self.next_calls += 1
        pending = self._next.get()
        if pending is not None:
            pending.handed = time.time()
        return pending

    def on_end(self, request_id: str, status: str, body: bytes, error_type: str | None) -> bool:
        with self._lock:
            pending = self._current
        if pending is None or pending.request_id != request_id or pending.done.is_set():
            return False
        pending.status, pending.body, pending.error_type = status, body, error_type
        pending.done.set()
        return True

    def on_init_error(self, body: bytes) -> None:
        self.init_error = body or b'{"errorType": "Runtime.Unknown", "errorMessage": "init failed"}'
        self.ready.set()


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
    except psutil.Error:
        return 0


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # the runtime's connection drops when its environment is killed: expected, not news


class _RuntimeAPI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the runtime client keeps its connection alive
    server_version = "dagrun-local-lambda-runtime"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        env: Environment = self.server.environment  # type: ignore[attr-defined]
        if self.path != _NEXT:
            self._reply(404, b'{"errorMessage": "not found"}')
            return
        pending = env.on_next()
        if pending is None:  # the environment is going away
            self._reply(500, b'{"errorMessage": "shutting down"}')
            return
        deadline_ms = int((pending.handed + pending.timeout) * 1000)
        self._reply(200, pending.payload, {"Lambda-Runtime-Aws-Request-Id": pending.request_id,
                                           "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                                           "Lambda-Runtime-Invoked-Function-Arn": pending.arn,
                                           "Lambda-Runtime-Trace-Id": f"Root=1-{pending.request_id[:8]}"})

    def do_POST(self) -> None:  # noqa: N802
        env: Environment = self.server.environment  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = self.path.strip("/").split("/")
        if parts[-2:] == ["init", "error"]:
            env.on_init_error(body)
            self._reply(202, b'{"status": "OK"}')
            return
        if len(parts) == 5 and parts[2] == "invocation" and parts[4] in ("response", "error"):
            error_type = None
            if parts[4] == "error":
                error_type = self.headers.get("Lambda-Runtime-Function-Error-Type") or _error_type(body)
            ok = env.on_end(parts[3], "ok" if parts[4] == "response" else "error", body, error_type)
            self._reply(202 if ok else 400, b'{"status": "OK"}' if ok else b'{"errorMessage": "unknown request"}')
            return
        self._reply(404, b'{"errorMessage": "not found"}')

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
        pass


def _error_type(body: bytes) -> str:
    try:
        return str(json.loads(body).get("errorType", "Unhandled"))
    except (ValueError, AttributeError):
        return "Unhandled"
