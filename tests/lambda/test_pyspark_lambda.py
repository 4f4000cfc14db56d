"""A PySpark word count, join and sort, imports swapped, on executors invoked through boto3."""

from __future__ import annotations

from collections import Counter
from operator import add

import pytest


@pytest.mark.timeout(240)
def test_pyspark_script_on_the_local_lambda_endpoint(lambda_endpoint, monkeypatch, tmp_path):
    from dagrun.pyspark import SparkConf, SparkContext

    endpoint = lambda_endpoint(timeout=60, memory_mb=512, concurrency=4)
    words = [f"w{(i * 7919) % 31}" for i in range(2000)]
    # a store the functions can see (Lambda refuses the default temporary one)
    conf = SparkConf().set("dagrun.progress", "off").set("dagrun.max_executors", "3").set("dagrun.store", str(tmp_path))
    with SparkContext("lambda", "wordcount", conf=conf) as sc:
        counts = sc.parallelize(words, numSlices=4).map(lambda w: (w, 1)).reduceByKey(add, numPartitions=3)
        ranked = counts.sortBy(lambda kv: (-kv[1], kv[0])).collect()
        joined = counts.join(sc.parallelize([("w0", "zero"), ("w1", "one")])).collectAsMap()
        assert sc.dagrun_context.config.executor == "lambda"
    want = Counter(words)
    assert ranked == sorted(want.items(), key=lambda kv: (-kv[1], kv[0]))
    assert joined == {"w0": (want["w0"], "zero"), "w1": (want["w1"], "one")}
    assert endpoint.invocations and {i.status for i in endpoint.invocations} == {"ok"}
