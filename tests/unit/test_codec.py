"""shuffle.codec: round trips, self-describing frames, checksum failures, pickling of errors."""

from __future__ import annotations

import pickle
import random
import struct
import zlib
from typing import Any

import pytest

from shuffle.codec import (CODECS, DEFAULT_CODEC, RecordEncoder, decode_records, default_codec_for,
                           encode_records)
from shuffle.errors import ChecksumMismatch, FetchFailed

rng = random.Random(7)
SAMPLES: dict[str, list[Any]] = {
    "str_int": [(f"word{rng.randrange(500)}", rng.randrange(1000)) for _ in range(5000)],
    "str_float": [(f"k{i}", rng.random()) for i in range(3000)],
    "bytes100": [rng.randbytes(100) for _ in range(2000)],
    "mixed": [None, 1, -2.5, "x", b"y", (1, (2, [3, {"a": frozenset({4})}])), True, 10**30],
    "empty": [],
}


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_round_trip(codec: str, name: str) -> None:
    records = SAMPLES[name]
    data, count, checksum = encode_records(records, codec)
    assert count == len(records)
    assert checksum == zlib.crc32(data)
    assert list(decode_records(data, checksum)) == records


@pytest.mark.parametrize("codec", CODECS)
def test_pairs_given_as_columns_decode_as_the_pairs_in_order(codec: str, tmp_path) -> None:
    from shuffle.codec import decode_batches, read_frames

    pairs = SAMPLES["str_float"] + SAMPLES["str_int"]
    enc = RecordEncoder(codec)
    enc.add(("first", 0))  # buffered records are framed before the columns that follow them
    enc.extend_pairs([k for k, _ in pairs], [v for _, v in pairs])
    enc.extend([("after", 1), ("after", 2)])
    enc.extend_pairs([], [])
    data, count, checksum = enc.finish()
    expected = [("first", 0)] + pairs + [("after", 1), ("after", 2)]
    assert count == len(expected) and checksum == zlib.crc32(data)
    assert list(decode_records(data, checksum)) == expected
    assert all(type(r) is tuple for batch in decode_batches(data, checksum) for r in batch)
    spill = tmp_path / "spill"
    spill.write_bytes(data)
    with open(spill, "rb") as f:
        assert list(read_frames(f)) == expected


def test_columns_that_plain_pickle_refuses_go_by_cloudpickle() -> None:
    enc = RecordEncoder("lz4")
    enc.extend_pairs(["inc", "dec"], [lambda x: x + 1, lambda x: x - 1])
    data, count, checksum = enc.finish()
    (k1, f1), (k2, f2) = decode_records(data, checksum)
    assert (k1, k2, f1(1), f2(1), count) == ("inc", "dec", 2, 0, 2)


def test_empty_encoding_is_empty() -> None:
    assert encode_records([]) == (b"", 0, 0)
    assert list(decode_records(b"", 0)) == []


def test_default_codec() -> None:
    assert DEFAULT_CODEC in CODECS
    assert default_codec_for("file") == default_codec_for("memory") == DEFAULT_CODEC
    assert default_codec_for("s3") == "zstd"
    # the block sort's raw runs: as they are on a local store, still zstd over the wire
    assert default_codec_for("file", raw=True) == default_codec_for("memory", raw=True) == "none"
    assert default_codec_for("s3", raw=True) == "zstd"


def test_many_batches_keep_order() -> None:
    records = [(i, "v" * (i % 50)) for i in range(100_000)]
    data, count, checksum = encode_records(records, "lz4")
    frames = _frame_count(data)
    assert frames > 5  # several batches were made
    assert list(decode_records(data, checksum)) == records


def test_record_larger_than_a_batch() -> None:
    records = [b"a" * (3 << 20), b"b", bytes(range(256)) * 5000]
    data, _, checksum = encode_records(records, "zstd")
    assert list(decode_records(data, checksum)) == records


def test_incompressible_batches_are_stored_raw() -> None:
    records = [random.Random(1).randbytes(1 << 16)]
    raw = len(pickle.dumps(records, protocol=5))
    for codec in ("lz4", "zstd"):
        data, _, checksum = encode_records(records, codec)
        assert len(data) == raw + 20  # header only
        assert list(decode_records(data, checksum)) == records


def test_unpicklable_records_fall_back_to_cloudpickle() -> None:
    records = [("f", lambda x: x * 3), ("g", 2)]
    data, _, checksum = encode_records(records)
    out = list(decode_records(data, checksum))
    assert out[0][1](4) == 12 and out[1] == ("g", 2)


def test_encodings_concatenate() -> None:
    a, na, ca = encode_records(range(100), "lz4")
    b, nb, _ = encode_records(range(100, 150), "zstd")
    both = a + b
    checksum = zlib.crc32(b, ca)  # CRC32 extends incrementally
    assert checksum == zlib.crc32(both)
    assert list(decode_records(both, checksum)) == list(range(150))


