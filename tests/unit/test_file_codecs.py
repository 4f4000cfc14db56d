"""Compressed text files by suffix: each codec's save and read round trip, Hadoop's formats
(a ``.deflate`` file is a zlib stream, as PySpark's DefaultCodec writes it), concatenated
streams, and a damaged file as a clear error."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path

import pytest
import zstandard

import dagrun
from dagrun.runtime import file_codecs
from dagrun.runtime.file_codecs import compression_of, decompress

LINES = [f"línea {i}" + ("\r" if i % 7 == 0 else "") for i in range(5000)]
TEXT = "\n".join(LINES).encode() + b"\n"


@pytest.fixture
def ctx():
    with dagrun.Context(executor="inline", conf={"progress": "off", "ledger": "off"}) as c:
        yield c


@pytest.mark.parametrize("codec, suffix", [
    ("gzip", ".gz"), ("bz2", ".bz2"), ("org.apache.hadoop.io.compress.DefaultCodec", ".deflate"),
    ("deflate", ".deflate"), ("zstd", ".zst"), ("org.apache.hadoop.io.compress.ZStandardCodec", ".zst"),
])
def test_a_save_with_each_codec_reads_back_line_for_line(ctx, tmp_path: Path, codec: str, suffix: str) -> None:
    out = str(tmp_path / "out")
    ctx.parallelize(LINES, 3).save_as_text_file(out, compression=codec)
    parts = sorted(p.name for p in Path(out).iterdir())
    assert parts == ["_SUCCESS"] + [f"part-0000{i}{suffix}" for i in range(3)]
    expected = [line.rstrip("\r") for line in LINES]  # "\r\n" ends a line, as in Hadoop
    assert ctx.text_file(out).collect() == expected and ctx.text_file(out).count() == len(LINES)
    wholes = dict(ctx.whole_text_files(out).collect())
    assert "".join(wholes[k] for k in sorted(wholes)) == "\n".join(LINES) + "\n"


def test_a_deflate_file_is_a_zlib_stream_and_concatenated_streams_read_in_turn(ctx, tmp_path: Path) -> None:
    path = tmp_path / "part-00000.deflate"
    path.write_bytes(zlib.compress(TEXT[:1000]) + zlib.compress(TEXT[1000:]))
    assert path.read_bytes()[:1] == b"\x78"  # zlib's header, as in the files PySpark writes
    rdd = ctx.text_file(str(path), 4)
    assert rdd.get_num_partitions() == 1  # not splittable, as Hadoop's DefaultCodec
    assert rdd.collect() == [line.rstrip("\r") for line in LINES]


def test_small_reads_of_a_large_zlib_stream_lose_nothing(monkeypatch) -> None:
    monkeypatch.setattr(file_codecs, "_READ", 7)  # input left over after each bounded decompress
    data = TEXT * 3
    assert decompress(zlib.compress(data) + zlib.compress(b"tail"), "deflate", "x.deflate") == data + b"tail"
    assert decompress(b"", "deflate", "empty.deflate") == b""


@pytest.mark.parametrize("suffix, compress", [
    (".deflate", zlib.compress), (".zst", lambda d: zstandard.ZstdCompressor().compress(d)),
    (".gz", gzip.compress), (".bz2", bz2.compress),
])
@pytest.mark.parametrize("damage", ["cut short", "not compressed"])
def test_a_damaged_compressed_file_is_an_error_naming_it(ctx, tmp_path: Path, suffix, compress, damage) -> None:
    data = compress(TEXT)
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(data[: len(data) // 2] if damage == "cut short" else TEXT)
    with pytest.raises(Exception, match=f"bad{suffix} is not a (valid )?[a-z0-9]+ file") as info:
        ctx.text_file(str(path)).collect()
    assert "rename it if it is not compressed" in str(info.value)


def test_an_xz_file_is_read_as_its_bytes_as_in_pyspark(ctx, tmp_path: Path) -> None:
    path = tmp_path / "data.xz"
    path.write_bytes(lzma.compress(b"a\nb\n"))
    assert compression_of(str(path)) is None
    assert "".join(ctx.text_file(str(path)).collect()) != "ab"


def test_a_compressed_save_to_an_object_store_closes_every_part(ctx) -> None:
    import fsspec

    out = "memory://codec-save/out"
    ctx.parallelize(LINES, 2).save_as_text_file(out, compression="deflate")
    fs = fsspec.filesystem("memory")
    sizes = {p.rsplit("/", 1)[-1]: fs.size(p) for p in fs.ls("/codec-save/out", detail=False)}
    assert sizes.keys() == {"_SUCCESS", "part-00000.deflate", "part-00001.deflate"}
    assert all(n > 0 for name, n in sizes.items() if name != "_SUCCESS")
    assert ctx.text_file(out).count() == len(LINES)
    fs.rm("/codec-save", recursive=True)
