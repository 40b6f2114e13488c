"""Configuration: flags and MADARA_ORCHESTRATOR_* variables, _FILE secrets, and one clear message per problem."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from madara_orchestrator.cli.main import main
from madara_orchestrator.cli.settings import RUN_OPTIONS, add_options, load_run_settings
from madara_orchestrator.domain.errors import ConfigError

P = "MADARA_ORCHESTRATOR_"
GOOD = {
    P + "MADARA_RPC_URL": "http://127.0.0.1:9944",
    P + "PROVER": "devnet",
    P + "SETTLE_ON_DEVNET": "true",
    P + "SNOS_RUNNER": "devnet",
    P + "AGGREGATOR_RUNNER": "devnet",
}


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


def test_an_outbox_alert_needs_queues_on_sqs() -> None:
    """Only SQS queues have an outbox: the alert's setting without them would watch nothing, silently."""
    with pytest.raises(ConfigError, match="--outbox-alert-seconds needs --aws-sqs"):
        load_run_settings(parse(["--outbox-alert-seconds", "60"]), GOOD)


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
    code = main(["devnet", "--layer", "l3", "--settlement", "ledger"])
    assert code == 2 and "--layer l3 settles on the local Starknet double" in capsys.readouterr().err
    code = main(["devnet", "--core-contract", "starkware", "--settlement", "ledger"])
    assert code == 2 and "--core-contract chooses the L1 core contract" in capsys.readouterr().err


