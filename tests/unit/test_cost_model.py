"""The cost ledger's arithmetic on a hand-made job, and the estimate model's rules."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from dagrun.config import Config
from dagrun.observe.estimate import Assumptions, StageShape, launch_times, project
from dagrun.observe.jobinfo import JobInfo
from dagrun.observe.ledger import DEFAULT_PRICES, job_cost
from scheduler.driver import AttemptRecord
from scheduler.wire.messages import TaskMetrics
from shuffle.store import RequestCounts


class FakeGraph:
    def __init__(self, *stages):
        self._stages = [SimpleNamespace(stage_id=i, name=n, kind=k, parents=p) for i, n, k, p in stages]

    def stages(self):
        return self._stages


def attempt(stage, part, executor, assigned, finished, outcome="committed", requests=None, attempt=0):
    metrics = TaskMetrics(started=assigned, finished=finished, store_requests=requests or {})
    return AttemptRecord("job", stage, part, attempt, executor, False, assigned, finished, outcome, metrics)


def make_job(executors, attempts, driver=None, **conf):
    graph = FakeGraph((1, "map", "shuffle", []), (0, "result", "result", [1]))
    info = JobInfo("job", "test", graph, "memory://", Config.resolve(conf))
    info.started, info.finished = 100.0, 110.0
    info.attempts, info.executors = attempts, executors
    info.driver_requests = driver or {}
    return info


def test_measured_lifetimes_times_memory_split_by_task_share():
    executors = [{"executor": "x1", "launched": 100.5, "registered": 101.0},                   # alive at the end
                 {"executor": "x2", "launched": 101.0, "registered": 101.5, "ended": 106.0},  # retired mid-job
                 {"executor": "x0", "launched": 90.0, "registered": 91.0}]                    # from an earlier job
    attempts = [attempt(1, 0, "x1", 101.0, 104.0, requests={"put": 1, "bytes_out": 100}),
                attempt(1, 1, "x2", 101.5, 105.5, requests={"put": 1, "bytes_out": 50}),
                attempt(0, 0, "x1", 104.0, 105.0, requests={"get": 2, "bytes_in": 150})]
    cost = job_cost(make_job(executors, attempts, {"list": 16, "delete": 2}, lambda_memory_mb=1024))
    # x1: 9.5 s in the job; x2: 5 s; x0: the 10 s of the job's window only
    assert cost.total.executor_seconds == pytest.approx(9.5 + 5.0 + 10.0)
    assert cost.total.gb_s == pytest.approx(24.5)  # 1 GB
    by_stage = {r.stage_id: r for r in cost.rows}
    # x1 spent 3 s on stage 1 and 1 s on stage 0; x0 ran nothing, so it follows the job's shares (7:1)
    assert by_stage[1].gb_s == pytest.approx(9.5 * 3 / 4 + 5.0 + 10.0 * 7 / 8)
    assert by_stage[0].gb_s == pytest.approx(9.5 / 4 + 10.0 / 8)
    assert [r.stage_id for r in cost.rows] == [1, 0]  # topological order
    assert by_stage[1].invocations == 2 and by_stage[0].invocations == 0  # x0 was launched before the job
    assert cost.total.requests == {"put": 2, "get": 2, "list": 16, "delete": 2}
    assert (cost.total.bytes_in, cost.total.bytes_out) == (150, 150)
    p = DEFAULT_PRICES
    assert cost.dollars == pytest.approx(24.5 * p["lambda_gb_s_x86"] + 2 * p["lambda_request"] + 18 * p["s3_put"]
                                         + 2 * p["s3_get"])
    assert cost.basis == "measured"
    assert "\n" not in str(cost) and "24.50 GB-s" in str(cost)


def test_billed_lambda_invocations_and_price_overrides():
    executors = [{"executor": "x1", "launched": 101.0, "registered": 101.8, "ended": 109.0,
                  "billed_ms": 8100, "memory_mb": 3008, "max_memory_mb": 500},
                 {"executor": "x2", "launched": 101.0, "ended": 101.0, "reason": "launch throttled"}]
    attempts = [attempt(1, 0, "x1", 102.0, 103.0), attempt(0, 0, "x1", 103.0, 104.0)]
    info = make_job(executors, attempts, lambda_arch="arm64", prices={"lambda_gb_s_arm": 0.001})
    cost = job_cost(info)
    assert cost.total.gb_s == pytest.approx(8.1 * 3008 / 1024)  # billed ms x the function's memory
    assert cost.total.invocations == 1  # a throttled launch is not an invocation
    assert cost.basis == "mixed"  # x2 never ran: measured (0 s)
    usd = cost.total.dollars(cost.prices, cost.arch)
    assert usd["compute"] == pytest.approx(8.1 * 3008 / 1024 * 0.001)
    record = cost.to_dict()
    assert record["total"]["usd"]["total"] == pytest.approx(cost.dollars)


def test_driver_requests_are_counted_from_the_start_of_the_job():
    info = make_job([], [])
    info.finish([], [], RequestCounts(list=16, delete=3, head=1), [])
    assert info.cost.driver.requests == {"list": 16, "delete": 3, "head": 1}


def test_launch_times_follow_the_ramp_and_lambdas_scaling_rule():
    fast = Assumptions(ramp_initial=500, ramp_slope=500, scaling_per_10s=1000)
    times = launch_times(3000, fast)
    for i, t in enumerate(times):  # never more than 1,000 new environments in any 10 s
        assert sum(1 for u in times[i:i + 1001] if u < t + 10.0) <= 1000
    assert times[999] < 3 and times[1000] >= 10.0
    slow = Assumptions(ramp_initial=4, ramp_slope=4)
    t400 = launch_times(400, slow)[-1]
    assert 4 * t400 + 2 * t400 ** 2 == pytest.approx(400, rel=0.1)  # the integral of 4 + 4t


def test_projection_scales_tasks_requests_and_bytes():
    shapes = [StageShape(1, "map", "shuffle", 2, [], input_bytes=10_000_000, written=6_000_000.0),
              StageShape(0, "result", "result", 2, [1])]
    a = Assumptions(executors=400, memory_mb=3008, throughput_mb_s=50, split_size=128 << 20)
    est = project([shapes], 100e9, a)
    rows = {r.stage_id: r for r in est.rows}
    maps = math.ceil(100e9 / (128 << 20))
    assert rows[1].tasks == rows[0].tasks == maps  # the reduce side follows the default partitioning
    assert rows[1].requests["put"] == maps
    assert rows[1].requests["get"] == math.ceil(100e9 / (8 << 20)) + maps
    assert rows[0].requests["get"] == maps * maps
    assert rows[1].bytes_out == pytest.approx(60e9, rel=1e-6)  # measured 0.6 shuffle bytes per input byte
    assert est.executors == 400 and est.total.invocations == 400
    task_s = rows[1].timing[2]
    assert task_s == pytest.approx(100e9 / maps / 50e6 + a.task_overhead_s + a.request_latency_s, rel=0.01)
    reduce_s = rows[0].timing[2]  # 746 ranged GETs, 16 at a time
    fetch_rounds = math.ceil(maps / 16)
    assert reduce_s == pytest.approx(60e9 / maps / 50e6 + a.task_overhead_s + fetch_rounds * a.request_latency_s)
    # lower bound: all the work spread over the whole fleet; GB-s at least the work's
    work = sum(r.tasks * r.timing[2] for r in est.rows)
    assert est.wall_seconds >= work / 400
    assert est.total.gb_s >= work * 3008 / 1024
    assert est.dollars()["total"] > 0


def test_memory_below_one_vcpu_slows_tasks_down():
    a = Assumptions(throughput_mb_s=60, memory_mb=1024)
    assert a.effective_mb_s == pytest.approx(60 * 1024 / 1769)
    assert Assumptions(throughput_mb_s=60, memory_mb=3008).effective_mb_s == 60


def test_explain_estimates_requests_and_cost_at_an_input_size(tmp_path, capsys):
    import dagrun

    path = tmp_path / "in.txt"
    path.write_text("a b\nc d\n" * 1000)
    with dagrun.Context(executor="inline", max_executors=50, conf={"progress": "off"}) as ctx:
        rdd = ctx.text_file(str(path)).flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(lambda a, b: a + b)
        text = rdd.explain(cost=True, input_size="10GB")
        here = rdd.explain(cost=True)
    maps = math.ceil(10e9 / (128 << 20))
    # the reduce side's partition count was not given: a task per 256 MiB of its (upper-bound) 10 GB
    reduces = math.ceil(10e9 / (256 << 20))
    # each map output is ~133 MB, over the single-PUT limit: a multipart upload of 3 parts = 5 requests
    gets = maps * reduces + maps + 1193  # (map, reduce task) pairs, a tail read per split, 10 GB / 8 MiB blocks
    assert f"Estimate at 10.0 GB input: {maps + reduces:,} tasks, ~{5 * maps:,} PUT, ~{gets:,} GET" in text
    assert "on 50 executors" in text and "estimated cost $" in text
    assert "Estimate at 8.0 KB input: 3 tasks, ~2 PUT" in here  # as planned: 2 splits; 2 reduce partitions, 1 task


def test_estimate_text_lists_stages_and_totals():
    shapes = [StageShape(1, "map", "shuffle", 2, [], input_bytes=1 << 30), StageShape(0, "result", "result", 2, [1])]
    text = project([shapes], None, Assumptions()).text()
    assert "stage 1: map" in text and "time: ~" in text and "cost: $" in text
