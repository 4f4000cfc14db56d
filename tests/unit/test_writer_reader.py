"""Map-side writer and reduce-side reader over local and memory stores."""

from __future__ import annotations

import operator
import os
import pickle
import random
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import fsspec
import pytest

from shuffle.errors import FetchFailed
from shuffle.layout import block_key
from shuffle.reader import merge_combiners, read_blocks
from shuffle.store import BlockStore, RequestCounts
from shuffle import writer as writer_module
from shuffle.writer import Aggregator, MapStatus, Segment, write_map_output

SUM = Aggregator(lambda v: v, operator.add, operator.add)
N_PART = 5


def part(key: Any) -> int:
    return key % N_PART if isinstance(key, int) else len(key) % N_PART


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlockStore]:
    if request.param == "local":
        yield BlockStore(str(tmp_path / "store"))
        return
    url = f"memory://wr-{uuid.uuid4().hex}"
    yield BlockStore(url)
    fs = fsspec.filesystem("memory")
    if fs.exists("/" + url[len("memory://"):]):
        fs.rm("/" + url[len("memory://"):], recursive=True)


def write(store: BlockStore, records: list, map_id: int = 0, **kw: Any) -> MapStatus:
    args: dict[str, Any] = dict(job_id="job", shuffle_id=1, map_id=map_id, attempt=0,
                                num_partitions=N_PART, partition_of=part)
    args.update(kw)
    return write_map_output(store, records, **args)


def test_round_trip_keeps_order_within_partitions(store: BlockStore) -> None:
    rng = random.Random(3)
    records = [(rng.randrange(1000), i) for i in range(20_000)]
    status = write(store, records)
    assert status.key == block_key("job", 1, 0, 0)
    assert status.records_written == len(records)
    assert status.bytes_written == len(store.get(status.key))
    assert store.counts.put == 1
    for r in range(N_PART):
        got = list(read_blocks(store, [status.block(r)]))
        assert got == [rec for rec in records if part(rec[0]) == r]
        assert status.segments[r].count == len(got)


def test_segments_are_contiguous_in_partition_order(store: BlockStore) -> None:
    status = write(store, [(i, "x" * i) for i in range(200)])
    offset = 0
    for seg in status.segments:
        assert seg.offset == offset
        offset += seg.length
    assert offset == status.bytes_written


def test_blocks_are_read_in_the_given_order(store: BlockStore) -> None:
    statuses = [write(store, [(m * 100 + i, m) for i in range(50)], map_id=m) for m in range(6)]
    order = [3, 0, 5, 1, 4, 2]
    got = list(read_blocks(store, [statuses[m].block(2) for m in order], max_concurrency=3))
    assert got == [(m * 100 + i, m) for m in order for i in range(50) if part(m * 100 + i) == 2]


def test_empty_segments_need_no_request(store: BlockStore) -> None:
    status = write(store, [(0, "a"), (5, "b")])  # partition 0 only
    empty = write(store, [], map_id=1)
    assert empty.records_written == 0 and all(s.length == 0 for s in empty.segments)
    assert store.exists(empty.key)  # an attempt always commits its object
    before = store.counts
    blocks = [status.block(r) for r in range(N_PART)] + [empty.block(r) for r in range(N_PART)]
    assert list(read_blocks(store, blocks)) == [(0, "a"), (5, "b")]
    assert (store.counts - before).get == 1


def test_map_side_combine(store: BlockStore) -> None:
    rng = random.Random(5)
    records = [(rng.randrange(300), rng.randrange(10)) for _ in range(30_000)]
    status = write(store, records, aggregator=SUM)
    assert status.records_written == len({k for k, _ in records})  # fits the budget: one per key
    reference: dict = defaultdict(int)
    for k, v in records:
        reference[k] += v
    for r in range(N_PART):
        got = dict(read_blocks(store, [status.block(r)]))
        assert got == {k: v for k, v in reference.items() if part(k) == r}