def test_starkware_core_contract_needs_its_compiled_contract(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import madara_orchestrator.cli.devnet as devnet

    monkeypatch.setattr(devnet, "STARKWARE_CORE_JSON", tmp_path / "missing.json")
    for command in (["devnet"], ["devnet-chain", "--env-file", str(tmp_path / ".env")]):
        assert main([*command, "--core-contract", "starkware"]) == 2
        err = capsys.readouterr().err
        assert f"--core-contract starkware needs StarkWare's compiled contract at {tmp_path}/missing.json" in err


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


# -- provers (SPEC §7, §16.2, §16.3) ---------------------------------------------------------------

ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ADDRESS = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
ETHEREUM = {
    P + "MADARA_RPC_URL": "http://127.0.0.1:9944",
    P + "SNOS_RUNNER": "devnet",
    P + "AGGREGATOR_RUNNER": "devnet",
    P + "SETTLE_ON_ETHEREUM": "true",
    P + "ETHEREUM_SETTLEMENT_RPC_URL": "http://127.0.0.1:8545",
    P + "ETHEREUM_PRIVATE_KEY": ANVIL_KEY_0,
    P + "L1_CORE_CONTRACT_ADDRESS": ADDRESS,
}
ATLANTIC = {
    **{k: v for k, v in GOOD.items() if k != P + "AGGREGATOR_RUNNER"},  # Atlantic aggregates in its buckets
    P + "PROVER": "atlantic",
    P + "ATLANTIC_API_KEY": "key",
    P + "ATLANTIC_SERVICE_URL": "https://atlantic.example",
    P + "ATLANTIC_NETWORK": "TESTNET",
    P + "ATLANTIC_MOCK_FACT_HASH": "false",
    P + "ATLANTIC_PROVER_TYPE": "starkware_sharp",
    P + "ATLANTIC_SETTLEMENT_LAYER": "ethereum",
    P + "ATLANTIC_RPC_NODE_URL": "http://127.0.0.1:8545",
    P + "ATLANTIC_VERIFIER_CONTRACT_ADDRESS": ADDRESS,
}


def problems_of(argv: list[str], env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse(argv), env)
    return "\n".join(caught.value.problems)


def make_sharp_pki(root: Path) -> dict[str, str]:
    from tests.helpers.sharp import make_pki

    pki = make_pki(root)
    return {
        P + "PROVER": "sharp",
        P + "SHARP_CUSTOMER_ID": "cust-1",
        P + "SHARP_URL": "https://sharp.example",
        P + "SHARP_USER_CRT_FILE": pki.client_crt,
        P + "SHARP_USER_KEY_FILE": pki.client_key,
        P + "SHARP_SERVER_CRT_FILE": pki.ca_crt,
        P + "SHARP_RPC_NODE_URL": "http://127.0.0.1:8545",
        P + "GPS_VERIFIER_CONTRACT_ADDRESS": ADDRESS,
    }


def test_every_prover_of_the_original_is_accepted(tmp_path: Path) -> None:
    atlantic = load_run_settings(parse([]), ATLANTIC)
    assert atlantic.prover == "atlantic" and atlantic.atlantic_network == "testnet"
    assert atlantic.atlantic_verifier_cairo_vm == "rust" and atlantic.atlantic_sharp_prover == "stone"
    assert atlantic.atlantic_verifier_result == "proof-generation"
    assert atlantic.atlantic_artifacts_base_url == "https://storage.googleapis.com/hero-atlantic-bucket"
    assert (atlantic.snos_layout_name, atlantic.prover_layout_name) == ("all_cairo", "dynamic")
    assert atlantic.describe()["atlantic_api_key"] == "***"
    sharp = load_run_settings(parse([]), {**GOOD, **make_sharp_pki(tmp_path)})
    assert sharp.prover == "sharp" and sharp.sharp_settlement_layer == "ethereum"
    mock = load_run_settings(
        parse(["--prover", "mock"]),
        {**ETHEREUM, P + "MOCK_VERIFIER_ADDRESS": ADDRESS, P + "MOCK_VERIFIER_PRIVATE_KEY": ANVIL_KEY_1},
    )
    assert mock.prover == "mock" and mock.mock_verifier_address == ADDRESS


def test_atlantic_names_each_missing_flag() -> None:
    text = problems_of(["--prover", "atlantic"], GOOD)
    for named in (
        "--atlantic-api-key (MADARA_ORCHESTRATOR_ATLANTIC_API_KEY) is required with --prover atlantic",
        "--atlantic-service-url (MADARA_ORCHESTRATOR_ATLANTIC_SERVICE_URL) is required",
        "--atlantic-mock-fact-hash (MADARA_ORCHESTRATOR_ATLANTIC_MOCK_FACT_HASH) is required",
        "--atlantic-prover-type (MADARA_ORCHESTRATOR_ATLANTIC_PROVER_TYPE) is required",
        "--atlantic-settlement-layer (MADARA_ORCHESTRATOR_ATLANTIC_SETTLEMENT_LAYER) is required",
        "--atlantic-network (MADARA_ORCHESTRATOR_ATLANTIC_NETWORK) is required",
        "--atlantic-rpc-node-url (MADARA_ORCHESTRATOR_ATLANTIC_RPC_NODE_URL) is required",
        "--atlantic-verifier-contract-address (MADARA_ORCHESTRATOR_ATLANTIC_VERIFIER_CONTRACT_ADDRESS) is required",
    ):
        assert named in text, named
    mocked = problems_of(["--prover", "atlantic", "--atlantic-mock-fact-hash", "true"], GOOD)
    assert "--atlantic-rpc-node-url" not in mocked and "--atlantic-verifier-contract-address" not in mocked, (
        "no fact is checked when Atlantic mocks facts"
    )


def test_atlantic_values_are_checked_together(tmp_path: Path) -> None:
    text = problems_of(
        [
            "--atlantic-service-url",
            "atlantic.example",
            "--atlantic-artifacts-base-url",
            "ftp://artifacts",
            "--atlantic-verifier-contract-address",
            "0x1234",
            "--atlantic-mock-fact-hash",
            "maybe",
            "--atlantic-verifier-result",
            "proof-magic",
            "--atlantic-network",
            "devnet",
            "--atlantic-verifier-cairo-vm",
            "java",
        ],
        ATLANTIC,
    )
    assert "--atlantic-service-url must be an http:// or https:// URL with a host, got 'atlantic.example'" in text
    assert "--atlantic-artifacts-base-url must be an http:// or https:// URL" in text
    assert "--atlantic-verifier-contract-address must be a 20-byte address (0x and 40 hex digits), got '0x1234'" in text
    assert "--atlantic-mock-fact-hash must be true or false, got 'maybe'" in text
    assert "--atlantic-verifier-result: unknown Atlantic query step 'proof-magic'" in text
    assert "--atlantic-network: must be one of mainnet, testnet, got 'devnet'" in text
    assert "--atlantic-verifier-cairo-vm: must be one of rust, python, got 'java'" in text


def test_atlantic_api_key_comes_from_its_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("from-file\n")
    env = {k: v for k, v in ATLANTIC.items() if k != P + "ATLANTIC_API_KEY"}
    settings = load_run_settings(parse([]), {**env, P + "ATLANTIC_API_KEY_FILE": str(key)})
    assert settings.atlantic_api_key == "from-file"
    text = problems_of([], {**env, P + "ATLANTIC_API_KEY_FILE": str(tmp_path / "missing")})
    assert "MADARA_ORCHESTRATOR_ATLANTIC_API_KEY_FILE: cannot read" in text


def test_mock_atlantic_server_rules() -> None:
    assert load_run_settings(parse(["--mock-atlantic-server"]), ATLANTIC).mock_atlantic_server
    no_url = {k: v for k, v in ATLANTIC.items() if k != P + "ATLANTIC_SERVICE_URL"}
    assert load_run_settings(parse(["--mock-atlantic-server"]), no_url).atlantic_service_url is None, (
        "the in-process mock is the service"
    )
    text = problems_of(["--mock-atlantic-server", "--atlantic-network", "MAINNET"], ATLANTIC)
    assert "--mock-atlantic-server is only allowed with --atlantic-network TESTNET" in text
    assert "--mock-atlantic-server needs --prover atlantic" in problems_of(["--mock-atlantic-server"], GOOD)


def test_sharp_names_each_missing_flag() -> None:
    text = problems_of(["--prover", "sharp"], GOOD)
    for flag, var in (
        ("--sharp-customer-id", "SHARP_CUSTOMER_ID"),
        ("--sharp-url", "SHARP_URL"),
        ("--sharp-user-crt-file", "SHARP_USER_CRT_FILE"),
        ("--sharp-user-key-file", "SHARP_USER_KEY_FILE"),
        ("--sharp-server-crt-file", "SHARP_SERVER_CRT_FILE"),
        ("--sharp-rpc-node-url", "SHARP_RPC_NODE_URL"),
        ("--gps-verifier-contract-address", "GPS_VERIFIER_CONTRACT_ADDRESS"),
    ):
        assert f"{flag} (MADARA_ORCHESTRATOR_{var}) is required with --prover sharp" in text, flag


def test_sharp_pem_files_must_be_readable_pem_and_a_tls_identity(tmp_path: Path) -> None:
    sharp = make_sharp_pki(tmp_path / "pki")
    missing = tmp_path / "missing.crt"
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    text = problems_of(
        ["--sharp-user-crt-file", str(missing), "--sharp-user-key-file", str(not_pem)], {**GOOD, **sharp}
    )
    assert f"--sharp-user-crt-file {missing}: cannot read it: No such file or directory" in text
    assert f"--sharp-user-key-file {not_pem}: not a PEM file" in text
    # Readable PEM files that do not belong together: the client key of another certificate.
    other = make_sharp_pki(tmp_path / "other")
    text = problems_of(["--sharp-user-key-file", other[P + "SHARP_USER_KEY_FILE"]], {**GOOD, **sharp})
    assert "SHARP TLS material cannot be loaded" in text
    data_dir = tmp_path / "data"
    problems_of(["--data-dir", str(data_dir), "--sharp-user-crt-file", str(missing)], {**GOOD, **sharp})
    assert not data_dir.exists(), "nothing is created before the configuration is valid"


def test_sharp_url_must_be_https_and_sharp_is_l2_only(tmp_path: Path) -> None:
    sharp = make_sharp_pki(tmp_path)
    text = problems_of(["--sharp-url", "http://sharp.example", "--layer", "l3"], {**GOOD, **sharp})
    assert "--sharp-url must be an https:// URL with a host, got 'http://sharp.example'" in text
    assert "SHARP prover is L2-only (fact registration happens on L1)" in text


@pytest.mark.parametrize("option", ["--snos-layout-name", "--prover-layout-name"])
def test_layouts_outside_the_list_are_refused(option: str) -> None:
    text = problems_of([option, "all_cairo_stwo"], GOOD)
    assert f"{option}: must be one of plain, small, dex, recursive, starknet" in text
    assert "got 'all_cairo_stwo'" in text
    settings = load_run_settings(parse([option, "recursive_with_poseidon"]), GOOD)
    assert settings.values[option[2:].replace("-", "_")] == "recursive_with_poseidon"


def test_bad_addresses_keys_and_urls_are_each_named() -> None:
    text = problems_of(
        [
            "--starknet-operator-address",
            "0xabc",
            "--l1-core-contract-address",
            "0xzz",
            "--ethereum-private-key",
            "0x1234",
            "--ethereum-rpc-url",
            "localhost:8545",
            "--madara-rpc-url",
            "not a url",
        ],
        ETHEREUM,
    )
    assert "--starknet-operator-address must be a 20-byte address" in text and "'0xabc'" in text
    assert "--l1-core-contract-address must be a 20-byte address (0x and 40 hex digits), got '0xzz'" in text
    assert "--ethereum-private-key (MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY) must be a private key" in text
    assert "--ethereum-rpc-url must be an http:// or https:// URL with a host" in text
    assert "--madara-rpc-url must be an http:// or https:// URL with a host, got 'not a url'" in text
    assert "0x1234" not in text and "localhost:8545" not in text, "secrets are never echoed"


def test_mock_prover_without_a_verifier_is_refused() -> None:
    text = problems_of(["--prover", "mock"], ETHEREUM)
    assert "--mock-verifier-address (MADARA_ORCHESTRATOR_MOCK_VERIFIER_ADDRESS) is required with --prover mock" in text
    assert "every settlement reverts on L1" in text
    assert (
        "--mock-verifier-private-key (MADARA_ORCHESTRATOR_MOCK_VERIFIER_PRIVATE_KEY), --mock-verifier-signer-url or "
        "--mock-verifier-kms-key-id is required with --prover mock" in text
    )


def test_mock_prover_refuses_the_settlement_key_for_facts() -> None:
    same = ANVIL_KEY_0.upper().replace("0X", "")  # the same key written differently
    text = problems_of(
        ["--prover", "mock", "--mock-verifier-address", ADDRESS, "--mock-verifier-private-key", same], ETHEREUM
    )
    assert "--mock-verifier-private-key must differ from --ethereum-private-key" in text
    assert same not in text


def test_mock_prover_is_l2_only_and_needs_ethereum() -> None:
    text = problems_of(["--prover", "mock", "--layer", "l3", "--store-audit-artifacts"], GOOD)
    assert "Mock prover is L2-only" in text
    assert "--prover mock needs --settle-on-ethereum" in text
    assert "--prover mock cannot be used with --store-audit-artifacts" in text


def test_prover_problems_come_with_all_the_others() -> None:
    text = problems_of(["--prover", "sharp", "--port", "70000", "--max-num-blobs", "9"], GOOD)
    assert "--sharp-url (MADARA_ORCHESTRATOR_SHARP_URL) is required" in text
    assert "--port must be between 0 and 65535" in text
    assert "--max-num-blobs must be at most 6" in text
    assert "--prover: must be one of atlantic, sharp, mock, devnet" in problems_of(["--prover", "stone"], GOOD)


def test_a_bad_batching_limit_names_its_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse(["--max-batch-size", "0", "--max-blocks-per-snos-batch", "0"]), GOOD)
    assert "--max-batch-size: max batch size must be a positive integer, got 0" in caught.value.problems
    assert any(p.startswith("--max-blocks-per-snos-batch: ") for p in caught.value.problems)


