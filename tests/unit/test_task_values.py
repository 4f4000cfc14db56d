"""A result task's value on its way to the driver (``scheduler.results``): what goes in comes out."""

from __future__ import annotations

import pickle

import pytest

from scheduler.results import _SLICE, ResultLoader, encode_value
from shuffle.store import BlockStore


@pytest.fixture
def store(tmp_path) -> BlockStore:
    return BlockStore(f"file://{tmp_path}")


def _roundtrip(value, store, max_direct=1 << 30):
    sent = encode_value(value, store, "results/job/0", max_direct=max_direct, max_result_size=0)
    return sent, pickle.loads(pickle.dumps(sent)).load(store)


@pytest.mark.parametrize("n", [0, 1, _SLICE, _SLICE + 1, 3 * _SLICE + 7])
def test_lists_of_every_length_come_back_equal_and_in_order(store, n):
    value = [(f"k{i}", i * 0.5) for i in range(n)]
    _, back = _roundtrip(value, store)
    assert back == value and type(back) is list


def test_a_long_list_keeps_what_only_cloudpickle_can_send(store):
    class Local:  # defined in a function: plain pickle refuses it
        def __init__(self, x):
            self.x = x

    value = [Local(i) for i in range(2 * _SLICE)] + [lambda y: y + 1]
    _, back = _roundtrip(value, store)
    assert [o.x for o in back[:-1]] == list(range(2 * _SLICE)) and back[-1](1) == 2


def test_a_long_list_through_the_store_is_loaded_once_and_deleted(store):
    value = list(range(5 * _SLICE))
    sent, back = _roundtrip(value, store, max_direct=16)
    assert sent.key is not None and back == value
    assert not store.exists(sent.key)


def test_the_size_limit_counts_every_slice(store):
    value = [b"%06d" % i * 20 for i in range(2 * _SLICE)]
    whole = encode_value(value, store, "results/job/1", max_direct=1 << 30, max_result_size=0)
    assert whole.size > 100 * 2 * _SLICE
    dropped = encode_value(value, store, "results/job/2", max_direct=1 << 30, max_result_size=whole.size - 1)
    assert dropped.dropped and dropped.size == whole.size


def test_values_that_are_not_plain_lists_travel_whole(store):
    class Tagged(list):
        pass

    for value in ({i: i for i in range(3 * _SLICE)}, tuple(range(3 * _SLICE)), "text", None):
        assert _roundtrip(value, store)[1] == value
    tagged = Tagged(range(3 * _SLICE))
    back = _roundtrip(tagged, store)[1]
    assert type(back).__name__ == "Tagged" and back == tagged


def test_the_loader_gives_each_value_once_and_loads_a_stored_one_in_the_background(store):
    loader = ResultLoader(store)
    stored = encode_value(list(range(10_000)), store, "results/job/3", max_direct=10, max_result_size=0)
    inline = encode_value("small", store, "results/job/4", max_direct=1 << 20, max_result_size=0)
    loader.submit(stored)
    assert loader.load(stored) == list(range(10_000))
    assert not store.exists("results/job/3")  # deleted once loaded, as TaskValue.load does
    assert loader.load(inline) == "small"  # never submitted: loaded at the call
    loader.close()


def test_a_failed_background_load_raises_where_the_value_is_asked_for(store):
    loader = ResultLoader(store)
    gone = encode_value(list(range(10_000)), store, "results/job/5", max_direct=10, max_result_size=0)
    store.delete("results/job/5")
    loader.submit(gone)
    with pytest.raises(FileNotFoundError):
        loader.load(gone)
    loader.submit(gone)
    loader.settle()  # a job that ended without it: waits, and keeps no error for later
    loader.close()