def test_map_side_combine_with_tiny_budget_spills_into_segments(store: BlockStore, tmp_path: Path) -> None:
    rng = random.Random(6)
    records = [(rng.randrange(5000), 1) for _ in range(60_000)]
    maps = [write(store, records[m::3], map_id=m, aggregator=SUM, memory_budget=16 << 10)
            for m in range(3)]
    distinct = len({k for k, _ in records[0::3]})
    assert maps[0].records_written > distinct  # the dict was flushed more than once
    reference: dict = defaultdict(int)
    for k, v in records:
        reference[k] += v
    for r in range(N_PART):
        blocks = [s.block(r) for s in maps]
        got = dict(merge_combiners(read_blocks(store, blocks), SUM, memory_budget=16 << 10,
                                   scratch_dir=str(tmp_path / "scratch"), combined=True))
        assert got == {k: v for k, v in reference.items() if part(k) == r}


def test_group_by_style_combiners(store: BlockStore, tmp_path: Path) -> None:
    group = Aggregator(lambda v: [v], lambda c, v: c + [v], operator.add)
    records = [(i % 7, i) for i in range(5_000)]
    status = write(store, records, aggregator=group, memory_budget=8 << 10)
    blocks = [status.block(r) for r in range(N_PART)]
    got = dict(merge_combiners(read_blocks(store, blocks), group, memory_budget=8 << 10,
                               scratch_dir=str(tmp_path), combined=True))
    assert {k: sorted(v) for k, v in got.items()} == {k: list(range(k, 5_000, 7)) for k in range(7)}


def test_missing_blocks_name_every_failed_map(store: BlockStore) -> None:
    statuses = [write(store, [(i, m) for i in range(40)], map_id=m) for m in range(6)]
    store.delete(statuses[1].key)
    store.delete(statuses[4].key)
    with pytest.raises(FetchFailed) as info:
        read_blocks(store, [s.block(0) for s in statuses])
    err = info.value
    assert (err.shuffle_id, err.map_ids) == (1, (1, 4))
    assert statuses[1].key in err.reason and "missing" in err.reason
    back = pickle.loads(pickle.dumps(err))
    assert (back.shuffle_id, back.map_ids) == (1, (1, 4))


