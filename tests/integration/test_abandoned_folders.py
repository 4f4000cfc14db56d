"""``shuffle.owned_dirs``: a killed owner's temporary folders are swept, a live one's never."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from shuffle.owned_dirs import OWNER, owned_dir, remove_owned, sweep_abandoned

HOLD = ("import sys, time; from shuffle.owned_dirs import owned_dir; "
        "print(owned_dir(sys.argv[1], sys.argv[2]), flush=True); time.sleep(600)")


def _owner_process(prefix: str, where) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, prefix, str(where)], stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_a_killed_owners_folder_is_swept_and_a_live_ones_is_not(tmp_path):
    proc, path = _owner_process("dagrun-store-", tmp_path)
    try:
        (open(os.path.join(path, "shuffle-block"), "wb")).close()
        assert sweep_abandoned([str(tmp_path)], min_age=0) == []  # its owner runs
        assert os.path.isdir(path)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert sweep_abandoned([str(tmp_path)], min_age=60) == []  # too young to judge
    assert sweep_abandoned([str(tmp_path)], min_age=0) == [path]
    assert not os.path.exists(path)


def test_folders_without_an_owner_file_or_named_otherwise_are_never_touched(tmp_path):
    foreign = tmp_path / "dagrun-store-by-someone-else"
    foreign.mkdir()
    proc, other = _owner_process("dagrun-bench-", tmp_path)  # not one of the swept names
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    (tmp_path / "dagrun-executors-link").symlink_to(other)
    assert sweep_abandoned([str(tmp_path)], min_age=0) == []
    assert foreign.is_dir() and os.path.isdir(other)


def test_own_folders_are_held_until_removed(tmp_path):
    path = owned_dir("dagrun-faults-", str(tmp_path))
    assert os.path.isfile(os.path.join(path, OWNER))
    assert sweep_abandoned([str(tmp_path)], min_age=0) == []  # this process holds it
    remove_owned(path)
    assert not os.path.exists(path)


def test_a_folder_being_made_is_never_seen_unlocked_by_a_sweep(tmp_path):
    # A sweep with no age margin, running while folders are made: it must neither make
    # owned_dir fail nor remove a folder whose owner lives.
    import threading

    done, removed = threading.Event(), []

    def sweep() -> None:
        while not done.is_set():
            removed.extend(sweep_abandoned([str(tmp_path)], min_age=0.0))

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        made = [owned_dir("dagrun-store-", str(tmp_path)) for _ in range(300)]
    finally:
        done.set()
        sweeper.join(10)
    assert removed == [] and all(os.path.isfile(os.path.join(p, OWNER)) for p in made)
    for p in made:
        remove_owned(p)


@pytest.mark.timeout(120)
def test_a_context_sweeps_what_a_killed_driver_left(tmp_path, monkeypatch):
    import dagrun
    import shuffle.owned_dirs

    driver = ("import sys, time, dagrun\n"
              "ctx = dagrun.Context(executor='local', max_executors=1, conf={'progress': 'off', 'scratch_dir': sys.argv[1]})\n"
              "ctx.parallelize(range(1000), 4).map(lambda x: (x % 7, x)).reduce_by_key(lambda a, b: a + b).collect()\n"
              "print(ctx.store_url, flush=True)\n"
              "time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", driver, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    store = proc.stdout.readline().strip()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert os.path.dirname(store) == str(tmp_path) and any(n.startswith("dagrun-executors-") for n in left), left
    proc.send_signal(signal.SIGKILL)  # no cleanup runs
    proc.wait(10)
    time.sleep(1)  # its executors see their parent gone and exit
    monkeypatch.setattr(shuffle.owned_dirs, "MIN_AGE", 0.0)
    with dagrun.Context(executor="inline", conf={"progress": "off", "scratch_dir": str(tmp_path)}) as ctx:
        deadline = time.monotonic() + 30
        while any(n.startswith(("dagrun-store-", "dagrun-executors-")) and str(tmp_path / n) != ctx.store_url
                  for n in os.listdir(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.1)
        remaining = [n for n in os.listdir(tmp_path) if str(tmp_path / n) != ctx.store_url]
    assert remaining == [], remaining
