"""Jobs on the "invoke" transport: each task is one synchronous invocation through the local endpoint.

The endpoint runs AWS's runtime interface client in warm, frozen execution environments from
the extracted deployment package, so these tests see what Lambda would do: no inbound
network to the driver, the package as the only project code, warm reuse, and REPORT lines.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from operator import add
from pathlib import Path

import psutil
import pytest

import dagrun
from word_job import expected, report_sum, word_job

CONF = {"progress": "off", "lambda.transport": "invoke", "lambda.memory_mb": 512}  # as the endpoint's, unless set
CHECKOUT = Path(dagrun.__file__).resolve().parents[1]


@pytest.fixture
def endpoint_process(aws_env, monkeypatch):
    """An endpoint in a process of its own, so this (the driver's) process listens on nothing."""
    proc = subprocess.Popen([sys.executable, "-m", "lambda_executor.testing.local_endpoint", "--port", "0",
                             "--timeout", "60", "--memory-mb", "512", "--concurrency", "8"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline()).group(0)
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", url)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def test_three_stage_job_is_exact_and_the_driver_listens_on_nothing(endpoint_process, tmp_path):
    words = [f"w{(i * 7919) % 53}" for i in range(3000)]

    def listening() -> set:
        return {c.laddr for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN}

    before = listening()  # other tests' servers (moto, endpoints in threads) may share this process
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=4, conf=CONF) as ctx:
        result = sorted(word_job(ctx, words).collect())
        job = ctx.last_job
        opened = listening() - before
        assert ctx._driver.server is None
    assert result == expected(words)
    assert len(job.stages) == 3 and {a.outcome for a in job.attempts} == {"committed"}
    assert opened == set()
    assert job.billed_ms > 0 and all(e.get("invocations", 0) >= 1 for e in job.executors if "billed_ms" in e)


def test_tasks_run_under_awslambdaric_from_the_package_and_environments_stay_warm(lambda_endpoint, tmp_path):
    endpoint = lambda_endpoint(timeout=60, memory_mb=512, concurrency=4)

    def where(_):
        import dagrun as d

        time.sleep(0.3)  # long enough that both executors run at once, so both environments exist
        return [(list(sys.path), d.__file__, "awslambdaric" in sys.modules, os.getpid())]

    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=2, conf=CONF) as ctx:
        first = ctx.parallelize(range(4), 4).map_partitions(where).collect()
        cold = list(endpoint.invocations)
        second = ctx.parallelize(range(4), 4).map_partitions(where).collect()
        warm = endpoint.invocations[len(cold):]
    for path, dagrun_file, under_ric, _ in first + second:
        assert under_ric
        assert Path(dagrun_file).resolve().is_relative_to(Path(endpoint.task_root).resolve())
        assert not [p for p in path if p and Path(p).is_relative_to(CHECKOUT)], path
    assert {i.pid for i in warm} <= {i.pid for i in cold}  # the same processes...
    assert all(i.init_ms is None and "Init Duration" not in i.report for i in warm)  # ...and no cold start
    assert any(i.init_ms is not None and "Init Duration" in i.report for i in cold)
    assert {pid for *_, pid in second} <= {i.pid for i in cold}


def test_a_script_importing_its_own_helper_module_runs_on_lambda(lambda_endpoint, tmp_path):
    endpoint = lambda_endpoint(timeout=60, memory_mb=512, concurrency=4)
    (tmp_path / "mylib.py").write_text(textwrap.dedent("""
        SCALE = 3

        def score(word):
            return len(word) * SCALE
    """))
    (tmp_path / "job.py").write_text(textwrap.dedent(f"""
        import json, sys
        import dagrun
        import mylib

        with dagrun.Context(executor="lambda", store={str(tmp_path / 'store')!r}, max_executors=2,
                            conf={CONF!r}) as ctx:
            out = ctx.parallelize(["a", "bb", "ccc", "dddd"], 2).map(lambda w: (w, mylib.score(w))).collect()
        print(json.dumps(out))
    """))
    env = {**os.environ, "AWS_ENDPOINT_URL_LAMBDA": endpoint.url}
    done = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [["a", 3], ["bb", 6], ["ccc", 9], ["dddd", 12]]
    assert not (Path(endpoint.task_root) / "mylib.py").exists()  # it travelled with the job, not the package


