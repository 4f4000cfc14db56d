"""Jobs with their input and shuffle store on S3 (moto over HTTP, through the counting proxy):
exact results, per-stage request counts equal to what the server received, no LIST by
reducers, prefix spread, cleanup, injected 503s, and output commit under speculation."""

from __future__ import annotations

import logging
import operator
import time
from collections import Counter

import pytest

import dagrun
from scheduler.errors import JobAborted

LINES = [f"w{i % 37} w{i % 11} w{(i * 7) % 5} tail{i % 3}" for i in range(3000)]
BASE_CONF = {"progress": "off", "speculation": False, "ledger": "off"}


def expected_word_counts(lines: list[str]) -> list[tuple[str, int]]:
    return sorted(Counter(w for line in lines for w in line.split()).items())


def put_words(s3, name: str = "words", files: int = 2) -> str:
    per = len(LINES) // files
    for f in range(files):
        s3.put_input(f"{name}/part-{f}.txt", ("\n".join(LINES[f * per:(f + 1) * per]) + "\n").encode())
    return f"s3://{s3.input_bucket}/{name}/*.txt"


def word_count(ctx, url: str, split_size: int = 16 << 10, reducers: int = 4) -> list[tuple[str, int]]:
    return sorted(ctx.text_file(url, split_size=split_size).flat_map(str.split).map(lambda w: (w, 1))
                  .reduce_by_key(operator.add, reducers).collect())


def local_ctx(s3, **conf) -> dagrun.Context:
    return dagrun.Context(executor="local", max_executors=2, store=s3.store_url(), conf={**BASE_CONF, **conf})


def kinds(counter: Counter) -> Counter:
    return +Counter({k: v for k, v in counter.items() if k != "throttled"})


def test_word_count_on_s3_counts_every_request_the_server_saw(s3) -> None:
    url = put_words(s3)
    with local_ctx(s3) as ctx:
        s3.proxy.reset()
        assert word_count(ctx, url) == expected_word_counts(LINES)
        job = ctx.last_job
    map_stage, reduce_stage = [s.stage_id for s in job.stages]
    windows = {}
    for stage_id in (map_stage, reduce_stage):
        attempts = [a for a in job.attempts if a.stage_id == stage_id]
        windows[stage_id] = (min(a.assigned for a in attempts), max(a.finished for a in attempts))
    assert windows[map_stage][1] < windows[reduce_stage][0]  # no speculation: the stages do not overlap
    bucket = s3.store_bucket
    per_stage = job.stage_requests()
    seen = {stage: s3.proxy.counts(bucket, *window) for stage, window in windows.items()}
    read = {stage: s3.proxy.counts(s3.input_bucket, *window) for stage, window in windows.items()}
    seen_by_driver = s3.proxy.counts(bucket, since=windows[reduce_stage][1], until=job.finished)
    report = {"map": dict(seen[map_stage]), "reduce": dict(seen[reduce_stage]), "driver": dict(seen_by_driver),
              "input (not the store)": dict(s3.proxy.counts(s3.input_bucket))}
    print("requests the server saw:", report)
    # a stage's counts are its store requests plus its input reads (the map stage's GETs)
    assert kinds(per_stage[map_stage]) == seen[map_stage] + read[map_stage], report
    assert kinds(per_stage[reduce_stage]) == seen[reduce_stage] + read[reduce_stage], report
    assert not read[reduce_stage]
    assert Counter(job.driver_requests) == seen_by_driver, report
    # ctx.stop() made no request either; the input's LIST is the driver's planning, before the job
    input_during_job = s3.proxy.counts(s3.input_bucket, since=windows[map_stage][0])
    assert kinds(job.requests) == s3.proxy.counts(bucket) + input_during_job
    maps = len([a for a in job.attempts if a.stage_id == map_stage])
    assert seen[map_stage] == Counter(put=maps, bytes_out=seen[map_stage]["bytes_out"])  # one PUT per map task
    assert seen[reduce_stage]["list"] == 0 and seen[reduce_stage]["head"] == 0  # reducers only GET
    assert seen[reduce_stage]["get"] >= 4
    assert seen_by_driver["list"] == 16 and seen_by_driver["delete"] >= 1  # cleanup of the 16 prefixes
    # input splits are read by ranged GETs alone: no HEAD or LIST in the executors
    input_reads = s3.proxy.counts(s3.input_bucket, *windows[map_stage])
    assert set(input_reads) <= {"get", "bytes_in"} and input_reads["get"] >= maps
    assert s3.keys() == []  # the job's prefix is gone


