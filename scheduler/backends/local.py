"""The local backend: executors are subprocesses running ``python -m scheduler.executor``.

State: the warm pool (processes started ahead of need, their imports done or under way,
waiting on stdin for an assignment), the assigned processes by executor id, and per
process the last lines of its stderr.

Policy: ``start`` (when the driver starts, which the Context does as it is created) fills the
pool with ``min(capacity, cpu_count)`` processes, so Python's start-up and the task runtime's
imports run while the driver is still importing and planning.  ``launch`` hands each executor
id to a pool process, or starts one when the pool is empty (the pool is not refilled: later
executors start cold, as before).  The assignment (driver address, id, deadline, scratch
folder, secret) goes down the process's stdin, so the secret is never in its environment.

It emulates Lambda's limits: each executor gets ``executor_timeout`` seconds of life from
its assignment (the invocation; time spent warm before it is not billed) and is killed when
that runs out (plus a short grace), the way Lambda ends an invocation; each has its own
scratch directory.  A monitor thread per assigned process reports its exit to the driver,
which treats an exit before retirement as a lost executor; an executor's stderr is copied
to the driver's, and its last lines go with the exit reason.  A pool process that died
while warm (a broken interpreter) is still assigned, so its exit and its own words reach
the driver exactly as a cold start's would.

Each process runs in a session of its own (so the terminal's Ctrl-C reaches the driver
only) and is told the driver's pid: it ends itself when the driver dies or its deadline
passes with nobody left to kill it (``scheduler.executor.guard_process``).  ``close`` asks
every process, warm or assigned, to stop (SIGTERM) and kills the ones still running after
five seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Any, Sequence

from scheduler.backends import ExecutorSettings, Notify
from shuffle.owned_dirs import owned_dir, remove_owned

_KILL_GRACE = 0.2  # the process's deadline counts from its assignment, as a Lambda invocation's does
_TAIL_LINES = 12


@dataclass
class _Process:
    proc: subprocess.Popen
    tail: deque
    tee: threading.Thread


class LocalBackend:
    name = "local"
    warm_start = True  # start the driver (and so this pool) with the Context, not at its first job

    def __init__(self, config: Any):
        self.max_executors = config.max_executors or os.cpu_count() or 1
        self._pool_size = min(self.max_executors, os.cpu_count() or 1)
        self._warm: deque[_Process] = deque()
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._closing = False

    def start(self, settings: ExecutorSettings, notify: Notify) -> None:
        self.settings, self.notify = settings, notify
        self._scratch_root = owned_dir("dagrun-executors-", settings.scratch_dir)
        warm = [self._spawn() for _ in range(self._pool_size)]
        with self._lock:
            self._warm.extend(warm)

    def capacity(self) -> int:
        return self.max_executors

    def launch(self, executor_ids: Sequence[str]) -> None:
        for executor_id in executor_ids:
            with self._lock:
                process = self._warm.popleft() if self._warm else None
            self._assign(process or self._spawn(), executor_id)

    def _spawn(self) -> _Process:
        s = self.settings
        # -P: the working directory is not put first on the path, so a user's scheduler.py or
        # shuffle.py next to the script never stands in for dagrun's packages
        preload = [m for m in s.preload if not m.endswith("?")]
        optional = [m[:-1] for m in s.preload if m.endswith("?")]
        cmd = [sys.executable, "-P", "-m", "scheduler.executor", "--parent-pid", str(os.getpid()),
               *(arg for module in preload for arg in ("--preload", module)),
               *(arg for module in optional for arg in ("--warm", module))]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": executor_path()}
        env.pop("DAGRUN_SECRET", None)
        # a session of its own: Ctrl-C in the terminal reaches the driver only, which ends it
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=sys.stderr.fileno()
                                if _has_fileno(sys.stderr) else None, stderr=subprocess.PIPE,
                                start_new_session=True)
        # the last lines of its stderr, so an executor that dies says why in the driver's error
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        tee = threading.Thread(target=_tee, args=(proc.stderr, tail), daemon=True, name=f"dagrun-stderr-{proc.pid}")
        tee.start()
        return _Process(proc, tail, tee)

    def _assign(self, process: _Process, executor_id: str) -> None:
        s = self.settings
        scratch = os.path.join(self._scratch_root, executor_id)
        os.makedirs(scratch, exist_ok=True)
        assignment = {"driver": f"{s.address[0]}:{s.address[1]}", "executor_id": executor_id,
                      "deadline": time.time() + s.executor_timeout, "heartbeat": s.heartbeat_interval,
                      "scratch": scratch, "secret": s.secret.hex()}
        with self._lock:
            self._procs[executor_id] = process.proc
        try:
            process.proc.stdin.write(json.dumps(assignment).encode() + b"\n")
            process.proc.stdin.close()
        except OSError:
            pass  # it died while warm: the monitor reports its exit and last words
        threading.Thread(target=self._watch, args=(executor_id, process, scratch), daemon=True,
                         name=f"dagrun-watch-{executor_id}").start()

    def _watch(self, executor_id: str, process: _Process, scratch: str) -> None:
        proc, tee, tail = process.proc, process.tee, process.tail
        try:
            code = proc.wait(timeout=self.settings.executor_timeout + _KILL_GRACE)
            reason = "exited" if code == 0 else f"exited with code {code}"
            if code != 0:
                tee.join(1.0)
                if tail:
                    reason += ": " + "".join(tail).strip()
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            reason = f"killed at its deadline ({self.settings.executor_timeout:g}s)"
        with self._lock:
            self._procs.pop(executor_id, None)
        shutil.rmtree(scratch, ignore_errors=True)
        if not self._closing:
            self.notify(("exited", executor_id, reason))

    def kill(self, executor_id: str) -> None:
        with self._lock:
            proc = self._procs.get(executor_id)
        if proc is not None and proc.poll() is None:
            proc.kill()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            procs = [*self._procs.values(), *(p.proc for p in self._warm)]
            self._warm.clear()
        _stop(procs)
        remove_owned(self._scratch_root)


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process, then SIGKILL what is still running after five seconds."""
    for proc in procs:
        if proc.stdin is not None and not proc.stdin.closed:
            try:
                proc.stdin.close()  # a warm process waiting for work reads EOF and exits by itself
            except OSError:
                pass
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _tee(stream: IO[bytes], tail: deque) -> None:
    """Copy an executor's stderr to ours as it comes, keeping its last lines."""
    out = getattr(sys.stderr, "buffer", None)
    for line in iter(stream.readline, b""):
        tail.append(line.decode(errors="replace"))
        try:
            if out is not None:
                out.write(line)
                out.flush()
            else:
                sys.stderr.write(line.decode(errors="replace"))
        except (OSError, ValueError):
            pass  # our stderr is gone; keep reading so the executor never blocks on a full pipe
    stream.close()


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def executor_path() -> str:
    """PYTHONPATH for an executor: where dagrun is installed first, then the driver's path.

    The driver's path carries what the user's functions import by reference (a checkout, a
    notebook's folder), but after dagrun's own packages, so a user's module named like one of
    them never shadows it.
    """
    install_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    entries = [install_root, *(os.path.abspath(p) for p in sys.path if p)]
    return os.pathsep.join(dict.fromkeys(entries))
