"""A driver killed between the map and reduce stages leaves its job's blocks on S3;
``dagrun store gc`` removes them by age, keeps younger jobs, and leaves other keys alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from dagrun.cli.main import main as dagrun_main
from shuffle.layout import block_key, parse_block_key
from shuffle.store import BlockStore

DRIVER = textwrap.dedent("""
    import operator, sys
    import dagrun

    faults = [{"kind": "delay", "stage": 1, "seconds": 120}]  # the reduce stage hangs: a driver to kill
    conf = {"progress": "off", "ledger": "off", "speculation": False, "faults": faults}
    with dagrun.Context(executor="local", max_executors=2, store=sys.argv[1], conf=conf) as ctx:
        ctx.parallelize(range(1000), 4).map(lambda x: (x % 7, x)).reduce_by_key(operator.add, 2).collect()
""")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_gc_removes_what_a_killed_driver_left_and_keeps_younger_jobs(s3, tmp_path, capsys) -> None:
    url = s3.store_url("gc")
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), url], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        crashed = wait_for(lambda: (keys := s3.keys(prefix="gc/")) and len(keys) == 4 and keys, 60,
                           "the map stage's four blocks")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its executor processes
        driver.wait(10)
    assert driver.returncode == -signal.SIGKILL, driver.stderr.read().decode()[-2000:]
    wait_for(lambda: group_gone(driver.pid), 10, "the executors to die with their driver")
    time.sleep(0.3)
    assert s3.keys(prefix="gc/") == crashed  # nobody cleaned up: that is gc's job
    (job_id,) = {parse_block_key(k[3:]).job_id for k in crashed}

    store = BlockStore(url)
    # S3 keeps LastModified to the second: let the crashed blocks age past the 2 s threshold
    time.sleep(2.2)
    fresh = block_key("app-20260101000000-abcdef-j0", 0, 0, 0)
    store.put(fresh, b"a live job's block")
    store.put("notes/readme.txt", b"not a shuffle block")

    assert dagrun_main(["store", "gc", url, "--older-than", "1h"]) == 0
    assert len(s3.keys(prefix="gc/")) == 6  # everything is younger than an hour
    assert dagrun_main(["store", "gc", url, "--older-than", "2s"]) == 0
    out = capsys.readouterr().out
    assert f"removed {job_id}: 4 blocks" in out and "kept 1 jobs" in out
    assert s3.keys(prefix="gc/") == sorted([f"gc/{fresh}", "gc/notes/readme.txt"])

    # the command as a user runs it: with 0s every job goes, other objects stay
    done = subprocess.run([sys.executable, "-m", "dagrun.cli", "store", "gc", url, "--older-than", "0s"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "removed 1 jobs (1 blocks)" in done.stdout
    assert s3.keys(prefix="gc/") == ["gc/notes/readme.txt"]


def test_gc_aborts_incomplete_uploads_and_leaves_foreign_keys_alone(s3) -> None:
    url = s3.store_url("gc2")
    store = BlockStore(url)
    foreign = ["ab/foo/notes.txt", "0f/my-data/s3/m4-a1", "0a/app-1-j0/s0/m0-a0.bak"]
    for key in foreign:
        store.put(key, b"someone else's")
    crashed = block_key("app-20260101000000-abcdef-j3", 1, 2, 0)
    other_upload = "0a/my-data/big.bin"  # someone else's upload in progress under the same prefix
    ours = s3.client.create_multipart_upload(Bucket=s3.store_bucket, Key=f"gc2/{crashed}")["UploadId"]
    theirs = s3.client.create_multipart_upload(Bucket=s3.store_bucket, Key=f"gc2/{other_upload}")["UploadId"]
    time.sleep(1.1)

    assert dagrun_main(["store", "gc", url, "--older-than", "0s", "--dry-run"]) == 0
    assert len(s3.client.list_multipart_uploads(Bucket=s3.store_bucket).get("Uploads", [])) == 2
    assert dagrun_main(["store", "gc", url, "--older-than", "0s"]) == 0
    left = {(u["Key"], u["UploadId"]) for u in s3.client.list_multipart_uploads(Bucket=s3.store_bucket)["Uploads"]}
    assert left == {(f"gc2/{other_upload}", theirs)} and ours not in {u for _, u in left}
    assert s3.keys(prefix="gc2/") == sorted(f"gc2/{k}" for k in foreign)
