"""Large task results travel through an S3 store and are deleted once loaded (issue 13, Build 4)."""

from __future__ import annotations

import dagrun
from shuffle.layout import parse_block_key

CONF = {"progress": "off", "ledger": "off", "job_history": 0, "speculation": False}


def test_large_results_go_through_s3_and_are_deleted(s3) -> None:
    url = s3.store_url("results")
    with dagrun.Context(executor="local", max_executors=2, store=url, max_direct_result_size="64KiB", conf=CONF) as c:
        out = c.parallelize(range(3), 3).map(lambda i: str(i) * (100 << 10)).collect()
        assert [len(s) for s in out] == [100 << 10] * 3 and [s[0] for s in out] == ["0", "1", "2"]
        puts = [r for r in s3.proxy.seen(s3.store_bucket) if r.kind == "PUT" and "/r" in r.key]
        assert len(puts) == 3 and all(parse_block_key(r.key.split("/", 1)[1]) for r in puts)
        assert [k for k in s3.keys(prefix="results/") if parse_block_key(k.split("/", 1)[1])] == []
