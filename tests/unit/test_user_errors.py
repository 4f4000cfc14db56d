"""A function that raises fails the job with its traceback; nothing ends a partition early."""

from __future__ import annotations

import pytest

import dagrun


def _stop(x):
    if x == 3:
        raise StopIteration("user code")
    return x


@pytest.fixture
def ictx():
    with dagrun.Context(executor="inline", conf={"progress": "off", "ledger": "off", "max_attempts": 1}) as c:
        yield c


@pytest.mark.parametrize("build", [
    lambda r: r.map(_stop),
    lambda r: r.filter(lambda x: _stop(x) >= 0),
    lambda r: r.flat_map(lambda x: [_stop(x)]),
    lambda r: r.map(lambda x: (x, x)).map_values(_stop),
    lambda r: r.map(lambda x: (x, x)).flat_map_values(lambda v: [_stop(v)]),
    lambda r: r.key_by(_stop),
    lambda r: r.sort_by(_stop),
    lambda r: r.map(lambda x: (x % 2, x)).reduce_by_key(lambda a, b: _stop(b) + a),
], ids=["map", "filter", "flat_map", "map_values", "flat_map_values", "key_by", "sort_by", "reduce_by_key"])
def test_stop_iteration_in_user_code_fails_the_job(ictx, build):
    with pytest.raises(dagrun.JobFailed) as info:
        build(ictx.parallelize(range(10), 2)).collect()
    assert "StopIteration" in str(info.value) and "user code" in str(info.value)


@pytest.mark.parametrize("action", [lambda r: r.reduce(lambda a, b: _stop(b)), lambda r: r.foreach(_stop),
                                    lambda r: r.fold(0, lambda a, b: _stop(b))], ids=["reduce", "foreach", "fold"])
def test_stop_iteration_in_an_action_fails_the_job(ictx, action):
    with pytest.raises(dagrun.JobFailed, match="StopIteration"):
        action(ictx.parallelize(range(10), 2))


def test_the_context_is_usable_after_a_failed_job(ictx):
    with pytest.raises(dagrun.JobFailed):
        ictx.parallelize(range(10), 2).map(_stop).collect()
    assert ictx.parallelize(range(10), 2).map(lambda x: x * 2).sum() == 90
