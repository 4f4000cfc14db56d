"""PySpark's own documented examples, collected from the installed pyspark, run on dagrun.pyspark.

Nothing of PySpark's is kept in this project: the examples are the docstrings of the
installed ``pyspark/core/rdd.py`` and ``pyspark/core/context.py``, found at test time with
``doctest.DocTestFinder`` and run as PySpark's own ``_test()`` runs them (the module's
globals, ``sc`` bound to a SparkContext with four slots, ELLIPSIS and NORMALIZE_WHITESPACE),
except that ``sc`` and the names dagrun.pyspark exports are dagrun's.

What needs the JVM is skipped, for the reason given, in ``JVM``; what dagrun does
differently on purpose is in ``DIFFERENT`` (expected to fail, strictly, so a fix shows).
Both lists are here and nowhere else.  Examples whose output comes from executors' stdout,
or that cancel a running job, run on local executor processes; the rest run inline.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

pytest.importorskip("pyspark", reason="the pyspark distribution (the dev extra) holds the examples")

import dagrun.pyspark as dagrun_pyspark  # noqa: E402

MODULES = ("pyspark.core.rdd", "pyspark.core.context")

JVM = {
    "RDDBarrier.mapPartitions": "barrier execution is a JVM scheduler mode",
    "RDDBarrier.mapPartitionsWithIndex": "barrier execution is a JVM scheduler mode",
    "RDD.toDebugString": "the expected text is the JVM's lineage dump (PythonRDD...)",
    "SparkContext.getSystemProperty": "reads a JVM system property",
    "SparkContext.addFile": "SparkFiles ships files through the JVM's file server",
    "SparkContext.addArchive": "SparkFiles ships archives through the JVM's file server",
    "portable_hash": "tests PySpark's own function (it needs PYTHONHASHSEED), not the SparkContext",
}
# Single examples that need the JVM: (docstring, a fragment of the source of an example that
# expects an exception).
JVM_EXAMPLES = {
    ("RDD.persist", "persist(StorageLevel.MEMORY_ONLY_2)"):
        "expects the JVM's exception type, py4j.protocol.Py4JJavaError (dagrun raises ValueError)",
}
# Not a difference of dagrun's: the printed order of a set of str follows PYTHONHASHSEED.
UNORDERED = {"SparkContext.removeJobTag": "prints a set of two strings, whose order follows PYTHONHASHSEED"}
DIFFERENT = {
    "SparkContext.applicationId": "dagrun's application ids read app-<time>-<hex>, not local-<ms>",
    "SparkContext.uiWebUrl": "there is no web UI; `dagrun report` writes each job's report as a file",
}
ON_LOCAL_EXECUTORS = {
    "RDD.foreach": "the print goes to an executor's stdout, as in PySpark",
    "RDD.foreachPartition": "the print goes to an executor's stdout, as in PySpark",
    "SparkContext.setJobGroup": "a cancelled task's executor process is killed",
    "SparkContext.addJobTag": "a cancelled task's executor process is killed",
    "SparkContext.cancelJobsWithTag": "a cancelled task's executor process is killed",
}


def _collect() -> list:
    params = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for test in doctest.DocTestFinder(exclude_empty=True).find(module, module_name):
            short = test.name.removeprefix(module_name + ".")
            if short.rpartition(".")[2].startswith("_") and not short.endswith("__add__"):
                continue  # private helpers' examples are PySpark's internals
            marks = []
            if short in JVM:
                marks.append(pytest.mark.skip(reason=f"needs the JVM: {JVM[short]}"))
            elif short in UNORDERED:
                marks.append(pytest.mark.skip(reason=UNORDERED[short]))
            elif short in DIFFERENT:
                marks.append(pytest.mark.xfail(strict=True, reason=DIFFERENT[short]))
            params.append(pytest.param(module_name, test.name, id=short, marks=marks))
    return params


def _find(module_name: str, name: str) -> doctest.DocTest:
    module = importlib.import_module(module_name)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, module_name):
        if test.name == name:
            return test
    raise LookupError(name)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("module_name, name", _collect())
def test_pyspark_documented_example(module_name: str, name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DAGRUN_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    short = name.removeprefix(module_name + ".")
    test = _find(module_name, name)
    test.examples = [e for e in test.examples
                     if not (e.exc_msg and any(doc == short and fragment in e.source for doc, fragment in JVM_EXAMPLES))]
    globs = dict(importlib.import_module(module_name).__dict__)
    globs.update({n: getattr(dagrun_pyspark, n) for n in dagrun_pyspark.__all__})
    master = "local[4]" if short in ON_LOCAL_EXECUTORS else "inline[4]"
    sc = dagrun_pyspark.SparkContext(master, "PythonTest")
    sc.setCheckpointDir(str(tmp_path / "checkpoints"))  # as PySpark's own doctest harness does
    globs["sc"] = test.globs["sc"] = sc
    test.globs = globs
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    try:
        runner.run(test, out=report.append)
    finally:
        sc.stop()
        if dagrun_pyspark.SparkContext._active_spark_context is not None:  # an example made its own
            dagrun_pyspark.SparkContext._active_spark_context.stop()
    assert runner.failures == 0, "".join(report)


def test_the_skip_lists_name_real_examples() -> None:
    """A list entry that matches no example (renamed upstream) would hide nothing and mislead."""
    names = {p.id for p in _collect()}
    stale = [n for n in [*JVM, *UNORDERED, *DIFFERENT, *ON_LOCAL_EXECUTORS, *(d for d, _ in JVM_EXAMPLES)] if n not in names]
    assert not stale, f"no such PySpark example: {stale}"