def test_heal_settings_reach_the_runtime(tmp_path: Path) -> None:
    """A message lost by a process killed between a job's write and its send is re-sent after
    --heal-stale-after-seconds (default 120 s): the option must reach the runtime."""
    from madara_orchestrator.cli.compose import runtime_config
    from madara_orchestrator.cli.devnet import devnet_settings
    from madara_orchestrator.cli.settings import Settings

    base = devnet_settings(tmp_path, "http://127.0.0.1:9", port=0)
    assert runtime_config(base).heal_stale_after_s == 120.0
    tuned = Settings({**base.values, "heal_stale_after_seconds": 15.0, "heal_interval_seconds": 2.0})
    config = runtime_config(tuned)
    assert (config.heal_stale_after_s, config.heal_interval_s) == (15.0, 2.0)


def test_settlements_in_flight_default_by_layer_and_reach_the_runtime(tmp_path: Path) -> None:
    """4 on Ethereum (and the devnet ledger), 1 on Starknet unless given; the trigger and the state-transition
    queue's concurrency both take it."""
    from madara_orchestrator.cli.compose import runtime_config
    from madara_orchestrator.cli.devnet import devnet_settings
    from madara_orchestrator.cli.settings import Settings
    from madara_orchestrator.domain.jobs import JobType

    base = devnet_settings(tmp_path, "http://127.0.0.1:9", port=0)
    assert base.max_settlements_in_flight is None and base.settlements_in_flight == 4
    on_starknet = Settings({**base.values, "settle_on_starknet": True})
    assert on_starknet.settlements_in_flight == 1
    assert Settings({**on_starknet.values, "max_settlements_in_flight": 3}).settlements_in_flight == 3
    config = runtime_config(Settings({**base.values, "max_settlements_in_flight": 2}))
    assert config.triggers.max_settlements_in_flight == 2
    assert config.processing_concurrency[JobType.STATE_TRANSITION] == 2


