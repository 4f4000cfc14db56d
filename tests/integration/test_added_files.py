"""Files added with ``add_file`` / ``addFile`` and ``add_py_file`` / ``addPyFile``: tasks on real
executor processes open them by name and import the added modules, as PySpark's do."""

from __future__ import annotations

import hashlib
import os
import zipfile

import pytest

import dagrun
from dagrun.pyspark import SparkConf, SparkContext, SparkFiles

CONF = {"progress": "off", "ledger": "off"}


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture
def files(tmp_path):
    (tmp_path / "lookup.csv").write_text("a,1\nb,2\n")
    folder = tmp_path / "models"
    (folder / "deep").mkdir(parents=True)
    (folder / "m.txt").write_text("top")
    (folder / "deep" / "n.txt").write_text("inner")
    (tmp_path / "pure_helper.py").write_text("def triple(x):\n    return 3 * x\n")
    with zipfile.ZipFile(tmp_path / "zipped.zip", "w") as z:
        z.writestr("zipped_helper/__init__.py", "NAME = 'from the zip'\n")
    return tmp_path


def test_tasks_on_executor_processes_open_added_files_and_import_added_modules(files):
    with dagrun.Context(executor="local", max_executors=2, conf=CONF) as ctx:
        ctx.add_file(str(files / "lookup.csv"))
        ctx.add_file(str(files / "models"), recursive=True)
        ctx.add_py_file(str(files / "pure_helper.py"))
        ctx.add_py_file(str(files / "zipped.zip"))

        def use(x):
            import pure_helper
            import zipped_helper

            root = dagrun.files.get("models")
            return (pure_helper.triple(x), zipped_helper.NAME, _read(dagrun.files.get("lookup.csv")),
                    _read(os.path.join(root, "m.txt")), _read(os.path.join(root, "deep", "n.txt")),
                    os.getpid(), dagrun.files.get("lookup.csv"))

        got = ctx.parallelize(range(4), 4).map(use).collect()
        assert [g[:5] for g in got] == [(3 * x, "from the zip", "a,1\nb,2\n", "top", "inner") for x in range(4)]
        assert os.getpid() not in {g[5] for g in got}  # they ran in executor processes ...
        assert all(not path.startswith(str(files)) for *_, path in got)  # ... on their own copies
        # the driver has its copy too, as PySpark's driver has
        assert _read(dagrun.files.get("lookup.csv")) == "a,1\nb,2\n"
        assert ctx.list_files == [f"file:{files}/lookup.csv", f"file:{files}/models", f"file:{files}/pure_helper.py",
                                  f"file:{files}/zipped.zip"]
        driver_copy = dagrun.files.get("lookup.csv")
        keys = [key for added in ctx.added_files.entries for key in added.keys]
        assert len(keys) == 5 and all(ctx.store.exists(k) for k in keys)
    assert not os.path.exists(driver_copy)  # stop removes the driver's copies and the store's
    assert not any(ctx.store.exists(k) for k in keys)


def test_a_file_added_between_jobs_reaches_the_executors_that_ran_the_first(files, tmp_path):
    (tmp_path / "late.txt").write_text("late")
    with dagrun.Context(executor="local", max_executors=2, conf=CONF) as ctx:
        ctx.add_file(str(files / "lookup.csv"))
        assert ctx.parallelize([1, 2], 2).map(lambda _: _read(dagrun.files.get("lookup.csv"))).distinct().collect() \
            == ["a,1\nb,2\n"]
        ctx.add_file(str(tmp_path / "late.txt"))
        assert ctx.parallelize([1, 2], 2).map(lambda _: _read(dagrun.files.get("late.txt"))).distinct().collect() \
            == ["late"]


def test_adding_is_refused_with_a_message_that_says_what_to_do(files, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "lookup.csv").write_text("different")
    (other / "same.csv").write_text("x")
    with dagrun.Context(executor="inline", conf=CONF) as ctx:
        with pytest.raises(FileNotFoundError, match="no-such.csv does not exist"):
            ctx.add_file(str(tmp_path / "no-such.csv"))
        with pytest.raises(IsADirectoryError, match="recursive=True"):
            ctx.add_file(str(files / "models"))
        ctx.add_file(str(files / "lookup.csv"))
        ctx.add_file(str(files / "lookup.csv"))  # the same path again: ignored, as in Spark
        with pytest.raises(ValueError, match="rename one of them"):
            ctx.add_file(str(other / "lookup.csv"))
        (tmp_path / "copy").mkdir()
        (tmp_path / "copy" / "lookup.csv").write_text("a,1\nb,2\n")
        ctx.add_file(str(tmp_path / "copy" / "lookup.csv"))  # same name, same contents: accepted
        assert len(ctx.list_files) == 2 and len(ctx.added_files.entries) == 1
        assert ctx.parallelize([0]).map(lambda _: _read(dagrun.files.get("lookup.csv"))).collect() == ["a,1\nb,2\n"]


