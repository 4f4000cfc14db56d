"""Hadoop sequence files: ``sequence_file``, ``save_as_sequence_file``, and pickle files in
PySpark's format (dagrun.runtime.sequence_files, dagrun.runtime.writables).

The ``.seq`` files under tests/data/pyspark_sequence were written by PySpark 4.3
(``make_fixtures.py`` there), so reading them checks the format against Spark's own writer.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import struct

import pytest

from dagrun.pyspark import SparkContext
from dagrun.runtime import sequence_files, writables

GZIP = "org.apache.hadoop.io.compress.GzipCodec"
DATA = os.path.join(os.path.dirname(__file__), "..", "data", "pyspark_sequence")
_spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(DATA, "make_fixtures.py"))
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


def as_read(pairs):
    """What PySpark's sequenceFile gives back for pairs it saved: bytes come back as bytearray."""
    def one(v):
        return bytearray(v) if isinstance(v, bytes) else v
    return [(one(k), one(v)) for k, v in pairs]


@pytest.mark.parametrize("name", sorted(fixtures.CASES))
def test_reads_what_pyspark_wrote(ctx, name):
    got = ctx.sequence_file(os.path.join(DATA, f"{name}.seq")).collect()
    assert got == as_read(fixtures.CASES[name])
    assert [type(x) for x in got[0]] == [type(x) for x in as_read(fixtures.CASES[name])[0]]


@pytest.mark.parametrize("name", ["codec_default", "codec_gzip", "codec_bzip2", "small_blocks"])
def test_reads_pyspark_block_compression(ctx, name):
    assert ctx.sequence_file(os.path.join(DATA, f"{name}.seq")).collect() == fixtures.COMPRESSED


def test_reads_a_pyspark_pickle_file(ctx):
    assert ctx.pickle_file(os.path.join(DATA, "pickled.seq")).collect() == fixtures.PICKLED


@pytest.mark.parametrize("name", sorted(fixtures.CASES))
@pytest.mark.parametrize("codec", [None, "DefaultCodec", GZIP, "BZip2Codec", "ZStandardCodec"])
def test_round_trip(ctx, tmp_path, name, codec):
    out = str(tmp_path / "out")
    ctx.parallelize(fixtures.CASES[name], 3).save_as_sequence_file(out, codec)
    back = ctx.sequence_file(out)
    assert back.collect() == as_read(fixtures.CASES[name])
    assert back.get_num_partitions() == 3  # an empty partition's file still has its header, as in PySpark


def test_written_classes_and_compression_are_pysparks(ctx, tmp_path):
    out = str(tmp_path / "out")
    ctx.parallelize([("a", 1), ("b", 2)], 2).save_as_sequence_file(out, "DefaultCodec")
    headers = []
    for part in ("part-00000", "part-00001"):
        with open(tmp_path / "out" / part, "rb") as f:
            headers.append(sequence_files.read_header(f, part, os.path.getsize(f.name)))
    # both files take their classes from the RDD's first pair, and a codec means blocks (as in Spark)
    assert {(h.key_class, h.value_class, h.codec, h.blocks) for h in headers} == {
        (writables.TEXT, writables.INT, "org.apache.hadoop.io.compress.DefaultCodec", True)}


def test_pickle_file_round_trip_and_partitions(ctx, tmp_path):
    data = [(i, str(i), {"x": [i]}) for i in range(1000)]
    for batch_size in (1, 10, 0):
        out = str(tmp_path / f"p{batch_size}")
        ctx.parallelize(data, 4).save_as_pickle_file(out, batch_size)
        back = ctx.pickle_file(out)
        assert back.collect() == data
        assert back.get_num_partitions() == 4
    with open(tmp_path / "p10" / "part-00000", "rb") as f:
        assert f.read(4) == b"SEQ\x06"


def test_empty_partitions_are_header_only_files(ctx, tmp_path):
    out = str(tmp_path / "out")
    ctx.parallelize([], 2).save_as_pickle_file(out)
    assert ctx.pickle_file(out).get_num_partitions() == 2
    assert ctx.pickle_file(out).collect() == []


