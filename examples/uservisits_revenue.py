"""SUM(adRevenue) GROUP BY SUBSTR(sourceIP, 1, 8) over Amplab uservisits CSV (the AWS big data
blog's aggregation query).

    python examples/uservisits_revenue.py                      # 10MB of generated data, local executors
    python examples/uservisits_revenue.py --executor lambda --store s3://bucket/tmp \\
        --input s3://bucket/uservisits/ --executors 200

Prints the number of groups, the ten groups with the most revenue, and each job's cost line.
"""

from __future__ import annotations

import operator
import sys

import _example


def revenue(line: str) -> tuple[str, float]:
    fields = line.split(",")  # sourceIP, destURL, visitDate, adRevenue, ...
    return fields[0][:8], float(fields[3])


def build(ctx, path: str):
    return ctx.text_file(path).map(revenue).reduce_by_key(operator.add)


def main(argv: list[str] | None = None) -> int:
    args = _example.parser(__doc__.splitlines()[0]).parse_args(argv)
    with _example.input_path(args, "uservisits") as path, _example.context(args) as ctx:
        totals = build(ctx, path).collect()
        print(f"groups: {len(totals)}")
        for prefix, total in sorted(totals, key=lambda kv: (-kv[1], kv[0]))[:10]:
            print(f"  {prefix:<8} {total:.5f}")
        _example.print_costs(ctx, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
