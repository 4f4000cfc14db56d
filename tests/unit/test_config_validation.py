"""Settings are checked by type and range when the Config (and so the Context) is made."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import dagrun
from dagrun.config import Config, parse_bool, parse_bytes, settings_table

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


@pytest.fixture(autouse=True)
def _no_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGRUN_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("DAGRUN_") and key != "DAGRUN_HOME":
            monkeypatch.delenv(key)


@pytest.mark.parametrize(("settings", "message"), [
    ({"speculation": "ture"}, r"setting speculation.*'ture'.*true or false"),
    ({"max_attempts": 0}, r"setting max_attempts must be at least 1, got 0"),
    ({"heartbeat_interval": 0}, r"setting heartbeat_interval must be above 0 s, got 0.0"),
    ({"shuffle_prefixes": 0}, r"setting shuffle_prefixes must be at least 1, got 0"),
    ({"executor": "lambd"}, r"setting executor .*'lambd'; did you mean lambda"),
    ({"split_size": "lots"}, r"setting split_size: cannot read 'lots' as a size"),
    ({"idle_timeout": "5 parsecs"}, r"setting idle_timeout: cannot read '5 parsecs' as a duration"),
    ({"max_attempts": True}, r"setting max_attempts: cannot read True as a whole number"),
    ({"progress": "sometimes"}, r"setting progress must be one of auto, on, off"),
    ({"shuffle_codec": "lz5"}, r"setting shuffle_codec must be one of .*did you mean lz4"),
    ({"speculation_quantile": 2}, r"setting speculation_quantile must be at most 1"),
])
def test_bad_values_are_refused_naming_the_setting(settings, message):
    with pytest.raises(ValueError, match=message):
        Config.resolve(**settings)


def test_a_bad_setting_fails_when_the_context_is_made():
    with pytest.raises(ValueError, match="setting max_attempts must be at least 1"):
        dagrun.Context(executor="inline", max_attempts=0)


def test_booleans_only_from_true_false_words():
    assert [parse_bool(w) for w in ("true", "False", "yes", "off", "1", 0)] == [True, False, True, False, True, False]
    for word in ("ture", "", "2", 2, None):
        with pytest.raises(ValueError, match="true or false"):
            parse_bool(word)


def test_sizes_with_units_one_parser():
    assert parse_bytes("1G") == 1 << 30 and parse_bytes("1g") == 1 << 30 and parse_bytes("64MB") == 64 * 10**6
    assert Config.resolve(max_result_size="2g").max_result_size == 2 << 30
    assert Config.resolve(max_result_size="0").max_result_size == 0  # unlimited, as in Spark


def test_unknown_keyword_conf_key_and_variable_name_the_closest_first(monkeypatch):
    with pytest.raises(ValueError, match=r"'max_atempts'.*did you mean max_attempts"):
        dagrun.Context(executor="inline", max_atempts=2)
    with pytest.raises(ValueError, match=r"'dagrun.max_attemps'.*did you mean max_attempts"):
        Config.resolve({"dagrun.max_attemps": 2})
    monkeypatch.setenv("DAGRUN_MAX_ATTEMPT", "2")
    with pytest.raises(ValueError, match=r"DAGRUN_MAX_ATTEMPT; did you mean DAGRUN_MAX_ATTEMPTS"):
        Config.resolve()


def test_environment_errors_name_the_variable(monkeypatch):
    monkeypatch.setenv("DAGRUN_MAX_ATTEMPTS", "two")
    with pytest.raises(ValueError, match=r"setting max_attempts \(from DAGRUN_MAX_ATTEMPTS\): cannot read 'two'"):
        Config.resolve()


def test_user_file_below_project_file(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[dagrun]\nmax_attempts = 7\nidle_timeout = "2m"\n[dagrun.lambda]\nprofile = "dev"\n')
    c = Config.resolve()
    assert (c.max_attempts, c.idle_timeout, c.lambda_profile) == (7, 120.0, "dev")
    (tmp_path / "dagrun.toml").write_text("[dagrun]\nmax_attempts = 3\n")
    c = Config.resolve()
    assert (c.max_attempts, c.idle_timeout) == (3, 120.0)
    monkeypatch.setenv("DAGRUN_LAMBDA_PROFILE", "prod")
    assert Config.resolve().lambda_profile == "prod"


def test_a_bad_value_in_a_file_names_the_file(tmp_path):
    (tmp_path / "dagrun.toml").write_text('[dagrun]\nmax_attempts = "two"\n')
    with pytest.raises(ValueError, match=r"setting max_attempts \(from dagrun.toml: max_attempts\)"):
        Config.resolve()


def test_missing_dagrun_config_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGRUN_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match="DAGRUN_CONFIG names"):
        Config.resolve()


def test_run_conf_error_names_the_setting(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("print('ran')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGRUN_")}
    env["DAGRUN_HOME"] = str(tmp_path / "home")
    out = subprocess.run([sys.executable, "-m", "dagrun.cli.main", "run", "--conf", "max_attempts=two", str(script)],
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert out.returncode == 2 and "ran" not in out.stdout
    assert "setting max_attempts (from --conf max_attempts=two): cannot read 'two' as a whole number" in out.stderr


def test_readme_lists_every_setting_with_its_default():
    text = open(README, encoding="utf-8").read()
    found = re.search(r"<!-- settings:begin -->\n(.*?)<!-- settings:end -->", text, re.S)
    assert found, "README.md lacks the settings table markers"
    assert found.group(1) == settings_table(), \
        "the README's settings table is stale: replace it with the output of `python -m dagrun.config`"
