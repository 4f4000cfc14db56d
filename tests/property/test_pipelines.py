"""Random pipelines on random data equal a plain-Python reference, with 1 and 3 executors."""

from __future__ import annotations

import operator
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dagrun

SMALL_SIDE = [(k, k * 10) for k in range(-3, 6)] + [(2, 7)]


def ref_apply(op: str, data: list) -> list:
    if op == "map":
        return [(k, v * 2 + 1) for k, v in data]
    if op == "filter":
        return [(k, v) for k, v in data if v % 3 != 0]
    if op == "flat_map":
        return [p for k, v in data for p in ((k, v), (k + 1, v))]
    if op == "reduce_by_key":
        acc: dict = defaultdict(int)
        for k, v in data:
            acc[k] += v
        return list(acc.items())
    if op == "group_by_key":
        groups: dict = defaultdict(list)
        for k, v in data:
            groups[k].append(v)
        return [(k, sum(vs) + len(vs)) for k, vs in groups.items()]
    if op == "join":
        return [(k, v + w) for k, v in data for k2, w in SMALL_SIDE if k == k2]
    if op == "sort_by_key":
        return sorted(data, key=lambda kv: kv[0])
    if op == "distinct":
        return list(set(data))
    raise AssertionError(op)


def rdd_apply(op: str, rdd, ctx, parts: int):
    if op == "map":
        return rdd.map(lambda kv: (kv[0], kv[1] * 2 + 1))
    if op == "filter":
        return rdd.filter(lambda kv: kv[1] % 3 != 0)
    if op == "flat_map":
        return rdd.flat_map(lambda kv: [(kv[0], kv[1]), (kv[0] + 1, kv[1])])
    if op == "reduce_by_key":
        return rdd.reduce_by_key(operator.add, parts)
    if op == "group_by_key":
        return rdd.group_by_key(parts).map_values(lambda vs: sum(vs) + len(vs))
    if op == "join":
        return rdd.join(ctx.parallelize(SMALL_SIDE, 2), parts).map_values(lambda vw: vw[0] + vw[1])
    if op == "sort_by_key":
        return rdd.sort_by_key(num_partitions=parts)
    if op == "distinct":
        return rdd.distinct(parts)
    raise AssertionError(op)


OPS = ["map", "filter", "flat_map", "reduce_by_key", "group_by_key", "join", "sort_by_key", "distinct"]

pipelines = st.lists(st.sampled_from(OPS), min_size=1, max_size=4)
datasets = st.lists(st.tuples(st.integers(-5, 8), st.integers(-1000, 1000)), max_size=60)


@pytest.fixture(scope="module", params=[1, 3], ids=["1-executor", "3-executors"])
def pctx(request):
    with dagrun.Context(executor="local", max_executors=request.param, conf={"progress": "off"}) as c:
        yield c


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=pipelines, data=datasets, parts=st.integers(1, 4), in_parts=st.integers(1, 5))
def test_random_pipeline_matches_reference(pctx, ops, data, parts, in_parts):
    expected = list(data)
    rdd = pctx.parallelize(data, in_parts)
    for op in ops:
        expected = ref_apply(op, expected)
        rdd = rdd_apply(op, rdd, pctx, parts)
    got = rdd.collect()
    assert sorted(got) == sorted(expected)
    if ops[-1] == "sort_by_key":
        keys = [k for k, _ in got]
        assert keys == sorted(keys)