L3_FLAGS = [
    "--layer",
    "l3",
    "--settle-on-starknet",
    "--starknet-rpc-url",
    "http://127.0.0.1:9545",
    "--starknet-account-address",
    "0x1234",
    "--starknet-cairo-core-contract-address",
    "0x5678",
    "--prover",
    "atlantic",
    "--mock-atlantic-server",
    "--atlantic-api-key",
    "k",
    "--atlantic-mock-fact-hash",
    "true",
    "--atlantic-prover-type",
    "starkware",
    "--atlantic-settlement-layer",
    "starknet",
    "--atlantic-network",
    "testnet",
    "--cairo-verifier-program-hash",
    "0x99",
]
L3_ENV = {
    P + "MADARA_RPC_URL": "http://127.0.0.1:9944",
    P + "STARKNET_PRIVATE_KEY": "0xabc",
    P + "SNOS_RUNNER": "devnet",
}


def test_an_l3_settles_on_starknet_with_the_originals_flags() -> None:
    settings = load_run_settings(parse(L3_FLAGS), L3_ENV)
    assert settings.layer == "l3" and settings.settle_on_starknet
    assert settings.starknet_finality_retry_wait_in_secs == 6.0
    assert settings.describe()["starknet_private_key"] == "***"


def test_l3_settlement_rules_are_each_named() -> None:
    text = problems_of(["--layer", "l3", "--settle-on-starknet", "--prover", "devnet"], GOOD)
    assert "more than one given" in text  # GOOD also settles on the devnet ledger
    assert "--layer l3 settles on Starknet: use --settle-on-starknet (the devnet ledger is L2 only)" in text
    for name in ("--starknet-rpc-url", "--starknet-private-key", "--starknet-account-address"):
        assert name in text
    assert "--prover devnet is L2-only" in text
    text = problems_of(["--settle-on-starknet"], {P + "MADARA_RPC_URL": "http://x:1", P + "PROVER": "devnet"})
    assert "--settle-on-starknet is for an L3: add --layer l3" in text
    bad = [*L3_FLAGS[:-2], "--starknet-account-address", "0xzz", "--da-on-ethereum"]
    text = problems_of(bad, L3_ENV)
    assert "--starknet-account-address must be a felt" in text
    assert "--cairo-verifier-program-hash" in text  # required with atlantic on L3
    assert "--layer l3 publishes no blobs on Ethereum" in text