@pytest.mark.parametrize("store", [None, "memory://shuffle"])
def test_lambda_refuses_a_store_the_functions_cannot_see(aws_env, store):
    with pytest.raises(ValueError, match="executor='lambda' cannot use.*s3://") as info:
        dagrun.Context(executor="lambda", store=store, conf=CONF)
    assert ("memory://shuffle" if store else "temporary directory") in str(info.value)


def test_billed_milliseconds_equal_the_report_lines(lambda_endpoint, tmp_path):
    endpoint = lambda_endpoint(timeout=60, memory_mb=1024, concurrency=8)
    words = [f"w{i % 11}" for i in range(500)]
    # no speculation: on a loaded machine a backup attempt is one more invocation, not committed
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=3,
                        conf={**CONF, "lambda.memory_mb": 1024, "speculation": False}) as ctx:
        assert sorted(word_job(ctx, words).collect()) == expected(words)
        job = ctx.last_job
    assert len(endpoint.reports) == len(endpoint.invocations) == sum(a.outcome == "committed" for a in job.attempts)
    assert job.billed_ms == report_sum(endpoint) == endpoint.billed_ms > 0
    assert job.cost.total.invocations == len(endpoint.invocations)


def test_a_result_over_the_payload_limit_comes_back_through_the_store(lambda_endpoint, tmp_path):
    lambda_endpoint(timeout=60, memory_mb=1024, concurrency=4)
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=2,
                        conf={**CONF, "lambda.memory_mb": 1024}) as ctx:
        sizes = ctx.parallelize(range(2), 2).map(lambda i: bytes([i]) * (7 << 20)).map(len).collect()
        big = ctx.parallelize([1], 1).map(lambda i: b"x" * (7 << 20)).collect()
    assert sizes == [7 << 20] * 2 and big == [b"x" * (7 << 20)]
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing left behind


def test_a_killed_invocation_reruns_its_task(lambda_endpoint, tmp_path):
    endpoint = lambda_endpoint(timeout=5, memory_mb=512, concurrency=8)
    conf = {**CONF, "speculation": False, "faults": [{"kind": "delay", "stage": 0, "partition": 0, "seconds": 20}]}
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=4, conf=conf) as ctx:
        result = sorted(ctx.parallelize(range(100), 4).map(lambda x: (x % 5, x)).reduce_by_key(add, 2).collect())
        job = ctx.last_job
    assert result == [(k, sum(range(k, 100, 5))) for k in range(5)]
    (lost,) = [a for a in job.attempts if a.outcome == "lost"]
    assert (lost.partition, lost.attempt) == (0, 0)
    assert [i for i in endpoint.invocations if i.status == "timeout"]
    assert job.billed_ms == report_sum(endpoint)  # the killed invocation is billed too


def test_a_deleted_block_is_recomputed(lambda_endpoint, tmp_path):
    lambda_endpoint(timeout=60, memory_mb=512, concurrency=8)
    conf = {**CONF, "speculation": False, "faults": [{"kind": "delete_block", "stage": 0, "partition": 1}]}
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=3, conf=conf) as ctx:
        result = sorted(ctx.parallelize(range(60), 3).map(lambda x: (x % 4, x)).reduce_by_key(add, 2).collect())
        job = ctx.last_job
    assert result == [(k, sum(range(k, 60, 4))) for k in range(4)]
    assert [a for a in job.attempts if a.outcome == "fetch-failed"]


def test_throttled_invocations_back_off_and_the_job_completes(lambda_endpoint, tmp_path):
    endpoint = lambda_endpoint(timeout=60, memory_mb=512, concurrency=2)

    def slow(x):
        time.sleep(0.1)
        return x % 6, x

    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=6, conf={**CONF, "speculation": False}) as ctx:
        result = sorted(ctx.parallelize(range(24), 24).map(slow).reduce_by_key(add, 3).collect())
        job = ctx.last_job
    assert result == [(k, sum(range(k, 24, 6))) for k in range(6)]
    assert endpoint.throttled > 0
    assert {e.detail["source"] for e in job.scheduler_log if e.what == "throttle"} == {"lambda"}
    assert job.billed_ms == report_sum(endpoint)


