"""Shared fixtures: contexts on the inline and local backends."""

from __future__ import annotations

import pytest

import dagrun


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
