"""shuffle.layout: key format, stable prefixes, spread, cleanup folders."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from shuffle.layout import block_key, job_dirs, prefix_of, prefix_width


def test_block_key_format() -> None:
    key = block_key("job-1", 2, 3, 0)
    assert re.fullmatch(r"[0-9a-f]{2}/job-1/s2/m3-a0", key)
    assert key.split("/")[0] == prefix_of("job-1", 2, 3)


def test_prefix_is_a_fixed_function_of_its_inputs() -> None:
    # Pinned so an accidental change of hash or format (which would orphan blocks written
    # by a driver of another version) fails loudly.
    assert block_key("job-1", 2, 3, 0) == "0b/job-1/s2/m3-a0"
    assert prefix_of("job-1", 2, 3, 4096) == "30b"


def test_prefix_is_stable_across_processes() -> None:
    code = "from shuffle.layout import block_key; print(block_key('jx', 7, 11, 2, 64))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.stdout.strip() == block_key("jx", 7, 11, 2, 64)


def test_prefixes_spread_map_outputs() -> None:
    prefixes = {prefix_of("job-spread", 0, m, 16) for m in range(32)}
    assert len(prefixes) >= 8


def test_attempts_share_prefix_but_not_key() -> None:
    a0, a1 = block_key("j", 1, 5, 0), block_key("j", 1, 5, 1)
    assert a0 != a1 and a0.split("/")[0] == a1.split("/")[0]


@pytest.mark.parametrize("prefixes, width", [(1, 2), (16, 2), (256, 2), (257, 3), (4096, 3)])
def test_prefix_width(prefixes: int, width: int) -> None:
    assert prefix_width(prefixes) == width
    assert all(len(prefix_of("j", 0, m, prefixes)) == width for m in range(20))
    assert all(int(prefix_of("j", 0, m, prefixes), 16) < prefixes for m in range(200))


@pytest.mark.parametrize("prefixes", [1, 16, 300])
def test_job_dirs_cover_every_block(prefixes: int) -> None:
    dirs = job_dirs("job-9", prefixes)
    assert len(dirs) == len(set(dirs)) == prefixes
    for m in range(50):
        key = block_key("job-9", 3, m, 0, prefixes)
        assert key.rsplit("/", 2)[0] in dirs


@pytest.mark.parametrize("job_id", ["", "a/b", "..", "."])
def test_bad_job_ids_are_refused(job_id: str) -> None:
    with pytest.raises(ValueError):
        block_key(job_id, 0, 0, 0)
    with pytest.raises(ValueError):
        job_dirs(job_id)


@pytest.mark.parametrize("args", [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (0, 0, "1")])
def test_bad_ids_are_refused(args: tuple) -> None:
    with pytest.raises(ValueError):
        block_key("j", *args)


def test_zero_prefixes_refused() -> None:
    with pytest.raises(ValueError):
        prefix_of("j", 0, 0, 0)