def test_a_default_sized_shuffle_costs_one_get_per_map_output_per_reduce_task(s3) -> None:
    url = put_words(s3)
    with local_ctx(s3) as ctx:
        s3.proxy.reset()
        words = ctx.text_file(url, split_size=16 << 10).flat_map(str.split).map(lambda w: (w, 1))
        got = sorted(words.reduce_by_key(operator.add).collect())  # as many partitions as maps
        job = ctx.last_job
    assert got == expected_word_counts(LINES)
    map_stage, reduce_stage = [s.stage_id for s in job.stages]
    maps = len([a for a in job.attempts if a.stage_id == map_stage])
    reduces = [a for a in job.attempts if a.stage_id == reduce_stage]
    assert len(reduces) == 2 < maps  # a small shuffle: one task per executor, each several partitions
    window = (min(a.assigned for a in reduces), max(a.finished for a in reduces))
    assert s3.proxy.counts(s3.store_bucket, *window)["get"] == maps * len(reduces)  # not maps x partitions


def test_text_file_on_s3_is_split_by_byte_range_like_a_local_file(s3, tmp_path) -> None:
    url = put_words(s3, "split", files=1)
    local = tmp_path / "part-0.txt"
    local.write_bytes(("\n".join(LINES) + "\n").encode())
    with dagrun.Context(executor="inline", max_executors=2, conf=BASE_CONF) as ctx:
        rdd = ctx.text_file(url, split_size=8 << 10)
        on_disk = ctx.text_file(str(local), split_size=8 << 10)
        ranges = [(s.data.start, s.data.end) for s in rdd._node.splits]
        assert len(ranges) >= 5 and ranges == [(s.data.start, s.data.end) for s in on_disk._node.splits]
        s3.proxy.reset()
        assert rdd.collect() == LINES
        assert rdd.count() == len(LINES)
    # one ranged GET per split to collect, one more per split to count, and a short read
    # past the end of each split but the last to finish its last line: no HEAD, no LIST
    assert s3.proxy.counts(s3.input_bucket)["get"] == 3 * len(ranges) - 1
    assert set(s3.proxy.counts(s3.input_bucket)) == {"get", "bytes_in"}


def test_a_bz2_file_on_s3_is_split_by_its_blocks_with_ranged_gets_alone(s3) -> None:
    import bz2

    lines = [f"{i} {line}" for i, line in enumerate(LINES * 20)]
    url = s3.put_input("logs/words.txt.bz2", bz2.compress(("\n".join(lines) + "\n").encode(), 1))
    with dagrun.Context(executor="local", max_executors=2, store=s3.store_url(), conf=BASE_CONF) as ctx:
        rdd = ctx.text_file(url, 6)
        assert rdd.get_num_partitions() == 6  # planned: the driver's HEAD of the file
        s3.proxy.reset()
        assert rdd.collect() == lines
        assert sum(1 for n in rdd.glom().map(len).collect() if n) > 1  # more than one split holds blocks
        assert rdd.count() == len(lines)
    assert set(s3.proxy.counts(s3.input_bucket)) == {"get", "bytes_in"}  # no HEAD, no LIST


