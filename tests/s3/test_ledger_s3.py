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
from dagrun.observe.ledger import REQUEST_KINDS


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


def test_input_reads_are_billed_with_the_stage_that_made_them(s3):
    """A text_file on S3: every ranged GET of the input is in the ledger, by stage.

    Planning the splits (the driver's LIST/HEAD of the input) happens before the job and is
    not a task's request; everything the input bucket received during the job is."""
    lines = [f"k{i % 11},{i}" for i in range(40_000)]
    body = ("\n".join(lines) + "\n").encode()
    paths = [s3.put_input(f"logs/part-{n}.csv", body) for n in range(2)]
    conf = {"progress": "off", "speculation": False}
    with dagrun.Context(executor="local", max_executors=2, store=s3.store_url(), conf=conf) as ctx:
        rdd = ctx.text_file(",".join(paths), split_size=100_000)
        splits = rdd.get_num_partitions()  # plans the splits now, outside the job's window
        begin = time.time()
        got = dict(rdd.map(lambda line: (line.split(",")[0], int(line.split(",")[1])))
                   .reduce_by_key(operator.add, 3).collect())
        end = time.time()
        job = ctx.last_job
        total_lines = ctx.text_file(",".join(paths), split_size=100_000).count()
        count_job = ctx.last_job
    assert got == {f"k{k}": 2 * sum(i for i in range(40_000) if i % 11 == k) for k in range(11)}
    assert splits >= 8 and total_lines == 80_000
    read = s3.proxy.counts(bucket=s3.input_bucket, since=begin, until=end)
    assert set(read) <= {"get", "bytes_in"}, read  # tasks only GET their input: no HEAD, no LIST
    input_stage = job.cost.rows[0]
    shuffle_gets = s3.proxy.counts(bucket=s3.store_bucket, since=begin, until=end)["get"]
    assert job.cost.total.requests["get"] == read["get"] + shuffle_gets
    assert input_stage.requests["get"] == read["get"] >= splits  # the map stage made every input GET
    assert job.cost.total.bytes_in == read["bytes_in"] + s3.proxy.counts(
        bucket=s3.store_bucket, since=begin, until=end)["bytes_in"]
    # count() on a text_file takes the newline-counting path: its reads are billed too
    assert count_job.cost.total.requests["get"] >= splits
