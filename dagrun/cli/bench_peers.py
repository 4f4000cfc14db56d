"""The peers ``dagrun bench --compare`` runs on the same data, each as a subprocess.

Each peer is a command; its wall time includes its own startup, as a user would see it.
A peer whose program or package is missing is reported absent, never as an error.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from dagrun.cli.bench_jobs import AGG_PARSE, BY_LENGTH, IN_RANGE, KEY_LENGTH, RECORD_LENGTH, SORT_KEY, TOP10, WORD_PAIR


@dataclass
class PeerResult:
    name: str
    seconds: float | None  # None: absent or failed
    note: str = ""


_PY_LOOPS = {
    "scan": """
import sys
n = 0
for name in sys.argv[1:]:
    with open(name, "rb") as f:
        n += sum(1 for _ in f)
print(n)
""",
    # issue 15's peer: one process running the job's own two functions in a plain loop
    "aggregate": """
import operator, sys
parse, add = {agg}, operator.add
sums = {{}}
for name in sys.argv[1:]:
    with open(name) as f:
        for line in f:
            k, v = parse(line)
            sums[k] = add(sums[k], v) if k in sums else v
print(len(sums))
""".format(agg=AGG_PARSE),
    # the same answer with the parse written inline, one split a line: what a hand-tuned script costs
    "aggregate-inlined": """
import sys
sums = {}
for name in sys.argv[1:]:
    with open(name) as f:
        for line in f:
            fields = line.split(",", 4)
            k = fields[0][:8]
            sums[k] = sums.get(k, 0.0) + float(fields[3])
print(len(sums))
""",
    "sort": """
import sys
out, names = sys.argv[1], sys.argv[2:]
records = []
for name in names:
    with open(name) as f:
        records.extend(line.rstrip("\\r\\n") for line in f)
records.sort(key=lambda r: r[:10])
with open(out, "w") as f:
    f.write("\\n".join(records) + "\\n")
print(len(records))
""",
    "wordlen": """
import sys
counts = {}
for name in sys.argv[1:]:
    with open(name) as f:
        for line in f:
            for w in line.split():
                counts[w] = counts.get(w, 0) + 1
top = {}
for w, c in counts.items():
    if 1 <= len(w) <= 20:
        top.setdefault(len(w), []).append((w, c))
print(len({n: sorted(v, key=lambda wc: (-wc[1], wc[0]))[:10] for n, v in top.items()}))
""",
}

_PYSPARK = """
import operator, sys
from pyspark import SparkConf, SparkContext
bench, n, path, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
conf = SparkConf().setMaster(f"local[{{n}}]").setAppName("dagrun-bench-peer").set("spark.ui.enabled", "false")
sc = SparkContext(conf=conf)
sc.setLogLevel("ERROR")
text = sc.textFile(path)
if bench == "scan":
    print(text.count())
elif bench == "aggregate":
    print(len(text.map({agg}).reduceByKey(operator.add).collect()))
elif bench == "sort":
    sc.binaryRecords(path, {length}).sortBy(lambda r: r[:{key}]).saveAsTextFile(out)
elif bench == "sort-lambda":
    sc.binaryRecords(path, {length}).sortBy({sort}).saveAsTextFile(out)
else:
    counts = text.flatMap(str.split).map({pair}).reduceByKey(operator.add)
    print(len(counts.map({by_len}).filter({in_range}).groupByKey().mapValues({top}).collect()))
sc.stop()
""".format(agg=AGG_PARSE, sort=SORT_KEY, pair=WORD_PAIR, by_len=BY_LENGTH, in_range=IN_RANGE, top=TOP10,
           length=RECORD_LENGTH, key=KEY_LENGTH)

_DUCKDB = """
import sys, duckdb
con = duckdb.connect()
con.execute(f"SET threads TO {int(sys.argv[1])}")
rows = con.execute(
    "SELECT substr(column0, 1, 8) AS k, sum(column3) FROM read_csv(?, header=false, columns={"
    "'column0': 'VARCHAR', 'column1': 'VARCHAR', 'column2': 'VARCHAR', 'column3': 'DOUBLE', "
    "'column4': 'VARCHAR', 'column5': 'VARCHAR', 'column6': 'VARCHAR', 'column7': 'VARCHAR', "
    "'column8': 'VARCHAR'}) GROUP BY k", [sys.argv[2] + "/*.csv"]).fetchall()
print(len(rows))
"""


def _timed(name: str, cmd: list[str], env: dict | None = None, timeout: float = 3600) -> PeerResult:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return PeerResult(name, None, f"timed out after {timeout:.0f}s")
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return PeerResult(name, None, f"failed: {tail[0][:120]}")
    return PeerResult(name, elapsed)


def run_peers(bench: str, files: list[str], data_path: str, executors: int, scratch: str) -> list[PeerResult]:
    """Run every peer that applies to ``bench``; absent ones are reported, not raised."""
    results = []
    py = sys.executable
    if bench == "scan":
        results.append(_timed("wc -l", ["wc", "-l", *files]) if shutil.which("wc")
                       else PeerResult("wc -l", None, "absent: no wc on PATH"))
    if bench.startswith("sort"):
        name = f"LC_ALL=C sort --parallel={executors}"
        if shutil.which("sort"):
            env = {**os.environ, "LC_ALL": "C"}
            results.append(_timed(name, ["sort", f"--parallel={executors}", "-S", "40%", "-T", scratch,
                                         "-o", os.path.join(scratch, "gnu-sorted"), *files], env))
        else:
            results.append(PeerResult(name, None, "absent: no sort on PATH"))
    loop_args = [os.path.join(scratch, "py-sorted")] + files if bench.startswith("sort") else files
    loop = _PY_LOOPS["sort" if bench.startswith("sort") else bench]
    results.append(_timed("python loop (1 process)", [py, "-c", loop, *loop_args]))
    if bench == "aggregate":
        results.append(_timed("python loop, parse inlined", [py, "-c", _PY_LOOPS["aggregate-inlined"], *files]))
    if importlib.util.find_spec("pyspark") is None:
        results.append(PeerResult(f"pyspark local[{executors}]", None, "absent: pip install 'dagrun[bench]'"))
    elif shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        results.append(PeerResult(f"pyspark local[{executors}]", None, "absent: no Java runtime"))
    else:
        out = os.path.join(scratch, "pyspark-out")
        shutil.rmtree(out, ignore_errors=True)
        env = {**os.environ, "PYSPARK_PYTHON": py, "PYSPARK_DRIVER_PYTHON": py}
        results.append(_timed(f"pyspark local[{executors}]", [py, "-c", _PYSPARK, bench, str(executors),
                                                               data_path, out], env))
    if bench == "aggregate":
        if importlib.util.find_spec("duckdb") is None:
            results.append(PeerResult(f"duckdb ({executors} threads)", None, "absent: pip install duckdb"))
        else:
            results.append(_timed(f"duckdb ({executors} threads)", [py, "-c", _DUCKDB, str(executors), data_path]))
    return results