def test_corrupt_block_fails_before_any_record(store: BlockStore) -> None:
    statuses = [write(store, [(i, m) for i in range(400)], map_id=m) for m in range(3)]
    seg = statuses[2].segments[3]
    data = bytearray(store.get(statuses[2].key))
    data[seg.offset + seg.length // 2] ^= 0xFF
    store.put(statuses[2].key, bytes(data))  # simulate bit rot in place
    with pytest.raises(FetchFailed) as info:
        read_blocks(store, [s.block(3) for s in statuses])
    assert info.value.map_ids == (2,) and "checksum" in info.value.reason
    # other partitions of the same object are still good
    assert len(list(read_blocks(store, [statuses[2].block(0)]))) == 80


def test_truncated_object_is_a_fetch_failure(store: BlockStore) -> None:
    status = write(store, [(i, "v" * 30) for i in range(1000)], map_id=7)
    store.put(status.key, store.get(status.key)[: status.segments[-1].offset + 3])
    with pytest.raises(FetchFailed) as info:
        read_blocks(store, [status.block(N_PART - 1)])
    assert info.value.map_ids == (7,) and "short read" in info.value.reason


def test_failures_report_one_shuffle() -> None:
    store = BlockStore(f"memory://wr-{uuid.uuid4().hex}")
    a = write(store, [(0, 1)], map_id=0, shuffle_id=1)
    b = write(store, [(0, 1)], map_id=0, shuffle_id=2)
    store.delete(a.key)
    store.delete(b.key)
    with pytest.raises(FetchFailed) as info:
        read_blocks(store, [b.block(0), a.block(0)])
    assert (info.value.shuffle_id, info.value.map_ids) == (2, (0,))


def test_bad_partition_function(store: BlockStore) -> None:
    for bad in (lambda k: N_PART, lambda k: -1):
        with pytest.raises(ValueError, match="partition_of"):
            write(store, [(1, 1)], partition_of=bad)
        with pytest.raises(ValueError, match="partition_of"):
            write(store, [(1, 1)], partition_of=bad, aggregator=SUM)


@pytest.mark.parametrize("codec", ["lz4", "zstd", "none"])
def test_explicit_codec(store: BlockStore, codec: str) -> None:
    records = [(i, str(i)) for i in range(3000)]
    status = write(store, records, codec=codec)
    got = sorted(read_blocks(store, [status.block(r) for r in range(N_PART)]))
    assert got == records


def test_no_temporary_files_after_local_writes(tmp_path: Path) -> None:
    store = BlockStore(str(tmp_path))
    for m in range(4):
        write(store, [(i, i) for i in range(100)], map_id=m)
    names = [n for _, _, files in os.walk(tmp_path) for n in files]
    assert len(names) == 4 and not any(".tmp-" in n for n in names)


def test_map_status_is_frozen_and_picklable(store: BlockStore) -> None:
    status = write(store, [(1, 2)], map_id=2, attempt=3)
    assert pickle.loads(pickle.dumps(status)) == status
    assert status.attempt == 3 and status.key.endswith("/job/s1/m2-a3")
    with pytest.raises(AttributeError):
        status.key = "x"  # type: ignore[misc]
    ref = status.block(1)
    assert (ref.shuffle_id, ref.map_id, ref.key) == (1, 2, status.key)
    assert isinstance(status.segments[0], Segment)


def test_reader_requests_are_exact(tmp_path: Path) -> None:
    store = BlockStore(str(tmp_path))
    statuses = [write(store, [(i, i) for i in range(N_PART * (m + 1))], map_id=m) for m in range(4)]
    after_write = store.counts
    assert after_write.put == 4 and after_write.get == 0
    list(read_blocks(store, [s.block(1) for s in statuses]))
    delta = store.counts - after_write
    assert delta == RequestCounts(get=4, bytes_in=sum(s.segments[1].length for s in statuses))


# ---- the adaptive map-side combine ------------------------------------------------------------

def _reduced(store: BlockStore, status: MapStatus, agg: Aggregator, scratch: Path) -> dict:
    out: dict = {}
    for r in range(N_PART):
        out.update(merge_combiners(read_blocks(store, [status.block(r)]), agg, memory_budget=64 << 20,
                                   scratch_dir=str(scratch), combined=True))
    return out


@pytest.mark.parametrize("probe", [8192, writer_module._PROBE])
def test_combine_is_bypassed_when_the_probe_sees_mostly_fresh_keys(store: BlockStore, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    probe: int) -> None:
    monkeypatch.setattr(writer_module, "_PROBE", probe)
    # every key fresh through the probe, then the same keys again: a combine would halve them
    records = [(i, 1) for i in range(2 * probe)] * 2
    status = write(store, records, aggregator=SUM)
    assert status.records_written == probe + 3 * probe  # the probe's keys combined once, the rest not
    assert _reduced(store, status, SUM, tmp_path) == {i: 2 for i in range(2 * probe)}


def test_combine_is_kept_when_keys_repeat(store: BlockStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "_PROBE", 8192)
    # about 42% fresh keys in the probe's second half: under the bypass threshold
    rng = random.Random(5)
    records = [(rng.randrange(7000), 1) for _ in range(40_000)]
    status = write(store, records, aggregator=SUM)
    reference = defaultdict(int)
    for k, v in records:
        reference[k] += v
    assert status.records_written == len(reference)
    assert _reduced(store, status, SUM, tmp_path) == reference


def test_bypassed_records_are_turned_into_combiners(store: BlockStore, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "_PROBE", 8192)
    group = Aggregator(lambda v: [v], lambda c, v: c + [v], operator.add)
    records = [(i % 30_000, i) for i in range(60_000)]
    # a budget small enough that the bypassed encoders are flushed early too
    status = write(store, records, aggregator=group, memory_budget=64 << 10)
    assert status.records_written > 30_000
    got = _reduced(store, status, group, tmp_path)
    assert {k: sorted(v) for k, v in got.items()} == {k: [k, k + 30_000] for k in range(30_000)}
