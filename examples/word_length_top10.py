"""The ten most frequent words of each word length 1..20 in a text corpus.

    python examples/word_length_top10.py                       # 10MB of generated Zipf text
    python examples/word_length_top10.py --executor lambda --store s3://bucket/tmp \\
        --input s3://bucket/text/

Counts every word (a whitespace-separated token) with a map-side-combined reduce_by_key,
then groups the counts by word length and keeps each length's top ten (ties by word).
Prints one line per length, ``len N: word=count ...``, then each job's cost line.
"""

from __future__ import annotations

import heapq
import operator
import sys

import _example

MAX_LENGTH = 20


def top10(pairs) -> list[tuple[str, int]]:
    return heapq.nsmallest(10, pairs, key=lambda wc: (-wc[1], wc[0]))


def build(ctx, path: str):
    counts = (ctx.text_file(path).flat_map(str.split)
              .filter(lambda w: len(w) <= MAX_LENGTH)
              .map(lambda w: (w, 1)).reduce_by_key(operator.add))
    return (counts.map(lambda wc: (len(wc[0]), wc))
            .aggregate_by_key([], lambda acc, wc: top10([*acc, wc]), lambda a, b: top10([*a, *b])))


def main(argv: list[str] | None = None) -> int:
    args = _example.parser(__doc__.splitlines()[0]).parse_args(argv)
    with _example.input_path(args, "text") as path, _example.context(args) as ctx:
        tops = dict(build(ctx, path).collect())
        for length in range(1, MAX_LENGTH + 1):
            words = " ".join(f"{w}={n}" for w, n in tops.get(length, []))
            print(f"len {length}: {words}")
        _example.print_costs(ctx, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