# -- issue 17: numbers, choices, unknown variables and arguments -----------------------------------


def test_every_number_option_has_a_range() -> None:
    """Each int and float option of ``run`` is checked against a range (declared with ``rule=``)."""
    from madara_orchestrator.cli.settings import RUN_NUMBER_RULES

    numbers = {o.name for o in RUN_OPTIONS if o.kind in (int, float)}
    assert set(RUN_NUMBER_RULES) == numbers


def test_a_setting_is_declared_with_its_range_and_a_type_its_default_fits() -> None:
    """A settings field is read back as an option: its type, default and metadata; a number without a range,
    or a type that does not say whether the setting may be unset, is refused when the class is read."""
    from dataclasses import dataclass

    from madara_orchestrator.cli.settings import POSITIVE, Group, setting
    from madara_orchestrator.cli.settings.declare import SettingsGroup, group_options

    @dataclass(frozen=True)
    class Good(SettingsGroup):
        GROUP = Group("good", "settings that are declared well")
        wait_seconds: float = setting("WAIT_SECONDS", "how long", default=2.0, rule=POSITIVE)
        token: str | None = setting("TOKEN", "a token", secret=True)

    wait, token = group_options(Good)
    assert (wait.flag, wait.kind, wait.default, wait.rule, wait.group) == (
        "--wait-seconds",
        float,
        2.0,
        POSITIVE,
        Good.GROUP,
    )
    assert (token.env, token.kind, token.default, token.secret) == ("TOKEN", str, None, True)

    @dataclass(frozen=True)
    class NoRange(SettingsGroup):
        GROUP = Group("bad", "")
        count: int = setting("COUNT", "how many", default=1)

    @dataclass(frozen=True)
    class NoneWithoutOptional(SettingsGroup):
        GROUP = Group("bad", "")
        url: str = setting("URL", "where")

    for bad in (NoRange, NoneWithoutOptional):
        with pytest.raises(TypeError):
            group_options(bad)


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--ethereum-confirmations", "-3", "--ethereum-confirmations must be 0 or more, got -3"),
        ("--ethereum-max-fee-bumps", "-1", "--ethereum-max-fee-bumps must be 0 or more, got -1"),
        ("--ethereum-tx-confirmation-timeout-secs", "0", "--ethereum-tx-confirmation-timeout-secs must be positive"),
        ("--ethereum-finality-retry-wait-in-secs", "-2", "--ethereum-finality-retry-wait-in-secs must be positive"),
        ("--ethereum-l2-state-update-max-fee-wei", "0", "--ethereum-l2-state-update-max-fee-wei must be a positive"),
        ("--storage-expiration-days", "0", "--storage-expiration-days must be a positive integer, got 0"),
        ("--min-block-to-process", "-1", "--min-block-to-process must be 0 or more, got -1"),
        ("--graceful-shutdown-timeout", "-5", "--graceful-shutdown-timeout must be 0 or more, got -5.0"),
        ("--retry-base-delay-seconds", "-1", "--retry-base-delay-seconds must be 0 or more"),
        ("--verification-poll-seconds", "0", "--verification-poll-seconds must be positive, got 0.0"),
        ("--starknet-tx-confirmation-timeout-secs", "0", "--starknet-tx-confirmation-timeout-secs must be positive"),
        ("--heal-interval-seconds", "nan", "--heal-interval-seconds: expected a finite number, got 'nan'"),
        ("--graceful-shutdown-timeout", "inf", "--graceful-shutdown-timeout: expected a finite number, got 'inf'"),
    ],
)
def test_a_number_out_of_its_range_is_one_line_naming_its_flag(flag: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse([flag, value]), GOOD)
    mentioning = [p for p in caught.value.problems if flag in p]
    assert len(mentioning) == 1, caught.value.problems
    assert expected in mentioning[0]


