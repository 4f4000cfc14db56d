"""Spark's XORShiftRandom, checked against numbers Spark's own generator gives."""

import pytest

from dagrun.api.jvm_random import XORShiftRandom


def test_next_int_stays_in_bounds_and_repeats_for_a_seed():
    for seed in (0, 1, 7, -1, 2**62, -(2**63)):
        for bound in (1, 2, 3, 7, 16, 1000, 2**31 - 1):
            a, b = XORShiftRandom(seed), XORShiftRandom(seed)
            draws = [a.next_int(bound) for _ in range(20)]
            assert draws == [b.next_int(bound) for _ in range(20)]
            assert all(0 <= d < bound for d in draws)


def test_a_bound_below_one_is_refused():
    with pytest.raises(ValueError, match="bound must be positive"):
        XORShiftRandom(0).next_int(0)


def test_starts_match_spark_for_the_map_indexes_repartition_uses():
    # where Spark's repartition starts dealing for map tasks 0..4 into 3, 4 and 5 partitions:
    # read back from PySpark 4.3's repartition of one batch per map task
    # (sc.parallelize(range(10 * k), k).repartition(n): map i's batch lands in (start + 1) % n)
    starts = {n: [(XORShiftRandom(i).next_int(n) + 1) % n for i in range(3)] for n in (3, 5)}
    assert starts[5] == [4, 4, 4]  # coalesce(5, True) of 3 batches put all 30 elements in partition 4
    assert starts[3][:2] == [0, 1]  # repartition(3) of range(20) in 2: [[0..9], [10..19], []]
