"""Sort gensort records (100-byte records, 10-byte key) and write them in key order.

    python examples/sort_records.py                            # 10MB of generated records
    python examples/sort_records.py --executor lambda --store s3://bucket/tmp \\
        --input s3://bucket/gensort/ --output s3://bucket/sorted/ --executors 400

Reads the records as lines (each ends with CR LF, which ``text_file`` strips), range-
partitions them by key from a sample (``sort_by_key`` runs one sampling job first), sorts
each partition and writes ``part-NNNNN`` files with ``save_as_text_file``: concatenated in
order they hold every record, sorted by its first 10 bytes.  Prints the part files, with
``--check`` the record count and whether the output is in order (valsort as one more
distributed job, so nothing is read back through the driver), then each job's cost line.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import fsspec

import _example

KEY = 10


def build(ctx, path: str):
    return ctx.text_file(path).map(lambda r: (r[:KEY], r)).sort_by_key().values()


def check(ctx, output: str) -> tuple[int, bool]:
    """valsort as one more job: every partition of the output reports its first and last key,
    its record count and whether it is in order; the driver checks the seams between them."""
    def summarize(index: int, lines) -> list[tuple]:
        first = last = None
        count, ordered = 0, True
        for line in lines:
            key = line[:KEY]
            ordered = ordered and (last is None or last <= key)
            first, last, count = first if first is not None else key, key, count + 1
        return [(index, first, last, count, ordered)]

    parts = sorted(ctx.text_file(output).map_partitions_with_index(summarize).collect())
    ordered = all(p[4] for p in parts)
    keys = [(p[1], p[2]) for p in parts if p[3]]
    ordered = ordered and all(a[1] <= b[0] for a, b in zip(keys, keys[1:]))
    return sum(p[3] for p in parts), ordered


def main(argv: list[str] | None = None) -> int:
    parser = _example.parser(__doc__.splitlines()[0], output=True)
    parser.add_argument("--check", action="store_true", help="then check the output's order in one more job")
    args = parser.parse_args(argv)
    scratch = None if args.output else tempfile.mkdtemp(prefix="dagrun-sorted-")
    output = args.output or os.path.join(scratch, "sorted")
    try:
        with _example.input_path(args, "records") as path, _example.context(args) as ctx:
            build(ctx, path).save_as_text_file(output)
            fs, root = fsspec.core.url_to_fs(output, **(ctx.config.storage_options or {}))
            parts = sum(1 for p in fs.ls(root, detail=False) if os.path.basename(p).startswith("part-"))
            print(f"sorted the records into {parts} part files under {output}")
            ordered = True
            if args.check:
                count, ordered = check(ctx, output)
                print(f"check: {count} records, {'in order' if ordered else 'OUT OF ORDER'}")
            _example.print_costs(ctx, args)
        return 0 if ordered else 1
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