def test_a_value_outside_the_choices_is_one_problem_not_also_missing() -> None:
    for argv, env, flag in (
        (["--prover", "foo"], {P + "MADARA_RPC_URL": "http://127.0.0.1:9", P + "SETTLE_ON_DEVNET": "true"}, "--prover"),
        ([], {**GOOD, P + "PROVER": "stone"}, "--prover"),
        (
            ["--prover", "atlantic", "--mock-atlantic-server", "--atlantic-network", "devnet"],
            {**GOOD, P + "ATLANTIC_API_KEY": "k", P + "ATLANTIC_MOCK_FACT_HASH": "true"},
            "--atlantic-network",
        ),
    ):
        with pytest.raises(ConfigError) as caught:
            load_run_settings(parse(argv), env)
        about = [p for p in caught.value.problems if p.startswith(flag) or f"_{flag[2:].upper()}" in p]
        assert len(about) == 1, caught.value.problems
        assert "must be one of" in about[0]


def test_an_unreadable_secret_file_is_not_also_reported_missing(tmp_path: Path) -> None:
    env = {**GOOD, P + "ETHEREUM_PRIVATE_KEY_FILE": str(tmp_path / "missing")}
    problems = problems_of(["--settle-on-ethereum"], env).splitlines()
    about = [p for p in problems if "ETHEREUM_PRIVATE_KEY" in p or "--ethereum-private-key" in p]
    assert len(about) == 1 and "cannot read" in about[0], problems


