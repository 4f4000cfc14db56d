"""Local executor processes and the driver's lifetime: real subprocesses, real signals, bounded time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

pytestmark = pytest.mark.timeout(120)

# a driver whose job holds both executors in a task that would run for a minute
DRIVER = textwrap.dedent("""
    import sys, time
    import dagrun

    def hold(x):
        print("task started", flush=True)  # an executor's stdout is the driver's stderr
        time.sleep(60)
        return x

    ctx = dagrun.Context(executor="local", max_executors=2, conf={"progress": "off"})
    print(sum(ctx.parallelize(range(2), 2).map(hold).collect()))
""")


def _start_driver(tmp_path, *argv: str) -> subprocess.Popen:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen([sys.executable, *argv, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, cwd=tmp_path)


def _executors_once_running(driver: subprocess.Popen, timeout: float = 60) -> list[psutil.Process]:
    """Wait until a task is running; return the driver's executor processes."""
    deadline = time.monotonic() + timeout
    lines = []
    while True:
        line = driver.stderr.readline()
        lines.append(line)
        assert line and time.monotonic() < deadline, f"no task started; the driver said: {''.join(lines)}"
        if "task started" in line:
            break
    children = psutil.Process(driver.pid).children(recursive=True)
    executors = [p for p in children if "scheduler.executor" in " ".join(p.cmdline())]
    assert executors, children
    return executors


def _gone_within(processes: list[psutil.Process], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = []
        for p in processes:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_executors_exit_when_their_driver_is_killed(tmp_path):
    driver = _start_driver(tmp_path)
    try:
        executors = _executors_once_running(driver)
        driver.kill()  # SIGKILL: no atexit, no close, nothing the driver could do for them
        driver.wait(timeout=10)
        assert _gone_within(executors, 5), [p.pid for p in executors]
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.communicate(timeout=10)


def test_ctrl_c_stops_the_job_with_one_line_and_no_executor_traceback(tmp_path):
    driver = _start_driver(tmp_path, "-m", "dagrun.cli.main", "run")
    try:
        executors = _executors_once_running(driver)
        os.killpg(driver.pid, signal.SIGINT)  # what the terminal does: the driver's whole process group
        _, stderr = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate(timeout=10)
    assert driver.returncode == 130, stderr
    # the other task may print its start after we stopped reading: that line is the job's own
    said = [line for line in stderr.strip().splitlines() if line != "task started"]
    assert said == ["dagrun: interrupted"], stderr
    assert _gone_within(executors, 10)


def test_an_executor_without_its_driver_ends_at_its_own_deadline(tmp_path):
    """Nobody kills it at its deadline (no driver loop watches it): it ends itself."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers the handshake
    env = {**os.environ, "DAGRUN_SECRET": "00" * 32}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "scheduler.executor", "--driver",
                             f"127.0.0.1:{listener.getsockname()[1]}", "--executor-id", "e1",
                             "--deadline", repr(time.time() + 1.0)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert time.monotonic() - started < 8
    assert proc.returncode == 143 and "Traceback" not in stderr, stderr