@pytest.mark.parametrize("prefixes, at_least, at_most", [(16, 8, 16), (64, 17, 64), (4, 1, 4)])
def test_map_blocks_spread_over_first_level_prefixes(s3, prefixes, at_least, at_most) -> None:
    conf = {**BASE_CONF, "keep_shuffle": True, "shuffle.prefixes": prefixes}
    with dagrun.Context(executor="inline", max_executors=4, store=s3.store_url("spread"), conf=conf) as ctx:
        pairs = ctx.parallelize(range(3200), 32).map(lambda x: (x % 10, x))
        assert sorted(pairs.reduce_by_key(operator.add, 2).collect()) == \
            sorted(Counter({k: sum(range(k, 3200, 10)) for k in range(10)}).items())
        keys = s3.keys(prefix="spread/")
        firsts = {k.split("/")[1] for k in keys}
        assert len(keys) == 32
        assert at_least <= len(firsts) <= at_most, sorted(firsts)
        assert all(int(p, 16) < prefixes and len(p) == 2 for p in firsts)


def test_shuffle_prefix_is_kept_with_keep_shuffle_and_deleted_after_a_failed_job(s3) -> None:
    url = put_words(s3)
    with local_ctx(s3, keep_shuffle=True) as ctx:
        assert word_count(ctx, url) == expected_word_counts(LINES)
        assert len(s3.keys()) == ctx.text_file(url, split_size=16 << 10).get_num_partitions()
    s3.client.delete_objects(Bucket=s3.store_bucket, Delete={"Objects": [{"Key": k} for k in s3.keys()]})
    faults = [{"kind": "fail", "stage": 1, "attempt": None}]  # every reduce attempt fails
    with local_ctx(s3, faults=faults, max_attempts=2) as ctx:
        with pytest.raises(JobAborted, match="injected failure"):
            word_count(ctx, url)
        assert not ctx.last_job.succeeded
        assert s3.keys() == []  # map outputs were written, and deleted when the job failed
        assert ctx.last_job.driver_requests["delete"] >= 1


def test_injected_503s_are_retried_counted_and_slow_the_ramp(s3) -> None:
    url = put_words(s3)
    with local_ctx(s3, faults=[{"kind": "store_503", "count": 5}]) as ctx:
        assert word_count(ctx, url) == expected_word_counts(LINES)
        job = ctx.last_job
    assert job.throttles == 5
    assert sum(a.metrics.store_requests.get("throttled", 0) for a in job.attempts) == 5
    throttles = [e for e in job.scheduler_log if e.what == "throttle"]
    assert throttles and all(e.detail["source"] == "store" for e in throttles)
    assert not job.retried_tasks()  # the store retried the requests; no task had to
    # an injected 503 fails before the request is sent: the server saw only the retries
    # (the input's reads count too; its LIST, planning the splits, came before the job)
    assert kinds(job.requests) == s3.proxy.counts(s3.store_bucket) + s3.proxy.counts(s3.input_bucket,
                                                                                    since=job.started)


def test_save_as_text_file_under_speculation_leaves_one_part_per_partition(s3) -> None:
    faults = [{"kind": "delay", "stage": 0, "partition": 1, "seconds": 2.0}]
    conf = {"speculation": True, "speculation_quantile": 0.0, "speculation_multiplier": 0.01, "faults": faults}
    out = f"s3://{s3.store_bucket}/out/words"
    with local_ctx(s3, **conf) as ctx:
        ctx.parallelize(LINES, 4).save_as_text_file(out)
        job = ctx.last_job
        assert [(a.partition, a.outcome) for a in job.attempts if a.speculative and a.partition == 1] \
            == [(1, "committed")]
        time.sleep(2.5)  # the straggler finishes, writes its attempt file, and is discarded
        assert [(a.attempt, a.outcome) for a in job.attempts if a.partition == 1] == \
            [(0, "discarded"), (1, "committed")]
    late = [r.key for r in s3.proxy.seen(s3.store_bucket, since=job.finished) if r.kind == "DELETE"]
    assert [k for k in late if k.endswith("part-00001-a0")]  # the driver deleted the straggler's file
    keys = s3.keys(prefix="out/words/")
    assert keys == [f"out/words/{n}" for n in ("_SUCCESS", "part-00000", "part-00001", "part-00002", "part-00003")]
    with dagrun.Context(executor="inline", conf=BASE_CONF) as ctx:
        assert ctx.text_file(out).collect() == LINES


