"""Shipping the user's own modules with a job, and the message when an executor lacks a module."""

from __future__ import annotations

import importlib
import os
import pickle
import sys
import textwrap

import cloudpickle
import zstandard

from dagrun.graph import user_code
from scheduler.executor import ExecutorEnv, execute
from scheduler.wire.messages import RunTask


def _module(tmp_path, monkeypatch, name: str, body: str):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name)


def test_modules_outside_site_packages_are_shipped_by_value_for_remote_executors(tmp_path, monkeypatch):
    helper = _module(tmp_path, monkeypatch, "dagrun_test_helper", "def triple(x):\n    return 3 * x\n")
    try:
        assert user_code.ship_user_modules("local") == []  # local executors import it from the same path
        shipped = user_code.ship_user_modules("lambda")
        assert "dagrun_test_helper" in shipped
        assert not {"dagrun", "shuffle", "scheduler", "lambda_executor", "zstandard", "cloudpickle"} & set(shipped)
        assert user_code.ship_user_modules("lambda") == []  # once is enough
        data = cloudpickle.dumps(helper.triple)
        del sys.modules["dagrun_test_helper"]  # an executor that cannot import it still gets the function
        monkeypatch.syspath_prepend(str(tmp_path / "nowhere"))
        sys.path.remove(str(tmp_path))
        assert pickle.loads(data)(5) == 15
    finally:
        if "dagrun_test_helper" in sys.modules:
            cloudpickle.unregister_pickle_by_value(sys.modules["dagrun_test_helper"])
        user_code._registered.discard("dagrun_test_helper")
    assert zstandard.__name__ not in user_code._registered


def test_a_missing_module_in_a_task_says_which_and_how_to_ship_it(tmp_path, monkeypatch):
    ghost = _module(tmp_path, monkeypatch, "dagrun_ghost_mod", "def f(x):\n    return x\n")
    blob = cloudpickle.dumps(ghost.f)  # by reference: the module is importable here
    del sys.modules["dagrun_ghost_mod"]
    sys.path.remove(str(tmp_path))
    task = RunTask("j", 0, 0, 0, "j/0", blob, pickle.dumps(None), {}, "dagrun.runtime.task:run_task")
    result = execute(task, ExecutorEnv("x1", str(tmp_path), lambda: None))
    assert result.error is not None and result.error.type_name == "ModuleNotFoundError"
    message = result.error.message
    assert "'dagrun_ghost_mod'" in message and "dagrun lambda deploy --requirements" in message
    assert "import 'dagrun_ghost_mod' in the driver script" in message


def test_files_and_modules_added_to_the_context_reach_lambda_executors(lambda_endpoint, tmp_path):
    import dagrun

    lambda_endpoint(timeout=60, memory_mb=512, concurrency=2)
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "rates.txt").write_text("1.5")
    (tmp_path / "inputs" / "lambda_only_helper.py").write_text("def scaled(x, r):\n    return x * r\n")
    conf = {"progress": "off", "ledger": "off"}
    with dagrun.Context(executor="lambda", store=str(tmp_path / "store"), max_executors=2, conf=conf) as ctx:
        ctx.add_file(str(tmp_path / "inputs" / "rates.txt"))
        ctx.add_py_file(str(tmp_path / "inputs" / "lambda_only_helper.py"))

        def scaled(x):
            import os

            import lambda_only_helper

            with open(dagrun.files.get("rates.txt")) as f:
                return lambda_only_helper.scaled(x, float(f.read())), os.getpid()

        got = ctx.parallelize([2, 4], 2).map(scaled).collect()
    assert [value for value, _ in got] == [3.0, 6.0]
    assert os.getpid() not in {pid for _, pid in got}
