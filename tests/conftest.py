"""Shared fixtures: contexts on the inline and local backends."""

from __future__ import annotations

import os

import pytest

import dagrun


@pytest.fixture(scope="session", autouse=True)
def _dagrun_home(tmp_path_factory):
    """Finished jobs are recorded under $DAGRUN_HOME (dagrun.observe.history): keep the suite's out of ~/.dagrun."""
    before = os.environ.get("DAGRUN_HOME")
    os.environ["DAGRUN_HOME"] = str(tmp_path_factory.mktemp("dagrun-home"))
    yield
    if before is None:
        os.environ.pop("DAGRUN_HOME", None)
    else:
        os.environ["DAGRUN_HOME"] = before


@pytest.fixture
def ctx():
    """An inline context: tasks run in threads of the test process."""
    with dagrun.Context(executor="inline", max_executors=2, conf={"progress": "off"}) as c:
        yield c


@pytest.fixture(scope="module")
def local_ctx():
    """Two real executor subprocesses, shared by a test module for speed."""
    with dagrun.Context(executor="local", max_executors=2, conf={"progress": "off"}) as c:
        yield c