def test_unknown_variables_are_named_with_the_closest_known_one() -> None:
    from madara_orchestrator.cli.run import unknown_variable_warnings

    env = {
        P + "MAX_BATCH_SIZ": "5",
        P + "ETHEREUM_PRIVATE_KEY_FILE": "/run/secrets/key",  # a secret's _FILE: known
        P + "MADARA_RPC_URL_FILE": "/x",  # not a secret: no _FILE
        P + "EVENT_BRIDGE_TYPE": "rule",  # read by setup
        P + "ANVIL_BIN": "/bin/anvil",  # read by the devnet commands
        P + "HOST": "0.0.0.0",  # read by run and by `orchestrator jobs`
        P + "ZZZZZZ": "hunter2",
        "OTHER_PREFIX_MAX_BATCH_SIZ": "5",
    }
    warnings = unknown_variable_warnings(env)
    assert warnings == [
        f"{P}MADARA_RPC_URL_FILE is ignored: only secrets are read from a file; set {P}MADARA_RPC_URL instead",
        f"unknown variable {P}MAX_BATCH_SIZ is ignored: did you mean {P}MAX_BATCH_SIZE?",
        f"unknown variable {P}ZZZZZZ is ignored: no setting has this name",
    ]
    assert "hunter2" not in "".join(warnings), "values are never shown"


def test_a_misspelt_variable_is_named_beside_the_configuration_problems(tmp_path: Path) -> None:
    """The typo is often why a setting is missing: run's refusal names it too, not only a later warning."""
    env = {**os.environ, P + "MADARA_RPC_URLL": "http://127.0.0.1:9"}
    env.pop(P + "MADARA_RPC_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "madara_orchestrator.cli.main", "run", "--prover", "devnet", "--settle-on-devnet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "--madara-rpc-url" in done.stderr
    assert f"note: unknown variable {P}MADARA_RPC_URLL is ignored: did you mean {P}MADARA_RPC_URL?" in done.stderr


KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "--eth-private-key", KEY], "unknown option --eth-private-key (did you mean --ethereum-private-key?)"),
        (["run", f"--eth-private-key={KEY}"], "unknown option --eth-private-key (did you mean"),
        (["run", "--port", "3000", KEY], "1 unexpected value (not shown)"),
        (["run", f"--ethereum={KEY}"], "ambiguous option: --ethereum=…"),
    ],
)
def test_an_unknown_argument_is_named_without_its_value(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors exit from inside parse_known_args
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert named in err
    assert KEY not in err and KEY[2:] not in err and KEY[2:12] not in err
    assert len(err.strip().splitlines()) == 1, err


def test_da_public_keys_are_comma_separated_felts() -> None:
    settings = load_run_settings(parse(["--da-public-keys", "0x1f, 2A ,0x0"]), GOOD)
    assert settings.da_keys == (0x1F, 0x2A, 0)
    assert load_run_settings(parse([]), GOOD).da_keys == (), "none: no encryption, omitted from buckets"


STARK_PRIME = 2**251 + 17 * 2**192 + 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0x1,,0x2", "--da-public-keys: key 2 is empty (comma-separated felts, 0x hex)"),
        ("0x1,0xzz", "--da-public-keys: key 2 '0xzz' is not hex (e.g. 0x123...)"),
        (hex(STARK_PRIME), f"--da-public-keys: key 1 '{hex(STARK_PRIME)}' is not below the Stark prime"),
    ],
)
def test_a_bad_da_public_key_is_one_problem(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse([]), {**GOOD, P + "DA_PUBLIC_KEYS": value})
    assert caught.value.problems == [expected]