def test_a_failed_save_leaves_no_success_marker_and_no_part_files(s3) -> None:
    out = f"s3://{s3.store_bucket}/out/failed"
    # partition 2 fails once the others have written their attempt files
    faults = [{"kind": "delay", "partition": 2, "seconds": 0.5}, {"kind": "fail", "partition": 2}]
    with dagrun.Context(executor="inline", max_executors=2, conf={**BASE_CONF, "faults": faults,
                                                                  "max_attempts": 1}) as ctx:
        with pytest.raises(JobAborted, match="injected failure"):
            ctx.parallelize(LINES, 4).save_as_text_file(out)
        written = [r.key for r in s3.proxy.seen(s3.store_bucket) if r.method == "PUT"]
        assert len(written) == 3 and all("/_temporary/" in k for k in written)
    assert s3.keys(prefix="out/failed") == []  # their attempt files went with _temporary


def test_storage_options_reach_executors_and_credentials_stay_out_of_logs(s3, caplog, capfd) -> None:
    secret = "s3cr3t-value-that-must-not-leak"
    caplog.set_level(logging.DEBUG)
    url = put_words(s3)
    s3.proxy.reset()
    # the options name moto itself, so every request that honours them bypasses the proxy
    options = {"key": "AKIAFAKEKEY", "secret": secret, "endpoint_url": s3.moto_url}
    conf = {**BASE_CONF, "storage_options": options}
    with dagrun.Context(executor="local", max_executors=2, store=s3.store_url(), conf=conf) as ctx:
        assert word_count(ctx, url) == expected_word_counts(LINES)
        assert ctx.last_job.requests["put"] >= 4 and s3.proxy.seen() == []
        texts = [repr(ctx.config), repr(ctx.store), repr(ctx.last_job), str(ctx.last_job.requests)]
        with pytest.raises(FileNotFoundError) as info:
            ctx.text_file(f"s3://{s3.input_bucket}/nothing-here.txt").count()
        texts.append(str(info.value))
    out, err = capfd.readouterr()
    assert caplog.text
    assert not [t for t in (*texts, caplog.text, out, err) if secret in t]


def test_hadoop_brace_alternatives_select_s3_folders(s3) -> None:
    for day in ("2024-01-01", "2024-01-02", "2024-02-01"):
        s3.put_input(f"days/{day}/part-0.txt", f"{day} a\n{day} b\n".encode())
    with dagrun.Context(executor="inline", max_executors=2, conf=BASE_CONF) as ctx:
        got = ctx.text_file(f"s3://{s3.input_bucket}/days/2024-0{{1-0{{1,2}},2-01}}/*.txt").collect()
    assert got == [f"{day} {x}" for day in ("2024-01-01", "2024-01-02", "2024-02-01") for x in "ab"]


def test_sequence_and_pickle_files_on_s3_are_split_and_saved(s3) -> None:
    import io

    from dagrun.runtime import sequence_files, writables

    pairs = [(f"{i} {line}", i) for i, line in enumerate(LINES * 4)]
    out = io.BytesIO()
    writer = sequence_files.SequenceWriter(out, writables.TEXT, writables.INT)
    for k, v in pairs:
        writer.append(writables.encode(k)[1], writables.encode(v)[1])
    writer.close()
    url = s3.put_input("seq/pairs.seq", out.getvalue())
    with local_ctx(s3) as ctx:
        rdd = ctx.sequence_file(url, min_splits=4)
        assert rdd.get_num_partitions() == 4
        s3.proxy.reset()
        assert rdd.collect() == pairs
        assert set(s3.proxy.counts(s3.input_bucket)) == {"get", "bytes_in"}  # ranged GETs alone
        saved = f"s3://{s3.input_bucket}/saved"
        rdd.save_as_pickle_file(saved)
        assert sorted(ctx.pickle_file(saved).collect()) == sorted(pairs)
        rdd.map(lambda kv: (kv[1], kv[0])).save_as_sequence_file(saved + "-seq", "DefaultCodec")
        assert ctx.sequence_file(saved + "-seq").collect_as_map() == {v: k for k, v in pairs}
