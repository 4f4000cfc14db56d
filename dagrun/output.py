"""Output commit for ``save_as_text_file``: attempts write aside, the driver commits winners.

Policy (Hadoop's FileOutputCommitter, version 1, in miniature):
- every attempt writes ``{out}/_temporary/{job}/part-NNNNN-a{attempt}``, a name no other
  attempt shares;
- once every partition has committed, the driver moves each partition's first committed
  attempt to ``{out}/part-NNNNN``, writes ``_SUCCESS`` and deletes ``_temporary`` (and
  with it every losing or failed attempt);
- a failed job deletes ``_temporary`` and leaves no ``_SUCCESS`` and no part files.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Iterator

import fsspec

if TYPE_CHECKING:
    from .lineage import RDD

_CODECS = {"gzip": ("gzip", ".gz"), "org.apache.hadoop.io.compress.GzipCodec": ("gzip", ".gz"),
           "bz2": ("bz2", ".bz2"), "bzip2": ("bz2", ".bz2"),
           "org.apache.hadoop.io.compress.BZip2Codec": ("bz2", ".bz2")}


def save_as_text_file(rdd: "RDD", path: str, compression: str | None = None) -> None:
    if compression is not None and compression not in _CODECS:
        raise ValueError(f"unknown compression {compression!r}; use one of {', '.join(sorted(_CODECS))}")
    codec, suffix = _CODECS[compression] if compression else (None, "")
    fs, root = fsspec.core.url_to_fs(path, **dict(rdd.ctx.config.storage_options))
    root = root.rstrip("/")
    if fs.exists(root) and (not fs.isdir(root) or fs.ls(root)):
        raise FileExistsError(f"output path {path!r} already exists; delete it or choose another path "
                              "(dagrun never overwrites committed output)")
    temp = f"{root}/_temporary/{secrets.token_hex(4)}"

    def write(tc, it: Iterator) -> str:
        name = f"{temp}/part-{tc.partition_index:05d}-a{tc.attempt}{suffix}"
        with fs.open(name, "wb", compression=codec) as f:
            buffer = []
            for x in it:
                buffer.append(x if isinstance(x, str) else str(x))
                if len(buffer) >= 4096:
                    f.write(("\n".join(buffer) + "\n").encode("utf-8"))
                    buffer.clear()
            if buffer:
                f.write(("\n".join(buffer) + "\n").encode("utf-8"))
        return name

    try:
        fs.makedirs(temp, exist_ok=True)
        written = rdd.ctx.run_job(rdd, write)
        for index, name in enumerate(written):
            fs.mv(name, f"{root}/part-{index:05d}{suffix}")
        fs.touch(f"{root}/_SUCCESS")
    except BaseException:
        for index in range(rdd.get_num_partitions()):
            final = f"{root}/part-{index:05d}{suffix}"
            if fs.exists(final):
                fs.rm(final)
        raise
    finally:
        if fs.exists(f"{root}/_temporary"):
            fs.rm(f"{root}/_temporary", recursive=True)
