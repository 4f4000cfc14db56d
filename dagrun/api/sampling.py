"""PySpark's samplers: the same draws for the same seed and partitioning.

``pyspark/rddsampler.py``'s Bernoulli, Poisson, stratified and range samplers, and the
oversampling fraction of ``take_sample``.  Partition ``i`` draws from a generator seeded
with ``seed ^ i``.  They take and return iterators and know nothing of RDDs.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Iterator


def element_sampler(seed: int, with_replacement: bool, fraction_of: Callable[[Any], float]
                    ) -> Callable[[int, Iterator], Iterator]:
    """PySpark's ``RDDSampler`` (and ``RDDStratifiedSampler``, with a fraction per element):
    Poisson copies with replacement, a Bernoulli draw without."""
    def sample(index: int, it: Iterator) -> Iterator:
        rng = partition_rng(seed, index)
        for x in it:
            if with_replacement:
                for _ in range(_poisson(rng, fraction_of(x))):
                    yield x
            elif rng.random() < fraction_of(x):
                yield x

    return sample


def partition_rng(seed: int, index: int) -> random.Random:
    """PySpark's ``RDDSamplerBase.initRandomGenerator``: partition ``index`` draws from
    ``random.Random(seed ^ index)``, stirred because the seeds of partitions are close."""
    rng = random.Random(seed ^ index)
    for _ in range(10):
        rng.randint(0, 1)
    return rng


def _poisson(rng: random.Random, mean: float) -> int:
    """PySpark's ``RDDSamplerBase.getPoissonSample``: Knuth below a mean of 20, else summed
    exponential gaps."""
    if mean < 20.0:
        limit, k, p = math.exp(-mean), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    k, p = 0, rng.expovariate(mean)
    while p < 1.0:
        k += 1
        p += rng.expovariate(mean)
    return k


def fraction_for_sample_size(lower_bound: int, total: int, with_replacement: bool) -> float:
    """PySpark's ``_computeFractionForSampleSize``: enough to yield ``lower_bound`` elements
    with very high probability."""
    fraction = float(lower_bound) / total
    if with_replacement:
        deviations = 9 if lower_bound < 12 else 5
        return fraction + deviations * math.sqrt(fraction / total)
    gamma = -math.log(0.00005) / total
    return min(1, fraction + gamma + math.sqrt(gamma * gamma + 2 * gamma * fraction))


def range_sampler(low: float, high: float, seed: int) -> Callable[[int, Iterator], Iterator]:
    """PySpark's ``RDDRangeSampler``: keep elements whose uniform draw is in [low, high)."""
    def sample(index: int, it: Iterator) -> Iterator:
        rng = partition_rng(seed, index)
        for x in it:
            if low <= rng.random() < high:
                yield x

    return sample
