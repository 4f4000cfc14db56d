"""Acceptance for the cost ledger on S3: its request counts equal what S3 received.

The ``s3`` fixture (conftest) puts a moto server behind ``s3proxy.CountingProxy``, which
classifies every HTTP request in S3 billing units.  Local executors (real subprocesses)
shuffle through ``s3://`` via the proxy; the job's ledger, summed over its stages and the
driver's cleanup, must equal the proxy's count of the requests made during the job, kind by
kind, and the bytes read and written.  Input comes from a parallelized collection, so every
request the proxy sees belongs to the shuffle store.
"""

from __future__ import annotations

import operator
import time

import dagrun
from dagrun.ledger import REQUEST_KINDS


def test_ledger_requests_equal_what_s3_received(s3):
    conf = {"progress": "off", "speculation": False}  # no backup attempts: exactly one PUT per map task
    with dagrun.Context(executor="local", max_executors=3, store=s3.store_url(), conf=conf) as ctx:
        data = [(i % 17, i) for i in range(3000)]
        begin = time.time()
        got = dict(ctx.parallelize(data, 6).reduce_by_key(operator.add, 4)
                   .map(lambda kv: (kv[0] % 3, kv[1])).group_by_key(3).map_values(sum).collect())
        end = time.time()
        job = ctx.last_job
    assert got == {k: sum(i for i in range(3000) if (i % 17) % 3 == k) for k in range(3)}
    seen = s3.proxy.counts(bucket=s3.store_bucket, since=begin, until=end)
    total = job.cost.total
    ledger = {k: v for k, v in total.requests.items() if v}
    assert ledger == {k: seen[k] for k in REQUEST_KINDS if seen.get(k)}
    assert (total.bytes_in, total.bytes_out) == (seen["bytes_in"], seen["bytes_out"])
    assert ledger["put"] == 6 + 4  # one object per map task (invariant 2)
    assert ledger["list"] == ctx.config.shuffle_prefixes  # cleanup lists each key prefix once
    assert sum(r.requests["get"] for r in job.cost.rows) == ledger["get"]  # reads are the tasks', by stage