def test_incremental_encoder_matches_encode_records() -> None:
    enc = RecordEncoder("lz4")
    for r in SAMPLES["str_int"]:
        enc.add(r)
    data, count, checksum = enc.finish()
    assert count == len(SAMPLES["str_int"]) and checksum == zlib.crc32(data)
    assert list(decode_records(data, checksum)) == SAMPLES["str_int"]


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 1000, 100_000])
def test_add_and_extend_mix(n: int) -> None:
    enc = RecordEncoder("zstd")
    enc.add("first")
    enc.extend(list(range(n)))  # list fast path
    enc.extend(iter(range(3)))  # generic path
    enc.add("last")
    data, count, checksum = enc.finish()
    assert count == n + 5
    assert list(decode_records(data, checksum)) == ["first", *range(n), *range(3), "last"]


def test_unknown_codec() -> None:
    with pytest.raises(ValueError, match="unknown shuffle codec"):
        encode_records([1], "snappy")


def test_a_frame_of_an_unknown_serializer_says_which_and_what_to_do() -> None:
    data, _, _ = encode_records([("k", 1)], "none")
    frame = bytearray(data)
    frame[3] = 9  # the header's serializer id (after b"dr" and the codec id)
    with pytest.raises(ValueError, match="unknown serializer id 9.*another version of dagrun") as raised:
        list(decode_records(bytes(frame), zlib.crc32(frame)))
    assert not isinstance(raised.value, ChecksumMismatch)  # a fetch failure would rerun the map for nothing


@pytest.mark.parametrize("codec", ["lz4", "zstd", "none"])
def test_flipped_byte_is_detected(codec: str) -> None:
    data, _, checksum = encode_records(SAMPLES["str_int"], codec)
    for pos in (0, 5, len(data) // 2, len(data) - 1):
        bad = bytearray(data)
        bad[pos] ^= 0x40
        with pytest.raises(ChecksumMismatch, match="checksum mismatch"):
            decode_records(bytes(bad), checksum)  # raised at once, before iteration


def test_truncation_is_detected() -> None:
    data, _, checksum = encode_records(SAMPLES["str_int"])
    with pytest.raises(ChecksumMismatch):
        decode_records(data[:-10], checksum)


def test_malformed_bytes_with_matching_checksum_are_refused() -> None:
    data, _, _ = encode_records(SAMPLES["str_int"])
    bad = data[:-10]
    with pytest.raises(ChecksumMismatch, match="truncated"):
        list(decode_records(bad, zlib.crc32(bad)))
    junk = b"not a frame at all, just bytes"
    with pytest.raises(ChecksumMismatch, match="magic"):
        list(decode_records(junk, zlib.crc32(junk)))


def test_errors_pickle_with_their_fields() -> None:
    err = ChecksumMismatch("checksum mismatch: x", 1, 2)
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.expected, back.actual) == (str(err), 1, 2)
    ff = FetchFailed(3, (5, 2, 5), "2 blocks missing")
    ff_back = pickle.loads(pickle.dumps(ff))
    assert isinstance(ff_back, FetchFailed) and isinstance(ff_back, OSError)
    assert (ff_back.shuffle_id, ff_back.map_ids, ff_back.reason) == (3, (2, 5), "2 blocks missing")
    assert "shuffle 3" in str(ff_back) and "2, 5" in str(ff_back) and "rerun" in str(ff_back)


def _frame_count(data: bytes) -> int:
    n, pos = 0, 0
    while pos < len(data):
        _, _, _, _, length = struct.unpack_from("<2sBBQQ", data, pos)
        pos += 20 + length
        n += 1
    return n


def test_decode_batches_are_the_frames_and_check_the_crc() -> None:
    from shuffle.codec import decode_batches

    records = [(i, "x" * (i % 50)) for i in range(20_000)]
    data, count, crc = encode_records(records)
    batches = list(decode_batches(data, crc))
    assert len(batches) > 1 and [r for b in batches for r in b] == records and count == len(records)
    with pytest.raises(ChecksumMismatch):
        decode_batches(data, crc ^ 1)


def test_read_blocks_counts_records_per_batch(tmp_path) -> None:
    from shuffle.reader import read_blocks
    from shuffle.store import BlockStore
    from shuffle.writer import write_map_output

    store = BlockStore(f"file://{tmp_path}")
    records = [(i % 3, i) for i in range(30_000)]
    status = write_map_output(store, records, job_id="j", shuffle_id=0, map_id=0, attempt=0,
                              num_partitions=3, partition_of=lambda k: k)
    seen: list[int] = []
    got = list(read_blocks(store, [status.block(r) for r in range(3)], on_batch=seen.append))
    assert sorted(got) == sorted(records) and sum(seen) == len(records) and len(seen) >= 3
