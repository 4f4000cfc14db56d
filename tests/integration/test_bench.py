"""Every benchmark runs end to end at a tiny size and validates its own answer.

These are correctness checks of ``dagrun bench``, never timings: each runs as the CLI in a
subprocess with two local executors, and the bench exits non-zero when its answer is wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dagrun.cli.bench_jobs import JOBS, valsort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bench(tmp_path, name: str, *args: str) -> tuple[str, dict]:
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, "-m", "dagrun.cli", "bench", name, "--size", "3MB", "--executors", "2",
                           "--data", str(tmp_path / "data"), "--json", str(out), *args],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, f"bench {name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout, json.loads(out.read_text())


@pytest.mark.parametrize("name", sorted(JOBS))
def test_each_benchmark_validates_its_answer(tmp_path, name):
    stdout, figures = bench(tmp_path, name)
    assert "VALID" in stdout and "INVALID" not in stdout
    assert figures["valid"] and figures["bench"] == name and figures["size"] >= 2_500_000
    assert figures["stages"] and all(s["tasks"] >= 1 for s in figures["stages"])
    assert figures["peak_rss_mb"], "each executor reports its peak RSS"


def test_sort_takes_the_byte_prefix_fast_path_and_shuffles_raw_runs(tmp_path):
    _, figures = bench(tmp_path, "sort")
    names = [s["stage"] for s in figures["stages"]]
    assert any("byte-prefix runs" in n for n in names), names
    # runs of raw records, stored uncompressed on the local store: the input's size
    assert 0.9 * figures["size"] < figures["shuffle_bytes"] < 1.1 * figures["size"]


def test_compare_reports_absent_peers_instead_of_failing(tmp_path, monkeypatch):
    # With no PATH, wc and java are absent; the Python loop runs by absolute path.
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    stdout, figures = bench(tmp_path, "scan", "--compare")
    peers = {p["name"]: p for p in figures["peers"]}
    assert peers["wc -l"]["seconds"] is None and "absent" in peers["wc -l"]["note"]
    assert peers["python loop (1 process)"]["seconds"] > 0
    assert "peer/dagrun" in stdout


def test_valsort_catches_disorder_and_lost_records(tmp_path):
    records = [b"%010d  payload\r\n" % k for k in (3, 1, 2)]
    source = tmp_path / "in.dat"
    source.write_bytes(b"".join(records))
    out = tmp_path / "out"
    out.mkdir()
    good = sorted(records)
    (out / "part-00000").write_bytes(b"".join(r + b"\n" for r in good))
    assert valsort(str(out), [str(source)], len(records[0])).valid
    (out / "part-00000").write_bytes(b"".join(r + b"\n" for r in reversed(good)))
    assert not valsort(str(out), [str(source)], len(records[0])).valid
    (out / "part-00000").write_bytes(b"".join(r + b"\n" for r in good[:2]))
    assert not valsort(str(out), [str(source)], len(records[0])).valid


def test_both_aggregate_loops_find_every_group(tmp_path):
    # The loop peers print their group count; it must be the answer dagrun's bench validates.
    from dagrun.cli.bench_jobs import input_files
    from dagrun.cli.bench_peers import _PY_LOOPS

    _, figures = bench(tmp_path, "aggregate")
    files = input_files(str(tmp_path / "data" / os.listdir(tmp_path / "data")[0]))
    for name in ("aggregate", "aggregate-inlined"):
        done = subprocess.run([sys.executable, "-c", _PY_LOOPS[name], *files], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert int(done.stdout) == int(figures["detail"].split()[0].replace(",", "")), name
