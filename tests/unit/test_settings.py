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


# -- batching flags (SPEC §16.2) -------------------------------------------------------------------


def test_batching_flags_and_variables_reach_the_limits(tmp_path: Path) -> None:
    from madara_orchestrator.cli.compose import runtime_config

    limits_file = tmp_path / "limits.json"
    limits_file.write_text('{"l1_gas": 1000000, "n_txs": "0x3e8"}')
    settings = load_run_settings(
        parse(["--max-batch-size", "40", "--max-num-blobs", "3", "--fixed-blocks-per-snos-batch", "4"]),
        {
            **GOOD,
            P + "MAX_BATCH_TIME_SECONDS": "90",
            P + "BLOB_SIZE_BUFFER": "100",
            P + "MAX_BLOCKS_PER_SNOS_BATCH": "7",
            P + "MAX_SNOS_BATCHES_PER_AGGREGATOR_BATCH": "5",
            P + "MAX_AGGREGATOR_INPUT_SIZE": "500000",
            P + "DEFAULT_EMPTY_BLOCK_PROVING_GAS": "123",
            P + "BOUNCER_WEIGHTS_LIMIT_FILE": str(limits_file),
            P + "BATCHING_LOCK_DURATION_SECONDS": "45",
        },
    )
    batching = runtime_config(settings).batching
    limits = batching.limits
    assert (limits.max_batch_size, limits.max_num_blobs, limits.fixed_blocks_per_snos_batch) == (40, 3, 4)
    assert limits.max_batch_time_s == 90 and limits.max_blob_size == 3 * 4096 - 100
    assert limits.max_blocks_per_snos_batch == 7 and limits.max_snos_batches_per_aggregator_batch == 5
    assert limits.max_aggregator_input_size == 500_000 and limits.default_empty_block_proving_gas == 123
    assert limits.bouncer_weight_limits.l1_gas == 1_000_000 and limits.bouncer_weight_limits.n_txs == 1000
    assert limits.bouncer_weight_limits.sierra_gas == 4_000_000_000, "a field the file omits keeps its default"
    assert batching.lock_duration_s == 45 and batching.aggregator_batches


def test_batching_defaults_are_the_originals() -> None:
    from madara_orchestrator.cli.compose import runtime_config

    limits = runtime_config(load_run_settings(parse([]), GOOD)).batching.limits
    assert (limits.max_batch_size, limits.max_num_blobs, limits.blob_size_buffer) == (100, 6, 15)
    assert (limits.max_blocks_per_snos_batch, limits.max_snos_batches_per_aggregator_batch) == (10, 50)
    assert (limits.max_aggregator_input_size, limits.default_empty_block_proving_gas) == (750_000, 1_500_000)
    assert limits.bouncer_weight_limits.state_diff_size == 24_556 and limits.fixed_blocks_per_snos_batch is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read it"),
        ("{not json", "not JSON"),
        ('{"l1_gaz": 5}', "unknown field(s) l1_gaz"),
        ('{"l1_gas": -5}', "l1_gas must be from 0 to 2^64-1"),
        ('["l1_gas"]', "expected a JSON object"),
    ],
)
def test_a_bad_bouncer_limits_file_is_a_startup_error(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "limits.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse(["--bouncer-weights-limit-file", str(path)]), GOOD)
    text = "\n".join(caught.value.problems)
    assert f"--bouncer-weights-limit-file {path}" in text and expected in text


def test_bad_batching_numbers_are_named_together() -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(
            parse(["--max-num-blobs", "7", "--max-batch-size", "0", "--blob-size-buffer", "-1"]),
            {**GOOD, P + "MAX_BATCH_TIME_SECONDS": "0", P + "BATCHING_LOCK_DURATION_SECONDS": "-3"},
        )
    text = "\n".join(caught.value.problems)
    assert "--max-num-blobs must be at most 6" in text
    assert "max batch size must be a positive integer, got 0" in text
    assert "blob size buffer must not be negative, got -1" in text
    assert "max batch time must be positive" in text
    assert "--batching-worker-lock-duration must be positive" in text


def test_a_buffer_that_fills_the_blobs_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse(["--max-num-blobs", "1", "--blob-size-buffer", "4096"]), GOOD)
    assert any("leaves no room in 1 blob(s)" in p for p in caught.value.problems)