def _overlap(spans) -> int:
    """The most spans (start, end) open at one instant."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


@pytest.mark.parametrize("transport", ["connect", "invoke"])
def test_a_function_with_six_vcpus_runs_six_tasks_at_once(lambda_endpoint, tmp_path, transport):
    endpoint = lambda_endpoint(timeout=60, memory_mb=10240, concurrency=4)

    def timed(x):
        started = time.time()
        time.sleep(1.0)
        return [(os.getppid(), started, time.time())]

    # no lambda.memory_mb: the slots come from the function itself (its memory, read at start or in it)
    conf = {"progress": "off", "lambda.transport": transport, "speculation": False}
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=1, conf=conf) as ctx:
        spans = ctx.parallelize(range(12), 12).map_partitions(timed).collect()
        job = ctx.last_job
    assert len(spans) == 12
    by_invocation = defaultdict(list)
    for parent, start, end in spans:
        by_invocation[parent].append((start, end))
    assert max(_overlap(s) for s in by_invocation.values()) == 6
    assert {e.get("slots") for e in job.executors} == {6}
    assert job.billed_ms == report_sum(endpoint)
    if transport == "invoke":  # six tasks a batch: two invocations of about one second each
        assert len(endpoint.invocations) == 2 and all(1000 <= i.duration_ms < 3000 for i in endpoint.invocations)


@pytest.mark.parametrize("transport", ["invoke", "connect"])
def test_a_job_with_its_store_on_s3(moto, lambda_endpoint, tmp_path, transport):
    import boto3

    boto3.client("s3").create_bucket(Bucket="shuffle")
    lambda_endpoint(timeout=60, memory_mb=512, concurrency=6)
    words = [f"w{i % 17}" for i in range(800)]
    with dagrun.Context(executor="lambda", store="s3://shuffle/dagrun", max_executors=3,
                        conf={**CONF, "lambda.transport": transport}) as ctx:
        assert sorted(word_job(ctx, words).collect()) == expected(words)
    assert boto3.client("s3").list_objects_v2(Bucket="shuffle").get("KeyCount", 0) == 0  # cleaned up


def test_a_straggler_gets_a_speculative_invocation(lambda_endpoint, tmp_path):
    lambda_endpoint(timeout=60, memory_mb=512, concurrency=8)
    conf = {**CONF, "speculation": True, "speculation_quantile": 0.5,
            "faults": [{"kind": "delay", "stage": 0, "partition": 0, "seconds": 8}]}
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=4, conf=conf) as ctx:
        started = time.time()
        result = sorted(ctx.parallelize(range(80), 8).map(lambda x: (x % 3, x)).reduce_by_key(add, 2).collect())
        took = time.time() - started
        job = ctx.last_job
    assert result == [(k, sum(range(k, 80, 3))) for k in range(3)]
    backups = [a for a in job.attempts if a.speculative]
    assert backups and any(a.outcome == "committed" for a in backups)
    assert took < 8  # the backup finished first; the straggler's result was dropped


@pytest.mark.parametrize("transport", ["invoke", "connect"])
def test_a_function_deployed_from_another_dagrun_runs_no_task_and_says_to_redeploy(lambda_endpoint, tmp_path,
                                                                                  transport, capsys):
    from dagrun.cli.main import main
    from scheduler.errors import IncompatibleExecutor

    endpoint = lambda_endpoint(timeout=60, memory_mb=512, concurrency=4)
    # what an older (or newer) deployment looks like from here: source this installation does not have
    (Path(endpoint.task_root) / "dagrun" / "deployed_elsewhere.py").write_text("# not in this installation\n")
    ran = tmp_path / "ran"
    with dagrun.Context(executor="lambda", store=str(tmp_path / "store"), max_executors=2,
                        conf={**CONF, "lambda.transport": transport}) as ctx:
        started = time.monotonic()
        with pytest.raises(IncompatibleExecutor, match=r"another dagrun than this driver \(build [0-9a-f]{16}.*"
                                                       r"`dagrun lambda deploy`"):
            ctx.parallelize(range(4), 2).map(lambda x: ran.touch()).collect()
        assert time.monotonic() - started < 60
    assert not ran.exists()
    code = main(["lambda", "check", "--store", str(tmp_path / "store"), "--transport", "invoke"])
    out = capsys.readouterr().out
    assert code == 1 and "build: FAILED" in out and "dagrun lambda deploy" in out, out