def test_reads_pickle_files_of_earlier_dagrun_releases(ctx, tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    with open(folder / "part-00000", "wb") as f:
        for batch in ([1, 2], [3]):
            pickle.dump(batch, f, protocol=pickle.HIGHEST_PROTOCOL)
    (folder / "_SUCCESS").touch()
    assert ctx.pickle_file(str(folder)).collect() == [1, 2, 3]


def _write(path, records, codec=None, block_size=sequence_files.BLOCK_BYTES):
    with open(path, "wb") as f:
        w = sequence_files.SequenceWriter(f, writables.TEXT, writables.INT, codec, block_size)
        for k, v in records:
            w.append(writables.encode(k)[1], writables.encode(v)[1])
        w.close()


@pytest.mark.parametrize("codec, block_size", [(None, 0), ("org.apache.hadoop.io.compress.DefaultCodec", 5000)])
def test_splits_read_every_record_once(ctx, tmp_path, codec, block_size):
    records = [(f"key-{i:06d}" + "x" * (i % 37), i) for i in range(60000)]
    path = str(tmp_path / "big.seq")
    _write(path, records, codec, block_size or sequence_files.BLOCK_BYTES)
    assert os.path.getsize(path) > 4 * sequence_files.SYNC_INTERVAL
    for partitions in (1, 2, 3, 7, 16):
        rdd = ctx.sequence_file(path, min_splits=partitions)
        assert rdd.get_num_partitions() >= min(partitions, 4)
        assert rdd.collect() == records
    splits = sequence_files.plan_sequence_splits(path, split_size=0, min_partitions=64)
    size = max(sequence_files.SYNC_INTERVAL, os.path.getsize(path) // 64)  # never under the format's minimum
    assert {s.end - s.start for s in splits[:-1]} == {size}


def test_pyspark_spellings(tmp_path):
    with SparkContext("inline", "seq") as sc:
        out = str(tmp_path / "out")
        sc.parallelize([("a", 1.5)]).saveAsSequenceFile(out, compressionCodecClass=GZIP)
        assert sc.sequenceFile(out, "org.apache.hadoop.io.Text", "org.apache.hadoop.io.DoubleWritable",
                               minSplits=1).collect() == [("a", 1.5)]
        sc.parallelize(range(3)).saveAsPickleFile(str(tmp_path / "p"), batchSize=0)
        assert sc.pickleFile(str(tmp_path / "p"), minPartitions=1).collect() == [0, 1, 2]


# ---- bad input: a clear error, never fewer records


@pytest.mark.parametrize("data, message", [
    ([1, 2], "hold (key, value) pairs"),
    ([(1, "a"), ("b", "c")], "is a Text, not a IntWritable"),
    ([(1, 1), (2 ** 40, 2)], "is a LongWritable, not a IntWritable"),
    ([(1, (1, 2))], "a tuple value cannot be stored"),
    ([("k", 2 ** 70)], "does not fit a LongWritable"),
])
def test_unstorable_pairs(ctx, tmp_path, data, message):
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")):
        ctx.parallelize(data, 1).save_as_sequence_file(str(tmp_path / "out"))
    assert not (tmp_path / "out" / "part-00000").exists()


def test_unknown_codec_is_refused_before_running(ctx, tmp_path):
    with pytest.raises(ValueError, match="SnappyCodec.*is not a codec"):
        ctx.parallelize([("a", 1)]).save_as_sequence_file(str(tmp_path / "out"), "SnappyCodec")


def test_a_text_file_is_not_a_sequence_file(ctx, tmp_path):
    (tmp_path / "a.txt").write_text("hello\n")
    with pytest.raises(Exception, match=r"a.txt is not a sequence file"):
        ctx.sequence_file(str(tmp_path / "a.txt")).collect()


def test_a_sequence_file_of_pairs_is_not_a_pickle_file(ctx):
    with pytest.raises(Exception, match="not a pickle file.*read it with sequence_file"):
        ctx.pickle_file(os.path.join(DATA, "text_int.seq")).collect()


def test_converters_need_the_jvm(ctx):
    with pytest.raises(ValueError, match="Java converter class"):
        ctx.sequence_file(os.path.join(DATA, "text_int.seq"), key_converter="com.example.Conv")


def test_unknown_writable_class_is_named(ctx, tmp_path):
    path = str(tmp_path / "odd.seq")
    with open(path, "wb") as f:
        w = sequence_files.SequenceWriter(f, "com.example.MyWritable", writables.INT)
        w.append(b"\x00", struct.pack(">i", 1))
        w.close()
    with pytest.raises(Exception, match="com.example.MyWritable cannot be decoded"):
        ctx.sequence_file(path).collect()


def test_cut_short_and_corrupt_files_raise(ctx, tmp_path):
    path = tmp_path / "big.seq"
    _write(str(path), [(f"k{i}", i) for i in range(30000)])
    data = path.read_bytes()
    (tmp_path / "short.seq").write_bytes(data[:-3])
    with pytest.raises(Exception, match="ends inside a record"):
        ctx.sequence_file(str(tmp_path / "short.seq")).count()
    sync = data[data.index(b"\xff\xff\xff\xff") + 4:][:16]
    broken = data.replace(b"\xff\xff\xff\xff" + sync, b"\xff\xff\xff\xff" + bytes(16), 1)
    (tmp_path / "broken.seq").write_bytes(broken)
    with pytest.raises(Exception, match="a sync entry with the wrong marker"):
        ctx.sequence_file(str(tmp_path / "broken.seq")).count()


def test_damaged_compressed_block_raises(ctx, tmp_path):
    path = tmp_path / "z.seq"
    _write(str(path), [(f"k{i}", i) for i in range(100)], "org.apache.hadoop.io.compress.DefaultCodec")
    data = bytearray(path.read_bytes())
    data[-4:] = bytes(b ^ 0xFF for b in data[-4:])  # the last zlib stream's checksum
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match="corrupt at byte"):
        ctx.sequence_file(str(path)).collect()


def test_vlong_matches_hadoop():
    for n in (0, 1, -1, 127, 128, -112, -113, 255, 256, 2 ** 31 - 1, -2 ** 31, 2 ** 63 - 1, -2 ** 63):
        encoded = writables.vlong_bytes(n)
        assert writables.read_vlong(encoded, 0) == (n, len(encoded))
    assert writables.vlong_bytes(-113) == b"\x87\x70"  # Hadoop: first byte -121, then ~n
