"""Sort gensort records (100-byte records, 10-byte key) and write them in key order.

    python examples/sort_records.py                            # 10MB of generated records
    python examples/sort_records.py --executor lambda --store s3://bucket/tmp \\
        --input s3://bucket/gensort/ --output s3://bucket/sorted/ --executors 400

Reads the records as lines (each ends with CR LF, which ``text_file`` strips), range-
partitions them by key from a sample (``sort_by_key`` runs one sampling job first), sorts
each partition and writes ``part-NNNNN`` files with ``save_as_text_file``: concatenated in
order they hold every record, sorted by its first 10 bytes.  Prints the record count, the
part files and whether the output is in order, then each job's cost line.
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


def check(output: str) -> tuple[int, int, bool]:
    """(records, part files, in order?) of a sorted output directory, read back once."""
    fs, root = fsspec.core.url_to_fs(output)
    parts = sorted(p for p in fs.ls(root, detail=False) if os.path.basename(p).startswith("part-"))
    count, last, ordered = 0, None, True
    for part in parts:
        with fs.open(part, "rt", encoding="utf-8", newline="\n") as f:
            for line in f:
                key = line[:KEY]
                ordered = ordered and (last is None or last <= key)
                last, count = key, count + 1
    return count, len(parts), ordered


def main(argv: list[str] | None = None) -> int:
    args = _example.parser(__doc__.splitlines()[0], output=True).parse_args(argv)
    scratch = None if args.output else tempfile.mkdtemp(prefix="dagrun-sorted-")
    output = args.output or os.path.join(scratch, "sorted")
    try:
        with _example.input_path(args, "records") as path, _example.context(args) as ctx:
            build(ctx, path).save_as_text_file(output)
            count, parts, ordered = check(output)
            print(f"sorted {count} records into {parts} part files under {output}: "
                  f"{'in order' if ordered else 'OUT OF ORDER'}")
            _example.print_costs(ctx, args)
        return 0 if ordered else 1
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
