"""A text partition taken as lists by the shuffle writer: same answers, same failures, and every
other consumer still iterates record by record (lazily)."""

from __future__ import annotations

import operator
from collections import Counter
from pathlib import Path

import pytest

import dagrun
from dagrun.graph.nodes import Batched


@pytest.fixture
def ictx():
    with dagrun.Context(executor="inline", conf={"progress": "off", "ledger": "off", "max_attempts": 1}) as c:
        yield c


@pytest.fixture
def text(tmp_path: Path) -> tuple[str, list[str]]:
    lines = [f"{i % 37},{i},{'x' * (i % 11)}" for i in range(20_000)]
    path = tmp_path / "in.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path), lines


def test_a_fused_chain_through_a_shuffle_matches_plain_python(ictx, text, monkeypatch):
    path, lines = text
    taken = []
    real = Batched.take_batches
    monkeypatch.setattr(Batched, "take_batches", lambda self: taken.append(real(self)) or taken[-1])
    got = dict(ictx.text_file(path, min_partitions=3)
               .filter(lambda l: not l.startswith("5"))
               .map(lambda l: l.split(","))
               .key_by(lambda f: f[0])
               .map_values(lambda f: len(f[2]))
               .reduce_by_key(operator.add).collect())
    want: Counter = Counter()
    for line in lines:
        if not line.startswith("5"):
            f = line.split(",")
            want[f[0]] += len(f[2])
    assert got == {k: v for k, v in want.items()}
    # per map task, the writer took the fused step's lists and the step took the source's
    assert len(taken) == 6 and all(t is not None for t in taken)
    pairs = ictx.text_file(path).map(lambda l: (l[:1], len(l)))
    assert sorted(pairs.keys().map(lambda k: (k, 1)).reduce_by_key(operator.add).collect()) == \
        sorted(Counter(line[:1] for line in lines).items())
    assert sorted(pairs.values().map(lambda v: (v, 1)).reduce_by_key(operator.add).collect()) == \
        sorted(Counter(len(line) for line in lines).items())


def test_take_runs_the_steps_only_as_far_as_it_reads(ictx, text):
    path, _ = text

    def fail_late(line: str) -> str:
        if line.split(",")[1] == "100":
            raise ValueError("record 100")
        return line

    rdd = ictx.text_file(path, min_partitions=1).map(fail_late)
    assert rdd.take(2) == ["0,0,", "1,1,x"]  # record by record: record 100 never reached
    with pytest.raises(dagrun.JobFailed, match="record 100"):
        rdd.map(lambda l: (l[:1], 1)).reduce_by_key(operator.add).collect()


def _stop(line: str) -> tuple:
    if line.startswith("3,"):
        raise StopIteration("user code")
    return (line[:1], 1)


def test_stop_iteration_in_a_batched_step_fails_the_job(ictx, text):
    path, _ = text
    for build in (lambda r: r.map(_stop), lambda r: r.filter(lambda l: _stop(l) is not None).map(_stop),
                  lambda r: r.map(lambda l: (l, l)).map_values(_stop).values()):
        with pytest.raises(dagrun.JobFailed) as info:
            build(ictx.text_file(path)).reduce_by_key(operator.add).collect()
        assert "StopIteration" in str(info.value) and "user code" in str(info.value)


def test_batched_is_taken_one_way_only():
    lists = [[1, 2], [3]]
    b = Batched(lambda: iter(lists), lambda: iter([1, 2, 3]))
    assert next(b) == 1 and list(b) == [2, 3]
    assert b.take_batches() is None  # already iterated: the lists are gone
    b = Batched(lambda: iter(lists), lambda: iter([1, 2, 3]))
    assert list(b.take_batches()) == lists
    with pytest.raises(RuntimeError, match="already taken"):
        iter(b)
    b = Batched(lambda: None, lambda: iter([1, 2, 3]))
    assert b.take_batches() is None and list(b) == [1, 2, 3]  # a parent that could not give lists
