"""A PySpark RDD script, imports swapped, run unchanged through ``dagrun run``; the CLI's forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

# A PySpark script as PySpark users write it: camelCase, SparkContext(appName=...), numSlices,
# textFile, broadcast, accumulator; only its import line names dagrun.
SCRIPT = textwrap.dedent('''
    import json
    import sys
    from operator import add

    from dagrun.pyspark import SparkConf, SparkContext

    conf = SparkConf().setAppName("wordcount")
    sc = SparkContext(conf=conf)
    lines = sc.textFile(sys.argv[1], minPartitions=3)
    stop = sc.broadcast({"the"})
    blank = sc.accumulator(0)

    def words(line):
        return [w for w in line.lower().split() if w not in stop.value]

    def count_blank(line):
        if not line.strip():
            blank.add(1)

    lines.foreach(count_blank)  # in an action: counted once (in a transformation, per recompute)

    counts = lines.flatMap(words).map(lambda w: (w, 1)).reduceByKey(add, numPartitions=4)
    top = counts.sortBy(lambda kv: (-kv[1], kv[0])).take(5)
    lengths = counts.map(lambda kv: (len(kv[0]), kv[0]))
    joined = lengths.join(sc.parallelize([(3, "three"), (5, "five")], numSlices=2)).sortByKey().collect()
    print(json.dumps({"top": top, "joined": joined, "blank": blank.value, "n": counts.count(),
                      "executor": sc.dagrun_context.config.executor, "args": sys.argv[2:]}))
    sc.stop()
''')

TEXT = "The quick brown fox\n\njumps over the lazy dog\nthe dog sleeps\n\nquick quick fox\n"


def expected() -> dict:
    words = [w for line in TEXT.splitlines() for w in line.lower().split() if w != "the"]
    counts = Counter(words)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    joined = sorted(((len(w), (w, {3: "three", 5: "five"}[len(w)])) for w in counts if len(w) in (3, 5)),
                    key=lambda kv: kv[0])
    return {"top": [list(kv) for kv in top], "joined": joined, "blank": 2, "n": len(counts)}


def dagrun_cli(*args: str, cwd, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGRUN_HOME": str(cwd / "home"), "DAGRUN_PROGRESS": "off"}
    return subprocess.run([sys.executable, "-m", "dagrun.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def script(tmp_path):
    (tmp_path / "job.py").write_text(SCRIPT)
    (tmp_path / "input.txt").write_text(TEXT)
    return tmp_path


def _result(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _sorted_join(result: dict) -> list:
    return sorted([k, list(v)] for k, v in result["joined"])


@pytest.mark.timeout(240)
def test_pyspark_word_count_join_and_sort_run_unchanged_on_local_executors(script):
    result = _result(dagrun_cli("run", "--executor", "local", "--conf", "max_executors=2", "job.py", "input.txt",
                                cwd=script))
    want = expected()
    assert result["executor"] == "local"
    assert result["top"] == want["top"] and result["n"] == want["n"] and result["blank"] == want["blank"]
    assert [k for k, _ in result["joined"]] == sorted(k for k, _ in want["joined"])  # sortByKey: key order
    assert _sorted_join(result) == sorted([k, list(v)] for k, v in want["joined"])


@pytest.mark.timeout(120)
def test_an_option_before_the_script_is_dagruns_and_inline_runs_inline(script):
    result = _result(dagrun_cli("run", "--executor", "inline", "job.py", "input.txt", "--verbose", cwd=script))
    assert result["executor"] == "inline" and result["args"] == ["--verbose"]
    assert result["top"] == expected()["top"]


@pytest.mark.timeout(60)
def test_a_dagrun_option_after_the_script_is_refused_with_the_right_form(script):
    proc = dagrun_cli("run", "job.py", "--executor", "lambda", cwd=script)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "dagrun run --executor lambda job.py" in proc.stderr
    assert "dagrun run job.py -- --executor lambda" in proc.stderr
    proc = dagrun_cli("run", "job.py", "input.txt", "--conf=max_attempts=2", cwd=script)
    assert proc.returncode == 2 and "dagrun run --conf=max_attempts=2 job.py input.txt" in proc.stderr


@pytest.mark.timeout(120)
def test_after_a_double_dash_every_option_goes_to_the_script(script):
    proc = dagrun_cli("run", "--executor", "inline", "job.py", "--", "input.txt", "--executor", "lambda",
                      cwd=script)
    result = _result(proc)
    assert result["executor"] == "inline" and result["args"] == ["--executor", "lambda"]


def test_version_and_a_missing_script(tmp_path):
    from importlib.metadata import version

    proc = dagrun_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == f"dagrun {version('dagrun')}"
    proc = dagrun_cli("run", "nope.py", cwd=tmp_path)
    assert proc.returncode == 2 and "no such script 'nope.py'" in proc.stderr


def test_jvm_only_methods_say_what_to_use_instead():
    from dagrun.pyspark import SparkContext

    with SparkContext("inline", "jvm") as sc:
        with pytest.raises(NotImplementedError, match="hadoopFile.*use textFile, sequenceFile"):
            sc.hadoopFile("x", "org.apache.hadoop.mapred.KeyValueTextInputFormat")
        with pytest.raises(NotImplementedError, match="saveAsHadoopFile.*saveAsTextFile"):
            sc.parallelize([1]).saveAsHadoopFile("x", "org.apache.hadoop.mapred.MapFileOutputFormat")
        with pytest.raises(ValueError, match="Cannot run multiple SparkContexts"):
            SparkContext("inline", "second")
        assert SparkContext.getOrCreate() is sc
    with pytest.raises(ValueError, match="master 'spark://host:7077' is not one dagrun can run on"):
        SparkContext("spark://host:7077")


def test_camel_case_names_follow_the_snake_case_api():
    """Every public dagrun RDD method is on the PySpark RDD under its camelCase name."""
    import dagrun
    from dagrun.pyspark import RDD
    from dagrun.pyspark.names import camel, public_methods

    missing = [m for m in public_methods(dagrun.RDD) if not callable(getattr(RDD, camel(m), None))]
    assert not missing
    with dagrun.pyspark.SparkContext("inline[2]", "names") as sc:
        rdd = sc.parallelize(range(6), numSlices=3)
        assert rdd.getNumPartitions() == 3
        assert rdd.mapPartitionsWithIndex(lambda i, it: [i * 10 + sum(it)]).collect() == [1, 15, 29]
        assert rdd.map(lambda x: (x % 2, x)).combineByKey(lambda v: [v], lambda a, v: a + [v], lambda a, b: a + b,
                                                          numPartitions=2).mapValues(sorted).collectAsMap() \
            == {0: [0, 2, 4], 1: [1, 3, 5]}
        assert isinstance(rdd.randomSplit([0.5, 0.5], seed=1)[0], RDD)


def test_job_groups_are_recorded_and_a_group_can_be_cancelled():
    import threading
    import time

    from dagrun.pyspark import SparkContext
    from dagrun.pyspark.context import JobCancelled

    with SparkContext("local[2]", "groups") as sc:
        sc.setJobGroup("g1", "first")
        assert sc.parallelize([1, 2]).count() == 2
        assert sc.parallelize([1]).collectWithJobGroup("g2", "second") == [1]
        assert len(sc.statusTracker().getJobIdsForGroup("g1")) == 1
        (job,) = sc.statusTracker().getJobIdsForGroup("g2")
        assert sc.statusTracker().getJobInfo(job).status == "SUCCEEDED"
        outcome = {}

        def slow():
            sc.setJobGroup("slow", "to cancel")
            try:
                sc.parallelize(range(2), 2).map(lambda x: time.sleep(60)).collect()
            except JobCancelled as exc:
                outcome["error"] = str(exc)

        thread = threading.Thread(target=slow)
        started = time.monotonic()
        thread.start()
        time.sleep(2)
        sc.cancelJobGroup("slow")
        thread.join(30)
        assert not thread.is_alive() and "slow" in outcome["error"] and time.monotonic() - started < 30
        assert sc.parallelize([3]).collect() == [3]  # the context is usable after a cancel
