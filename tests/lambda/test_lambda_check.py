"""``dagrun lambda check`` through the local endpoint: each step ok, or a failure that says what to do."""

from __future__ import annotations

from dagrun.cli.main import main


def test_check_writes_reads_and_deletes_a_block_and_reaches_the_driver(lambda_endpoint, tmp_path, capsys):
    lambda_endpoint(timeout=30, memory_mb=512, function="dagrun-executor")
    store = tmp_path / "store"
    code = main(["lambda", "check", "--store", str(store), "--transport", "connect", "--driver-host", "127.0.0.1"])
    out = capsys.readouterr().out
    assert code == 0, out
    for step in ("invoke", "build", "write", "read", "delete", "driver"):
        assert f"{step}: ok" in out, out
    assert not [p for p in store.rglob("*") if p.is_file()]  # the probe was deleted


def test_check_names_the_failing_step_and_what_to_do(lambda_endpoint, tmp_path, capsys):
    lambda_endpoint(timeout=30, memory_mb=512, function="dagrun-executor")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be")
    code = main(["lambda", "check", "--store", str(blocker / "store"), "--transport", "invoke"])
    out = capsys.readouterr().out
    assert code == 1
    assert "invoke: ok" in out and "write: FAILED" in out and "s3:PutObject" in out
    assert "driver:" not in out  # the invoke transport needs no route to the driver


def test_check_against_a_missing_function_says_to_deploy(lambda_endpoint, tmp_path, capsys):
    lambda_endpoint(timeout=30, function="another-one")
    code = main(["lambda", "check", "--store", str(tmp_path), "--function", "dagrun-executor"])
    captured = capsys.readouterr()
    assert code == 1
    assert "dagrun lambda deploy" in captured.out + captured.err
