"""The ledger on executor="lambda": measured at the job's end, then Lambda's billed duration.

The local endpoint reports each invocation with a REPORT line as Lambda does; the backend
merges ``billed_ms`` and the function's memory into the driver's executor log when the
invocation ends.  While executors idle after the job they have no REPORT yet, so the ledger
printed at the job's end is "measured"; after ``ctx.stop()`` every invocation has reported,
and ``job.cost`` is recomputed from the billed milliseconds x the function's memory, each
invocation prorated to the part of it inside the job.
"""

from __future__ import annotations

from operator import add

import pytest

import dagrun
from lambda_executor.backend import parse_report


def test_ledger_switches_to_billed_duration_once_invocations_report(lambda_endpoint, tmp_path):
    endpoint = lambda_endpoint(timeout=60, memory_mb=1024, concurrency=8)
    with dagrun.Context(executor="lambda", store=str(tmp_path), max_executors=3,
                        conf={"progress": "off", "lambda.transport": "connect"}) as ctx:
        words = [f"w{i % 11}" for i in range(600)]
        counts = dict(ctx.parallelize(words, 4).map(lambda w: (w, 1)).reduce_by_key(add, 3).collect())
        assert counts == {f"w{i}": len(range(i, 600, 11)) for i in range(11)}
        job = ctx.last_job
        at_end = job.cost
    assert at_end.basis == "measured" and at_end.total.gb_s > 0
    after = job.cost  # ctx.stop() waited for the invocations: their REPORT lines are in
    assert after.basis == "billed"
    billed = {parse_report(line)["request_id"]: parse_report(line) for line in endpoint.reports}
    assert len(billed) == len(endpoint.invocations) == after.total.invocations == len(job.executors)
    live = {e["executor"]: e for e in job._billed_executors()}
    expected = 0.0
    for entry in live.values():
        ended = entry.get("ended", entry["launched"] + entry["billed_ms"] / 1000)  # closed with the Context
        inside = min(ended, job.finished) - max(entry["launched"], job.started)
        share = min(1.0, inside / (ended - entry["launched"]))
        expected += entry["billed_ms"] / 1000 * share * entry["memory_mb"] / 1024
        assert entry["memory_mb"] == 1024
    assert after.total.gb_s == pytest.approx(expected)
    # the whole billed duration is an upper bound: the part after the job (idle until stop) is not this job's
    assert after.total.gb_s <= sum(r["billed_ms"] for r in billed.values()) / 1000 + 1e-9
    assert "Lambda x86_64 billed" in str(after)
