"""Count the lines of a data set: the 1 TB scan.

    python examples/line_count.py                              # 10MB of generated text
    python examples/line_count.py --executor lambda --store s3://bucket/tmp \\
        --input s3://bucket/1tb/ --executors 1000

The count reads each byte-range split once and counts line ends (no decoding, no shuffle).
Prints ``lines: N`` and the job's cost line.
"""

from __future__ import annotations

import sys

import _example


def main(argv: list[str] | None = None) -> int:
    args = _example.parser(__doc__.splitlines()[0]).parse_args(argv)
    with _example.input_path(args, "text") as path, _example.context(args) as ctx:
        print(f"lines: {ctx.text_file(path).count()}")
        _example.print_costs(ctx, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
