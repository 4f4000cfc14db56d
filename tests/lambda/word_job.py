"""The three-stage word job both Lambda transports run, its expected answer, and billed ms."""

from __future__ import annotations

from collections import Counter, defaultdict
from operator import add

from lambda_executor.backend import parse_report


def word_job(ctx, words):
    counts = ctx.parallelize(words, 4).map(lambda w: (w, 1)).reduce_by_key(add, 4)
    return counts.map(lambda kv: (kv[1] % 5, kv[0])).group_by_key(3).map_values(sorted)


def expected(words):
    groups = defaultdict(list)
    for word, n in Counter(words).items():
        groups[n % 5].append(word)
    return sorted((k, sorted(v)) for k, v in groups.items())


def report_sum(endpoint) -> int:
    return sum(parse_report(line)["billed_ms"] for line in endpoint.reports)
