"""The local backend: executors are subprocesses running ``python -m scheduler.executor``.

It emulates Lambda's limits: each process gets ``executor_timeout`` seconds of life and is
killed when that runs out (plus a short grace), the way Lambda ends an invocation; each has
its own scratch directory.  A monitor thread per process reports its exit to the driver,
which treats an exit before retirement as a lost executor; an executor's stderr is copied
to the driver's, and its last lines go with the exit reason.

Each process runs in a session of its own (so the terminal's Ctrl-C reaches the driver
only) and is told the driver's pid: it ends itself when the driver dies or its deadline
passes with nobody left to kill it (``scheduler.executor.guard_process``).  ``close`` asks
every process to stop (SIGTERM) and kills the ones still running after five seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from typing import IO, Any, Sequence

from scheduler.backends import ExecutorSettings, Notify

_KILL_GRACE = 0.2  # the process's deadline counts from its launch, as a Lambda invocation's does
_TAIL_LINES = 12


class LocalBackend:
    name = "local"

    def __init__(self, config: Any):
        self.max_executors = config.max_executors or os.cpu_count() or 1
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._closing = False

    def start(self, settings: ExecutorSettings, notify: Notify) -> None:
        self.settings, self.notify = settings, notify
        self._scratch_root = tempfile.mkdtemp(prefix="dagrun-executors-", dir=settings.scratch_dir)

    def capacity(self) -> int:
        return self.max_executors

    def launch(self, executor_ids: Sequence[str]) -> None:
        for executor_id in executor_ids:
            self._spawn(executor_id)

    def _spawn(self, executor_id: str) -> None:
        s = self.settings
        scratch = os.path.join(self._scratch_root, executor_id)
        os.makedirs(scratch, exist_ok=True)
        # -P: the working directory is not put first on the path, so a user's scheduler.py or
        # shuffle.py next to the script never stands in for dagrun's packages
        cmd = [sys.executable, "-P", "-m", "scheduler.executor", "--driver", f"{s.address[0]}:{s.address[1]}",
               "--executor-id", executor_id, "--deadline", repr(time.time() + s.executor_timeout),
               "--parent-pid", str(os.getpid()),
               "--heartbeat", str(s.heartbeat_interval), "--scratch", scratch,
               *(arg for module in s.preload for arg in ("--preload", module))]
        env = {**os.environ, "DAGRUN_SECRET": s.secret.hex(), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": executor_path()}
        # a session of its own: Ctrl-C in the terminal reaches the driver only, which ends it
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno()
                                if _has_fileno(sys.stderr) else None, stderr=subprocess.PIPE,
                                start_new_session=True)
        with self._lock:
            self._procs[executor_id] = proc
        # the last lines of its stderr, so an executor that dies says why in the driver's error
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        tee = threading.Thread(target=_tee, args=(proc.stderr, tail), daemon=True, name=f"dagrun-stderr-{executor_id}")
        tee.start()
        threading.Thread(target=self._watch, args=(executor_id, proc, scratch, tee, tail), daemon=True,
                         name=f"dagrun-watch-{executor_id}").start()

    def _watch(self, executor_id: str, proc: subprocess.Popen, scratch: str, tee: threading.Thread,
               tail: deque) -> None:
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

    def pid(self, executor_id: str) -> int | None:
        with self._lock:
            proc = self._procs.get(executor_id)
        return proc.pid if proc else None

    def kill(self, executor_id: str) -> None:
        with self._lock:
            proc = self._procs.get(executor_id)
        if proc is not None and proc.poll() is None:
            proc.kill()

    def close(self) -> None:
        self._closing = True
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self._scratch_root, ignore_errors=True)


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
