"""The executor loop: one runtime for every backend.

State: the connection to the driver, a cache of deserialized stages (by ``stage_key``), and
the executor's deadline.

Policy: register with the remaining lifetime, then pull tasks until told to retire or the
driver goes away.  Each task runs through the runner named in the task (a dotted path, given by the
planner).  A heartbeat thread reports liveness every
``heartbeat_interval`` seconds while tasks run.  Failures are classified before they cross
the channel: a ``FetchFailed`` becomes kind ``fetch`` naming the lost map outputs; anything
else is a task ``error`` with its traceback.

Promise: the same loop runs in a local subprocess (``python -m scheduler.executor``, also ``python -m lambda_executor.worker``), in
a Lambda invocation (``lambda_executor.handler``) and in a thread of the driver (inline).

Start-up of a local process: it imports the task runtime (``--preload``) first, then either
connects at once (``--driver``, the secret in ``DAGRUN_SECRET``) or, started ahead of need by
the local backend's warm pool, waits for its assignment on stdin: one JSON line naming the
driver, its id, deadline, scratch folder and the secret.  While nothing has arrived it imports
the optional modules (``--warm``, e.g. numpy), so an idle wait is not wasted and a job that is
already waiting is not held up by them.  EOF on stdin means the pool closed: exit quietly.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import pickle
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable

from scheduler.build import build_id
from scheduler.results import TaskValue
from scheduler.wire.channel import ChannelClosed, Connection, connect
from scheduler.wire.messages import Heartbeat, Register, RemoteError, RunTask, Shutdown, TaskMetrics, TaskResult
from scheduler.slots import serve_in_slots
from shuffle.errors import FetchFailed


class ExecutorEnv:
    """What a runner may use: the executor's id, scratch directory and stage cache."""

    def __init__(self, executor_id: str, scratch_dir: str, remaining: Callable[[], float | None],
                 can_exit: bool = False):
        self.executor_id = executor_id
        self.can_exit = can_exit  # a process of its own, so a simulated crash may really exit
        self.scratch_dir = scratch_dir
        self.remaining = remaining
        self.stage_cache: dict[str, Any] = {}
        self.metrics: dict[str, Any] = {}


def run_executor(conn: Connection, executor_id: str, *, remaining: Callable[[], float | None],
                 heartbeat_interval: float = 2.0, scratch_dir: str | None = None, can_exit: bool = False,
                 slots: int = 1) -> str:
    """Serve tasks over ``conn`` until retired, ``slots`` at once (``scheduler.slots``); return why it ended."""
    own_scratch = scratch_dir is None
    scratch = scratch_dir or tempfile.mkdtemp(prefix=f"dagrun-{executor_id}-")
    env = ExecutorEnv(executor_id, scratch, remaining, can_exit)
    stop = threading.Event()
    try:
        conn.send(Register(executor_id, remaining(), os.getpid(), socket.gethostname(), slots, build_id()))
        beat = threading.Thread(target=_heartbeat, args=(conn, executor_id, heartbeat_interval, stop),
                                name=f"dagrun-heartbeat-{executor_id}", daemon=True)
        if slots > 1:  # the slot processes fork before the heartbeat thread starts
            return serve_in_slots(conn, env, slots, execute, on_ready=beat.start)
        beat.start()
        while True:
            message = conn.recv()
            if isinstance(message, Shutdown):
                return f"retired: {message.reason}"
            if isinstance(message, RunTask):
                conn.send(execute(message, env))
    except ChannelClosed:
        return "driver closed the channel"
    except BaseException as exc:
        if type(exc).__name__ == "SimulatedCrash":  # injected: drop the channel like a dead process
            return "crashed (injected)"
        raise
    finally:
        stop.set()
        conn.close()
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def execute(task: RunTask, env: ExecutorEnv) -> TaskResult:
    """Run one task and wrap its value or its classified failure in a ``TaskResult``."""
    started = time.time()
    env.metrics = {}
    value, error = None, None
    try:
        runner = _resolve(task.runner)
        value = runner(task, env)
    except FetchFailed as exc:
        error = RemoteError(type(exc).__name__, str(exc), traceback.format_exc(), "fetch",
                            exc.shuffle_id, tuple(exc.map_ids), _picklable(exc))
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every task failure is reported, never swallowed
        error = RemoteError(type(exc).__name__, _explain(exc), traceback.format_exc(), "error",
                            exception=_picklable(exc))
    metrics = TaskMetrics(started=started, finished=time.time(), peak_rss=_peak_rss(), **env.metrics)
    result = TaskResult(env.executor_id, task.job_id, task.stage_id, task.partition, task.attempt,
                        value, error, metrics)
    return _ensure_picklable(result)


