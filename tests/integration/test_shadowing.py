"""A user's scheduler.py or shuffle.py never stands in for dagrun's packages (driver or executors)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

JOB = textwrap.dedent("""
    import operator, dagrun
    with dagrun.Context(max_executors=2, conf={"progress": "off", "ledger": "off"}) as ctx:
        print(sorted(ctx.parallelize(range(100), 4).map(lambda x: (x % 7, x)).reduce_by_key(operator.add).collect()))
""")
EXPECTED = str(sorted((k, sum(x for x in range(100) if x % 7 == k)) for k in range(7)))


def _shadows(folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scheduler.py").write_text("raise SystemExit('the user scheduler.py was imported')\n")
    (folder / "shuffle.py").write_text("raise SystemExit('the user shuffle.py was imported')\n")


def _run(script, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_a_script_beside_shadowing_files_fails_at_once_naming_the_file(tmp_path):
    _shadows(tmp_path)
    (tmp_path / "job.py").write_text(JOB)
    done = _run(tmp_path / "job.py", tmp_path)
    assert done.returncode != 0
    assert "shadows dagrun's own package" in done.stderr and str(tmp_path) in done.stderr
    assert "Rename that file" in done.stderr


def test_executors_ignore_shadowing_files_in_the_working_directory(tmp_path):
    _shadows(tmp_path / "cwd")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "job.py").write_text(JOB)
    done = _run(tmp_path / "scripts" / "job.py", tmp_path / "cwd")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == EXPECTED