def test_pyspark_addfile_addpyfile_sparkfiles_and_the_pyfiles_settings(files):
    conf = SparkConf().set("dagrun.progress", "off").set("spark.files", str(files / "lookup.csv"))
    with SparkContext("local[2]", "files", pyFiles=[str(files / "pure_helper.py")], conf=conf) as sc:
        sc.addFile(str(files / "models"), recursive=True)
        sc.addPyFile(str(files / "zipped.zip"))

        def use(x):
            import pure_helper
            import zipped_helper

            return (pure_helper.triple(x), zipped_helper.NAME, _read(SparkFiles.get("lookup.csv")),
                    sorted(os.listdir(SparkFiles.get("models"))),
                    SparkFiles.get("lookup.csv") == os.path.join(SparkFiles.getRootDirectory(), "lookup.csv"))

        assert sc.parallelize([1, 2], 2).map(use).collect() == [
            (3 * x, "from the zip", "a,1\nb,2\n", ["deep", "m.txt"], True) for x in (1, 2)]
        assert sorted(sc.listFiles) == sorted(f"file:{files}/{n}" for n in
                                              ("lookup.csv", "pure_helper.py", "models", "zipped.zip"))
        assert sc.listArchives == []
        import zipped_helper  # the driver imports them too, as PySpark's does

        assert zipped_helper.NAME == "from the zip"
    with pytest.raises(NotImplementedError, match="Do not construct"):
        SparkFiles()


def test_a_job_that_failed_for_want_of_a_module_runs_once_it_is_added(tmp_path):
    # PySpark's AddFileTests.test_add_py_file: the same job fails, then runs after addPyFile
    (tmp_path / "userlibrary_for_dagrun.py").write_text(
        "class UserClass:\n    def hello(self):\n        return 'Hello World!'\n")

    def func(x):
        from userlibrary_for_dagrun import UserClass

        return UserClass().hello()

    with SparkContext("local[2]", "addpyfile", conf=SparkConf().set("dagrun.progress", "off")) as sc:
        with pytest.raises(Exception, match="add_py_file"):
            sc.parallelize(range(2)).map(func).first()
        sc.addPyFile(str(tmp_path / "userlibrary_for_dagrun.py"))
        assert sc.parallelize(range(2)).map(func).first() == "Hello World!"
        from userlibrary_for_dagrun import UserClass  # and in the driver

        assert UserClass().hello() == "Hello World!"


def test_a_missing_file_in_pyfiles_fails_the_start_and_leaves_no_active_context(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_mod.py does not exist"):
        SparkContext("inline", "bad", pyFiles=[str(tmp_path / "missing_mod.py")])
    with SparkContext("inline", "next") as sc:  # the failed one was stopped
        assert sc.parallelize([1, 2]).count() == 2


def test_a_large_file_travels_in_pieces_and_arrives_whole(tmp_path, monkeypatch):
    from dagrun.runtime import user_files

    monkeypatch.setattr(user_files, "PIECE_BYTES", 64 << 10)  # the driver cuts; executors fetch by keys
    data = os.urandom(200 << 10) + b"tail"
    (tmp_path / "model.bin").write_bytes(data)
    (tmp_path / "empty.txt").write_bytes(b"")
    with dagrun.Context(executor="local", max_executors=2, conf=CONF) as ctx:
        ctx.add_file(str(tmp_path / "model.bin"))
        ctx.add_file(str(tmp_path / "empty.txt"))
        assert [len(added.keys) for added in ctx.added_files.entries] == [4, 1]  # 3 full pieces and the tail

        def digest(_):
            with open(dagrun.files.get("model.bin"), "rb") as f, open(dagrun.files.get("empty.txt"), "rb") as g:
                return hashlib.sha256(f.read()).hexdigest(), g.read()

        assert ctx.parallelize([1, 2], 2).map(digest).distinct().collect() == [(hashlib.sha256(data).hexdigest(), b"")]
        ctx.add_file(str(tmp_path / "model.bin"))  # the same path again: ignored
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "model.bin").write_bytes(data[:-1] + b"!")
        with pytest.raises(ValueError, match="other contents"):
            ctx.add_file(str(tmp_path / "other" / "model.bin"))
        (tmp_path / "same").mkdir()
        (tmp_path / "same" / "model.bin").write_bytes(data)
        ctx.add_file(str(tmp_path / "same" / "model.bin"))  # another path with the same bytes is accepted


def test_an_add_that_fails_part_way_leaves_no_piece_and_no_copy(tmp_path, monkeypatch):
    from dagrun.runtime import user_files

    monkeypatch.setattr(user_files, "PIECE_BYTES", 1 << 10)
    (tmp_path / "big.bin").write_bytes(os.urandom(5 << 10))
    with dagrun.Context(executor="inline", conf=CONF) as ctx:
        store, put, calls = ctx.added_files._store, ctx.added_files._store.put, []

        def put_then_fail(key, data):
            calls.append(key)
            if len(calls) == 3:
                raise OSError(28, "No space left on device")
            put(key, data)

        monkeypatch.setattr(store, "put", put_then_fail)
        with pytest.raises(OSError, match="No space left"):
            ctx.add_file(str(tmp_path / "big.bin"))
        assert not any(store.exists(k) for k in calls)
        assert not os.path.exists(dagrun.files.get("big.bin")) and ctx.list_files == []
        monkeypatch.setattr(store, "put", put)
        ctx.add_file(str(tmp_path / "big.bin"))  # and it can be added once the store takes it
        assert open(dagrun.files.get("big.bin"), "rb").read() == (tmp_path / "big.bin").read_bytes()
