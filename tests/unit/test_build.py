"""``scheduler.build``: the digest that tells a driver and an executor of other code apart."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import scheduler
from scheduler.build import PACKAGES, build_id

CHECKOUT = Path(scheduler.__file__).resolve().parents[1]
PRINT_BUILD = "from scheduler.build import build_id; print(build_id())"


def _build_of(root: Path) -> str:
    done = subprocess.run([sys.executable, "-P", "-c", PRINT_BUILD], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root)}, timeout=60, check=True)
    return done.stdout.strip()


def test_a_copy_of_the_source_has_the_build_and_an_edit_changes_it(tmp_path):
    for package in PACKAGES:
        shutil.copytree(CHECKOUT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert _build_of(tmp_path) == build_id()  # where the files are does not matter, what they say does
    (tmp_path / "shuffle" / "codec.py").write_text((tmp_path / "shuffle" / "codec.py").read_text() + "\n# edited\n")
    edited = _build_of(tmp_path)
    assert len(edited) == 16 and edited != build_id()