def _explain(exc: BaseException) -> str:
    """The failure's message, with how to fix it when the executor lacks a module the job needs."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return str(exc)
    return (f"{exc} (on executor host {socket.gethostname()}): the task needs module {exc.name!r}, which this "
            f"executor cannot import. If it is your own code, dagrun ships modules loaded from outside "
            f"site-packages by value: import {exc.name.partition('.')[0]!r} in the driver script before running "
            f"the job, or add its file with add_py_file (addPyFile). If it is an installed package, add it to the executor's environment (for Lambda: "
            f"`dagrun lambda deploy --requirements requirements.txt`).")


def _peak_rss() -> int:
    """This process's peak resident set size in bytes (ru_maxrss is KiB on Linux)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):
        return 0


def _ensure_picklable(result: TaskResult) -> TaskResult:
    try:
        # a TaskValue is bytes already (pickled once, by the runner): check only the rest
        pickle.dumps(dataclasses.replace(result, value=None) if isinstance(result.value, TaskValue) else result,
                     protocol=5)
        return result
    except Exception as exc:  # noqa: BLE001 - an unpicklable result becomes a task error
        if result.error is not None:
            return TaskResult(result.executor_id, result.job_id, result.stage_id, result.partition,
                              result.attempt, None,
                              RemoteError(result.error.type_name, result.error.message, result.error.traceback,
                                          result.error.kind, result.error.shuffle_id, result.error.map_ids),
                              result.metrics)
        error = RemoteError(type(exc).__name__, f"the task's result cannot be pickled: {exc}",
                            traceback.format_exc())
        return TaskResult(result.executor_id, result.job_id, result.stage_id, result.partition,
                          result.attempt, None, error, result.metrics)


def _picklable(exc: BaseException) -> BaseException | None:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc.with_traceback(None)
    except Exception:  # noqa: BLE001 - the type name, message and traceback still travel
        return None


_RUNNERS: dict[str, Callable] = {}


def _resolve(path: str) -> Callable:
    if path not in _RUNNERS:
        module, _, name = path.partition(":")
        _RUNNERS[path] = getattr(importlib.import_module(module), name)
    return _RUNNERS[path]


