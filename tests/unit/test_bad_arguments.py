"""Arguments of the wrong kind get an error that names the argument and what to give instead."""

from __future__ import annotations

import pathlib

import pytest

import dagrun
from dagrun.graph.partitioners import HashPartitioner
from shuffle.store import BlockStore


@pytest.mark.parametrize("read", ["text_file", "binary_files", "whole_text_files", "pickle_file", "sequence_file"])
@pytest.mark.parametrize("bad", [None, 5, b"/tmp/x", ["ok.txt", 7]])
def test_an_input_named_by_something_else_than_text_is_a_type_error(ctx, read, bad) -> None:
    with pytest.raises(TypeError, match=r"an input is named by a path or URL \(str\), or a list of them; got"):
        getattr(ctx, read)(bad)


def test_a_pathlib_path_names_an_input_as_its_text_does(ctx, tmp_path) -> None:
    (tmp_path / "a.txt").write_text("x\ny\n")
    assert ctx.text_file(tmp_path / "a.txt").collect() == ["x", "y"]
    assert ctx.text_file([tmp_path / "a.txt", str(tmp_path / "a.txt")]).count() == 4
    assert ctx.text_file(tmp_path / "a.txt").name() == str(tmp_path / "a.txt")


def test_an_unknown_protocol_names_the_path_and_what_to_give(ctx, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"input path 's4://bucket/logs'.*Protocol not known: s4"):
        ctx.text_file("s4://bucket/logs").count()
    with pytest.raises(ValueError, match=r"the store 's4://bucket/tmp' names the protocol 's4'.*s3://bucket/prefix"):
        BlockStore("s4://bucket/tmp")


def test_a_partition_function_that_returns_no_int_is_named_with_the_key(ctx) -> None:
    def to_text(key):
        return "x"

    part = HashPartitioner(2, to_text)
    with pytest.raises(TypeError, match=r"'to_text' returned 'x' \(str\) for the key 1; it must return an int"):
        part.partition_many([1])
    with pytest.raises(TypeError, match="for the key 1"):
        part(1)
    with pytest.raises(dagrun.JobFailed, match=r"returned 1.5; it must be an int in \[0, 2\)"):
        ctx.parallelize([(1, 1)]).partition_by(2, lambda k: 1.5).collect()


def test_a_partition_function_may_return_any_integral_number(ctx) -> None:
    np = pytest.importorskip("numpy")
    got = ctx.parallelize([(i, i) for i in range(6)], 2).partition_by(3, lambda k: np.int64(k)).glom().collect()
    assert got == [[(0, 0), (3, 3)], [(1, 1), (4, 4)], [(2, 2), (5, 5)]]


def test_a_partition_functions_own_type_error_is_kept(ctx) -> None:
    def broken(key):
        return len(key)  # an int key has no len()

    with pytest.raises(TypeError, match="has no len"):
        HashPartitioner(2, broken).partition_many([1])
