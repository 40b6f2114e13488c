"""``--aggregator-runner command|http|devnet``: chosen by name only, required where the aggregator runs here
(SHARP, mock and devnet provers), refused where it does not (Atlantic, an L3); its flags checked in the one
validation pass; the runner each choice builds; and what ``devnet-chain`` writes for ``run``."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from pathlib import Path

import pytest

from madara_orchestrator.aggregator.command import CommandAggregatorRunner
from madara_orchestrator.aggregator.contract import AggregatorRunConfig
from madara_orchestrator.aggregator.http import HttpAggregatorRunner
from madara_orchestrator.cli.compose import build_aggregator_runner
from madara_orchestrator.cli.devnet import LocalL1, devnet_settings
from madara_orchestrator.cli.devnet_chain import chain_env
from madara_orchestrator.cli.main import main
from madara_orchestrator.cli.settings import RUN_OPTIONS, Settings, add_options, load_run_settings
from madara_orchestrator.devnet.adapters import DevnetAggregatorRunner
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.starknet.rpc import StarknetRpcClient

P = "MADARA_ORCHESTRATOR_"
ADDRESS = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
GOOD = {
    P + "MADARA_RPC_URL": "http://127.0.0.1:9944",
    P + "PROVER": "devnet",
    P + "SETTLE_ON_DEVNET": "true",
    P + "SNOS_RUNNER": "devnet",
    P + "AGGREGATOR_RUNNER": "devnet",
}
ETHEREUM = {
    P + "MADARA_RPC_URL": "http://127.0.0.1:9944",
    P + "SNOS_RUNNER": "devnet",
    P + "SETTLE_ON_ETHEREUM": "true",
    P + "ETHEREUM_SETTLEMENT_RPC_URL": "http://127.0.0.1:8545",
    P + "ETHEREUM_PRIVATE_KEY": ANVIL_KEY_0,
    P + "L1_CORE_CONTRACT_ADDRESS": ADDRESS,
}
MOCK = {
    **ETHEREUM,
    P + "PROVER": "mock",
    P + "MOCK_VERIFIER_ADDRESS": ADDRESS,
    P + "MOCK_VERIFIER_PRIVATE_KEY": ANVIL_KEY_1,
}
NO_RUNNER = (
    "--aggregator-runner (MADARA_ORCHESTRATOR_AGGREGATOR_RUNNER) is required with --prover {}: command "
    "(--aggregator-command), http (--aggregator-runner-url) or devnet (a stand-in no prover or core contract accepts)"
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, RUN_OPTIONS)
    return parser.parse_args(argv)


def problems_of(argv: list[str], env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse(argv), env)
    return caught.value.problems


def sharp_env(tmp_path: Path) -> dict[str, str]:
    from tests.helpers.sharp import make_pki

    pki = make_pki(tmp_path / "pki")
    return {
        **ETHEREUM,
        P + "PROVER": "sharp",
        P + "SHARP_CUSTOMER_ID": "cust-1",
        P + "SHARP_URL": "https://sharp.example",
        P + "SHARP_USER_CRT_FILE": pki.client_crt,
        P + "SHARP_USER_KEY_FILE": pki.client_key,
        P + "SHARP_SERVER_CRT_FILE": pki.ca_crt,
        P + "SHARP_RPC_NODE_URL": "http://127.0.0.1:8545",
        P + "GPS_VERIFIER_CONTRACT_ADDRESS": ADDRESS,
    }


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "aggregate"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_run_with_sharp_and_no_aggregator_runner_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith(P):
            monkeypatch.delenv(key)
    for key, value in sharp_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n  - ") == 1, err
    assert f"  - {NO_RUNNER.format('sharp')}\n" in err
    assert "Traceback" not in err


def test_every_prover_that_aggregates_here_needs_a_runner_by_name() -> None:
    assert problems_of([], MOCK) == [NO_RUNNER.format("mock")]
    unnamed = {k: v for k, v in GOOD.items() if k != P + "AGGREGATOR_RUNNER"}
    assert problems_of([], unnamed) == [NO_RUNNER.format("devnet")]
    assert load_run_settings(parse(["--aggregator-runner", "devnet"]), MOCK).aggregator_runner == "devnet"


def test_where_nothing_aggregates_here_the_runner_is_refused() -> None:
    atlantic = {
        **GOOD,
        P + "PROVER": "atlantic",
        P + "ATLANTIC_API_KEY": "key",
        P + "ATLANTIC_SERVICE_URL": "https://atlantic.example",
        P + "ATLANTIC_NETWORK": "TESTNET",
        P + "ATLANTIC_MOCK_FACT_HASH": "true",
        P + "ATLANTIC_PROVER_TYPE": "starkware_sharp",
        P + "ATLANTIC_SETTLEMENT_LAYER": "ethereum",
    }
    assert problems_of([], atlantic) == ["--aggregator-runner is set but Atlantic aggregates in its buckets: drop it"]
    without = {k: v for k, v in atlantic.items() if k != P + "AGGREGATOR_RUNNER"}
    assert load_run_settings(parse([]), without).aggregator_runner is None
    l3 = problems_of(["--layer", "l3", "--aggregator-command", "x"], {**without, P + "SETTLE_ON_DEVNET": "false"})
    assert "--aggregator-command is set but an L3 has no aggregator batches: drop it" in l3


def test_command_and_http_modes_check_their_flags(script: Path, tmp_path: Path) -> None:
    settings = load_run_settings(
        parse(["--aggregator-runner", "command", "--aggregator-timeout-seconds", "90"]),
        {**MOCK, P + "AGGREGATOR_COMMAND": f"{script} --vm 'rust vm'"},
    )
    assert settings.aggregator_command == f"{script} --vm 'rust vm'" and settings.aggregator_timeout_seconds == 90.0
    assert problems_of(["--aggregator-runner", "command"], MOCK) == [
        "--aggregator-command (MADARA_ORCHESTRATOR_AGGREGATOR_COMMAND) is required with --aggregator-runner command"
    ]
    assert problems_of(["--aggregator-runner", "command", "--aggregator-command", str(tmp_path / "gone")], MOCK) == [
        f"--aggregator-command: {tmp_path / 'gone'} does not exist"
    ]
    assert problems_of(["--aggregator-runner", "http"], MOCK) == [
        "--aggregator-runner-url (MADARA_ORCHESTRATOR_AGGREGATOR_RUNNER_URL) is required with --aggregator-runner http"
    ]
    secret_url = "https://u:token@runner.example:8443"
    http = load_run_settings(parse(["--aggregator-runner", "http"]), {**MOCK, P + "AGGREGATOR_RUNNER_URL": secret_url})
    assert http.aggregator_runner_url == secret_url and http.describe()["aggregator_runner_url"] == "***"
    mixed = problems_of(["--aggregator-command", str(script), "--aggregator-runner-url", "http://127.0.0.1:1"], GOOD)
    assert mixed == [
        "--aggregator-command is set but --aggregator-runner is devnet: add --aggregator-runner command",
        "--aggregator-runner-url is set but --aggregator-runner is devnet: add --aggregator-runner http",
    ]
    assert problems_of(["--aggregator-timeout-seconds", "0"], GOOD) == [
        "--aggregator-timeout-seconds must be positive, got 0.0"
    ]


async def test_each_choice_builds_its_runner(script: Path, tmp_path: Path) -> None:
    rpc = StarknetRpcClient("http://127.0.0.1:9545")
    env = {**MOCK, P + "DATA_DIR": str(tmp_path / "data")}
    async with contextlib.AsyncExitStack() as exits:
        devnet = build_aggregator_runner(load_run_settings(parse(["--aggregator-runner", "devnet"]), env), rpc, exits)
        assert isinstance(devnet, DevnetAggregatorRunner) and devnet.kzg_da, "Ethereum checks a KZG section"
        argv = ["--aggregator-runner", "command", "--aggregator-command", f"{sys.executable} {script}"]
        command = build_aggregator_runner(load_run_settings(parse(argv), env), rpc, exits)
        assert isinstance(command, CommandAggregatorRunner)
        assert command.argv == [sys.executable, str(script)] and command.work_dir == tmp_path / "data" / "aggregator"
        assert command.config == AggregatorRunConfig(rpc_url="http://127.0.0.1:9944", use_kzg_da=True, timeout_s=3600)
        argv = ["--aggregator-runner", "http", "--aggregator-runner-url", "http://127.0.0.1:8000/"]
        http = build_aggregator_runner(load_run_settings(parse(argv), env), rpc, exits)
        assert isinstance(http, HttpAggregatorRunner) and http.url == "http://127.0.0.1:8000"
        assert not http._client.is_closed
        ledger = build_aggregator_runner(load_run_settings(parse([]), GOOD), rpc, exits)
        assert isinstance(ledger, DevnetAggregatorRunner) and not ledger.kzg_da
        # Settings made in code (not validated) without a runner: still no stand-in by default.
        unnamed = Settings(
            {**devnet_settings(tmp_path, "http://127.0.0.1:9944", port=0).values, "aggregator_runner": None}
        )
        with pytest.raises(ConfigError, match="--aggregator-runner is required with --prover devnet"):
            build_aggregator_runner(unnamed, rpc, exits)
    assert http._client.is_closed, "the stack closes the runner's HTTP client"
    await rpc.aclose()


def test_devnet_and_devnet_chain_name_the_stand_ins(tmp_path: Path) -> None:
    settings = devnet_settings(tmp_path, "http://127.0.0.1:9944", port=0)
    assert (settings.snos_runner, settings.aggregator_runner) == ("devnet", "devnet")
    l1 = LocalL1(anvil=None, contracts=None, overrides={"ethereum_private_key": ANVIL_KEY_0})  # type: ignore[arg-type]
    env = chain_env("http://127.0.0.1:9944", l1, data_dir=tmp_path, api_port=None)
    assert env[P + "SNOS_RUNNER"] == "devnet" and env[P + "AGGREGATOR_RUNNER"] == "devnet"