# -- how L1 transactions are signed (issue 21) --------------------------------------------------------

SIGNER_ENV = {**ETHEREUM, P + "PROVER": "devnet"}


def test_a_private_key_and_a_kms_key_together_are_one_line_naming_both() -> None:
    text = problems_of(["--ethereum-kms-key-id", "alias/settle"], SIGNER_ENV)
    lines = [line for line in text.splitlines() if "kms" in line]
    assert lines == [
        "--ethereum-private-key and --ethereum-kms-key-id are both given: a settlement is signed one way only; keep "
        "one (a remote signer or KMS keeps the key out of the process)"
    ]
    assert ANVIL_KEY_0 not in text and ANVIL_KEY_0[2:] not in text


def test_a_remote_signer_needs_its_address_and_tls_files_that_exist(tmp_path: Path) -> None:
    env = {k: v for k, v in SIGNER_ENV.items() if k != P + "ETHEREUM_PRIVATE_KEY"}
    text = problems_of(
        [
            "--ethereum-signer-url",
            "https://signer.example:9000",
            "--ethereum-signer-tls-cert",
            str(tmp_path / "missing.pem"),
            "--ethereum-signer-header",
            "Authorization: Bearer x",
            "--ethereum-signer-header",
            "no-colon-token",
        ],
        env,
    )
    assert (
        "--ethereum-signer-address (MADARA_ORCHESTRATOR_ETHEREUM_SIGNER_ADDRESS) is required with "
        "--ethereum-signer-url: the account the signer signs for" in text
    )
    assert "--ethereum-signer-tls-cert and --ethereum-signer-tls-key go together (mutual TLS)" in text
    assert "missing.pem is not a readable file" in text
    assert "--ethereum-signer-header #2 is not 'Name: value'" in text and "no-colon-token" not in text


def test_settling_on_ethereum_without_any_way_to_sign_says_the_three() -> None:
    env = {k: v for k, v in SIGNER_ENV.items() if k != P + "ETHEREUM_PRIVATE_KEY"}
    assert (
        "--ethereum-private-key (MADARA_ORCHESTRATOR_ETHEREUM_PRIVATE_KEY), --ethereum-signer-url or "
        "--ethereum-kms-key-id is required with --settle-on-ethereum: how a settlement is signed"
    ) in problems_of([], env)


def test_a_kms_signed_settlement_loads_without_a_private_key() -> None:
    env = {k: v for k, v in SIGNER_ENV.items() if k != P + "ETHEREUM_PRIVATE_KEY"}
    env |= {P + "PROVER": "mock", P + "MOCK_VERIFIER_ADDRESS": ADDRESS, P + "MOCK_VERIFIER_KMS_KEY_ID": "alias/v"}
    settings = load_run_settings(parse(["--ethereum-kms-key-id", "alias/settle"]), env)
    assert settings.ethereum_kms_key_id == "alias/settle" and settings.ethereum_private_key is None
    assert settings.mock_verifier_private_key is None


def test_the_mock_verifier_may_not_share_the_settlement_kms_key() -> None:
    env = {k: v for k, v in SIGNER_ENV.items() if k != P + "ETHEREUM_PRIVATE_KEY"}
    env |= {P + "PROVER": "mock", P + "MOCK_VERIFIER_ADDRESS": ADDRESS, P + "MOCK_VERIFIER_KMS_KEY_ID": "alias/k"}
    text = problems_of(["--ethereum-kms-key-id", "alias/k"], env)
    assert "--mock-verifier-kms-key-id must differ from --ethereum-kms-key-id" in text
