"""Configuration: flags and MADARA_ORCHESTRATOR_* variables, _FILE secrets, and one clear message per problem."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from madara_orchestrator.cli.main import main
from madara_orchestrator.cli.settings import RUN_OPTIONS, add_options, load_run_settings
from madara_orchestrator.domain.errors import ConfigError

P = "MADARA_ORCHESTRATOR_"
GOOD = {P + "MADARA_RPC_URL": "http://127.0.0.1:9944", P + "PROVER": "devnet", P + "SETTLE_ON_DEVNET": "true"}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, RUN_OPTIONS)
    return parser.parse_args(argv)


def test_environment_supplies_what_flags_do_not() -> None:
    settings = load_run_settings(
        parse(["--port", "4000"]), {**GOOD, P + "PORT": "5000", P + "SNOS_JOB_BUFFER_SIZE": "7"}
    )
    assert settings.port == 4000, "a flag wins over its variable"
    assert settings.snos_job_buffer_size == 7
    assert settings.madara_rpc_url == "http://127.0.0.1:9944"
    assert settings.max_concurrent_snos_jobs == 5


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(
            parse(["--port", "seventy", "--layer", "l4"]),
            {P + "SNOS_JOB_BUFFER_SIZE": "0", P + "ADMIN_ENABLED": "maybe"},
        )
    problems = caught.value.problems
    text = "\n".join(problems)
    assert "--port: expected a whole number, got 'seventy'" in text
    assert "--layer: must be one of l2, l3, got 'l4'" in text
    assert "MADARA_ORCHESTRATOR_ADMIN_ENABLED: expected true or false, got 'maybe'" in text
    assert "--madara-rpc-url (MADARA_ORCHESTRATOR_MADARA_RPC_URL) is required" in text
    assert "--prover (MADARA_ORCHESTRATOR_PROVER) is required" in text
    assert "--snos-job-buffer-size must be a positive integer, got 0" in text
    assert len(problems) >= 6


def test_secret_from_file_wins_and_is_masked(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("  from-file-token\n")
    env = {**GOOD, P + "ADMIN_ENABLED": "true", P + "ADMIN_TOKEN": "plain", P + "ADMIN_TOKEN_FILE": str(secret)}
    settings = load_run_settings(parse([]), env)
    assert settings.admin_token == "from-file-token"
    assert settings.describe()["admin_token"] == "***"
    assert "from-file-token" not in repr(settings.describe())


def test_unreadable_or_empty_secret_file_is_a_problem(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, expected in ((tmp_path / "missing", "cannot read"), (empty, "is empty")):
        with pytest.raises(ConfigError) as caught:
            load_run_settings(parse([]), {**GOOD, P + "ADMIN_TOKEN_FILE": str(path)})
        assert any(expected in p and "ADMIN_TOKEN_FILE" in p for p in caught.value.problems)


def test_admin_routes_need_a_token() -> None:
    with pytest.raises(ConfigError, match="--admin-enabled needs --admin-token"):
        load_run_settings(parse(["--admin-enabled"]), GOOD)


def test_cli_prints_each_problem_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(__import__("os").environ):
        if key.startswith(P):
            monkeypatch.delenv(key)
    monkeypatch.chdir(__import__("tempfile").mkdtemp())
    code = main(["run", "--max-concurrent-snos-jobs", "-3"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: invalid configuration:\n")
    assert "  - --madara-rpc-url (MADARA_ORCHESTRATOR_MADARA_RPC_URL) is required" in err
    assert "  - --max-concurrent-snos-jobs must be a positive integer, got -3" in err
    assert "Traceback" not in err


def test_devnet_refuses_bad_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "used").write_text("x")
    code = main(["devnet", "--blocks", "0", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "--blocks must be a positive integer, got 0" in err
    assert "is not empty" in err
