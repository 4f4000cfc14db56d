"""On S3 the commit point of save_as_text_file is a PUT with If-None-Match: * (issue 13, Build 8)."""

from __future__ import annotations

import threading
import time

import fsspec
import s3fs

import dagrun
from dagrun.api.output import _claim

CONF = {"progress": "off", "ledger": "off", "job_history": 0}


def test_the_claim_is_exclusive_on_s3(s3) -> None:
    fs, path = fsspec.core.url_to_fs(f"s3://{s3.store_bucket}/claims/_COMMIT")
    assert _claim(fs, path, "first") is True
    assert _claim(fs, path, "second") is False
    assert s3.client.get_object(Bucket=s3.store_bucket, Key="claims/_COMMIT")["Body"].read() == b"first"


def test_two_concurrent_saves_to_one_s3_path_give_one_winner(s3, monkeypatch) -> None:
    out = f"s3://{s3.store_bucket}/out/race"
    past_check, real = threading.Barrier(2, timeout=30), s3fs.S3FileSystem.makedirs

    def makedirs(self, path, exist_ok=False):  # both saves are past the exists-check before going on
        past_check.wait()
        return real(self, path, exist_ok=exist_ok)

    monkeypatch.setattr(s3fs.S3FileSystem, "makedirs", makedirs)
    outcome: dict[str, BaseException | None] = {}

    def save(me: str) -> None:
        with dagrun.Context(executor="inline", max_executors=2, conf=CONF) as c:
            try:
                c.parallelize([f"{me}-{i}" for i in range(6)], 3).save_as_text_file(out)
                outcome[me] = None
            except FileExistsError as exc:
                outcome[me] = exc

    started = time.monotonic()
    threads = [threading.Thread(target=save, args=(me,)) for me in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert time.monotonic() - started < 60 and len(outcome) == 2, outcome
    winners = [k for k, v in outcome.items() if v is None]
    assert len(winners) == 1, outcome
    assert s3.keys(prefix="out/race/") == [f"out/race/{n}" for n in ("_SUCCESS", "part-00000", "part-00001",
                                                                      "part-00002")]
    with dagrun.Context(executor="inline", conf=CONF) as c:
        assert sorted(c.text_file(out).collect()) == sorted(f"{winners[0]}-{i}" for i in range(6))


def test_a_compressed_save_to_s3_uploads_every_part_and_reads_back(s3) -> None:
    lines = [f"row {i}" for i in range(2000)]
    with dagrun.Context(executor="local", max_executors=2, conf=CONF) as c:
        for codec, suffix in (("gzip", ".gz"), ("bz2", ".bz2"), ("deflate", ".deflate"), ("zstd", ".zst")):
            out = f"s3://{s3.store_bucket}/out/{codec}"
            c.parallelize(lines, 3).save_as_text_file(out, compression=codec)
            assert s3.keys(prefix=f"out/{codec}/") == [f"out/{codec}/_SUCCESS"] + [
                f"out/{codec}/part-0000{i}{suffix}" for i in range(3)]
            assert c.text_file(out).collect() == lines
