"""Configuration precedence: defaults < file < environment < conf/kwargs."""

from __future__ import annotations

import pytest

from dagrun.config import Config, parse_bytes, parse_seconds


def test_precedence(tmp_path, monkeypatch):
    path = tmp_path / "dagrun.toml"
    path.write_text('[dagrun]\nmax_attempts = 2\nsplit_size = "1MiB"\n[dagrun.ramp]\ninitial = 7\n')
    monkeypatch.setenv("DAGRUN_CONFIG", str(path))
    assert Config.resolve().max_attempts == 2
    assert Config.resolve().ramp_initial == 7.0
    monkeypatch.setenv("DAGRUN_MAX_ATTEMPTS", "3")
    assert Config.resolve().max_attempts == 3
    assert Config.resolve({"dagrun.max_attempts": 5}).max_attempts == 5
    assert Config.resolve({"max_attempts": 5}, max_attempts=6).max_attempts == 6
    assert Config.resolve().split_size == 1 << 20


def test_config_is_frozen_and_typed():
    c = Config.resolve({"speculation": "off", "executor_timeout": "3s", "shuffle.prefixes": "32"})
    assert c.speculation is False and c.executor_timeout == 3.0 and c.shuffle_prefixes == 32
    with pytest.raises(Exception):
        c.max_attempts = 9  # type: ignore[misc]


def test_unknown_key_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown dagrun setting"):
        Config.resolve({"dagrun.max_attemps": 3})


def test_units():
    assert parse_bytes("128MiB") == 128 << 20 and parse_bytes("1GB") == 10**9 and parse_bytes(5) == 5
    assert parse_seconds("24h") == 86400 and parse_seconds("500ms") == 0.5
    with pytest.raises(ValueError):
        parse_bytes("lots")
