"""The backend registry: names to dotted paths, imported lazily, never overwritten silently."""

from __future__ import annotations

import pytest

from scheduler import backends
from scheduler.backends import get_backend_class, register_backend


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(backends, "known_backends", dict(backends.known_backends))
    return backends.known_backends


def test_a_registered_backend_is_found_by_name(registry):
    register_backend("threads", "scheduler.backends.inline:InlineBackend")
    assert get_backend_class("threads").__name__ == "InlineBackend"


def test_a_taken_name_is_not_overwritten_silently(registry):
    with pytest.raises(ValueError, match="already registered.*clobber=True"):
        register_backend("local", "mypkg.backend:Other")
    register_backend("local", "mypkg.backend:Other", clobber=True)
    assert registry["local"]["class"] == "mypkg.backend:Other"


def test_a_backend_that_cannot_import_names_what_to_install(registry):
    register_backend("cloud", "no_such_module_xyz:Backend", err="the cloud backend needs xyz: pip install xyz")
    with pytest.raises(ImportError, match="pip install xyz"):
        get_backend_class("cloud")


def test_an_unknown_name_lists_the_known_ones(registry):
    with pytest.raises(ValueError, match="inline, lambda, local"):
        get_backend_class("nope")
