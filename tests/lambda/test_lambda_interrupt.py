"""Ctrl-C with Lambda executors: the driver says at once what it waits for, and cleans the store last."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest


@pytest.mark.parametrize("transport", ["invoke", "connect"])
def test_ctrl_c_waits_for_the_invocations_then_cleans_the_store(lambda_endpoint, tmp_path, transport):
    endpoint = lambda_endpoint(timeout=60, memory_mb=512, concurrency=8)
    store = tmp_path / "store"
    (tmp_path / "job.py").write_text(textwrap.dedent(f"""
        import time
        import dagrun

        def slow(x):
            open({str(tmp_path / "started")!r}, "a").close()  # the test waits for a task to be running
            time.sleep(4.0)  # long enough to be mid-task when Ctrl-C comes
            return x % 3, x

        with dagrun.Context(executor="lambda", store={str(store)!r}, max_executors=4,
                            conf={{"progress": "off", "lambda.transport": {transport!r}, "speculation": False}}) as ctx:
            ctx.parallelize(range(8), 4).map(slow).reduce_by_key(lambda a, b: a + b, 2).collect()
    """))
    proc = subprocess.Popen([sys.executable, "job.py"], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "AWS_ENDPOINT_URL_LAMBDA": endpoint.url})
    try:
        deadline = time.time() + 60
        while not (tmp_path / "started").exists() and time.time() < deadline:  # a task runs in an invocation
            time.sleep(0.05)
        time.sleep(0.3)
        assert endpoint.in_flight >= 1
        proc.send_signal(signal.SIGINT)
        interrupted = time.time()
        first = proc.stderr.readline()
        said = time.time() - interrupted
        rest = proc.stderr.read()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "waiting for" in first and "Lambda invocation" in first, first + rest
    assert said < 1.5  # at once, not after the invocations return
    assert endpoint.in_flight == 0  # every invocation had returned before the driver's process ended...
    assert not [p for p in store.rglob("*") if p.is_file()]  # ...and what they wrote was cleaned after them
    assert proc.returncode != 0