def _heartbeat(conn: Connection, executor_id: str, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            conn.send(Heartbeat(executor_id))
        except (ChannelClosed, OSError):
            return


def guard_process(parent_pid: int | None, deadline: float | None | Callable[[], float | None], grace: float = 1.0,
                  poll: float = 0.5) -> None:
    """Make this process end when its driver does, at its own deadline, and never on the terminal's Ctrl-C.

    The driver starts local executors in a session of their own, so Ctrl-C in the terminal
    reaches only the driver, which then ends them; SIGINT is ignored besides, in case an
    executor shares the driver's process group.  SIGTERM (from the driver, or from the
    kernel when the driver dies: PR_SET_PDEATHSIG on Linux) ends the process at once, with
    exit code 143: raising from a signal handler could land in a finaliser, where Python
    only prints the exception and carries on.  Nothing is lost by not unwinding: blocks are
    written under temporary names and renamed, and the driver removes the scratch folder.
    A watchdog thread covers what the signal does not: a parent that died before the signal
    was armed, kernels without prctl, and the deadline when the driver that would have killed
    us is gone.  ``deadline`` may be a function: a warm process learns its deadline only when
    it is assigned.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term(signum: int, frame: Any) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(143)

    signal.signal(signal.SIGTERM, on_term)
    if parent_pid is not None:
        _die_with_parent(signal.SIGTERM)

    def watch() -> None:
        while True:
            gone = parent_pid is not None and os.getppid() != parent_pid
            when = deadline() if callable(deadline) else deadline
            late = when is not None and time.time() > when + grace
            if gone or late:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(grace)  # the handler runs only when the main thread runs Python code
                os._exit(143)
            time.sleep(poll)

    threading.Thread(target=watch, name="dagrun-executor-watchdog", daemon=True).start()


def _die_with_parent(signum: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signum), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # the watchdog's polling still notices


def main(argv: list[str] | None = None) -> int:
    """Entry point of a local executor process: ``python -m scheduler.executor``."""
    parser = argparse.ArgumentParser(prog="python -m scheduler.executor")
    parser.add_argument("--driver", default=None,
                        help="host:port of the driver's control channel (default: wait for the assignment on stdin)")
    parser.add_argument("--executor-id", default=None)
    parser.add_argument("--deadline", type=float, default=None,
                        help="wall-clock time (epoch seconds) when this executor is killed, as Lambda would")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="the driver's pid: exit when it is no longer this process's parent")
    parser.add_argument("--heartbeat", type=float, default=2.0)
    parser.add_argument("--scratch", default=None)
    parser.add_argument("--preload", action="append", default=[],
                        help="modules to import before registering, e.g. the task runtime")
    parser.add_argument("--warm", action="append", default=[],
                        help="optional modules to import while waiting for the assignment (skipped when missing)")
    args = parser.parse_args(argv)
    if args.driver is not None and args.executor_id is None:
        parser.error("--driver needs --executor-id")
    deadline: list[float | None] = [args.deadline]
    try:
        guard_process(args.parent_pid, lambda: deadline[0])
        # import the task runtime before registering, so the first task is not slowed by imports
        # (a slow first task would look like a straggler to speculation)
        for module in args.preload:
            importlib.import_module(module)
        if args.driver is None:
            assignment = _await_assignment(args.warm)
            if assignment is None:
                return 0  # the pool closed before this process was needed
            args.driver, args.executor_id = assignment["driver"], assignment["executor_id"]
            args.heartbeat, args.scratch = assignment["heartbeat"], assignment["scratch"]
            deadline[0] = assignment["deadline"]
            secret = bytes.fromhex(assignment["secret"])
        else:
            secret = bytes.fromhex(os.environ.pop("DAGRUN_SECRET", ""))
        if not secret:
            print("dagrun executor: DAGRUN_SECRET is not set; executors are started by the driver", file=sys.stderr)
            return 2
        host, _, port = args.driver.rpartition(":")
        try:
            conn = connect((host, int(port)), secret)
        except OSError as exc:  # the driver has finished, or is unreachable: one line, not a traceback
            print(f"dagrun executor {args.executor_id}: cannot reach the driver at {args.driver}: {exc}",
                  file=sys.stderr)
            return 1
        run_executor(conn, args.executor_id,
                     remaining=lambda: None if deadline[0] is None else deadline[0] - time.time(),
                     heartbeat_interval=args.heartbeat, scratch_dir=args.scratch, can_exit=True)
    except KeyboardInterrupt:
        return 143  # the driver (or its death) ended us: it reports the executor, we stay quiet
    return 0


def _await_assignment(optional: list[str]) -> dict | None:
    """The assignment the local backend writes on stdin (None at EOF), importing ``optional``
    modules while it has not arrived: each is skipped once the assignment is waiting."""
    stdin = sys.stdin.buffer
    for module in optional:
        if select.select([stdin], [], [], 0)[0]:
            break
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # optional: the task imports it, or its fallback, when it needs it
    line = stdin.readline()
    return json.loads(line) if line.strip() else None


if __name__ == "__main__":
    sys.exit(main())
