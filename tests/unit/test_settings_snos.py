"""``--snos-runner command|http|devnet`` and its flags, checked in the one validation pass; the prover rule
for a real L1; and the runner each choice builds."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from pathlib import Path

import pytest

from madara_orchestrator.cli.compose import build_snos_runner
from madara_orchestrator.cli.main import main
from madara_orchestrator.cli.settings import RUN_OPTIONS, Settings, add_options, load_run_settings
from madara_orchestrator.devnet.adapters import DevnetSnosRunner
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.snos.command import CommandSnosRunner
from madara_orchestrator.snos.contract import SnosRunConfig
from madara_orchestrator.snos.http import HttpSnosRunner
from madara_orchestrator.starknet.rpc import StarknetRpcClient

P = "MADARA_ORCHESTRATOR_"
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
    P + "AGGREGATOR_RUNNER": "devnet",
    P + "SETTLE_ON_ETHEREUM": "true",
    P + "ETHEREUM_SETTLEMENT_RPC_URL": "http://127.0.0.1:8545",
    P + "ETHEREUM_PRIVATE_KEY": "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    P + "L1_CORE_CONTRACT_ADDRESS": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser, RUN_OPTIONS)
    return parser.parse_args(argv)


def problems_of(argv: list[str], env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_run_settings(parse(argv), env)
    return caught.value.problems


@pytest.fixture
def script(tmp_path: Path) -> Path:
    """An executable runner program (a shell script)."""
    path = tmp_path / "prove-batch"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_snos_runner_is_chosen_by_name_only() -> None:
    """No runner is implied: the devnet stand-in runs only when named (issue 18 item 4)."""
    without = {k: v for k, v in GOOD.items() if k != P + "SNOS_RUNNER"}
    assert problems_of([], without) == [
        "--snos-runner (MADARA_ORCHESTRATOR_SNOS_RUNNER) is required: command (--snos-command), http "
        "(--snos-runner-url) or devnet (a stand-in no prover accepts)"
    ]
    settings = load_run_settings(parse([]), GOOD)
    assert settings.snos_runner == "devnet"
    assert settings.snos_command is None and settings.snos_runner_url is None
    assert settings.snos_timeout_seconds == 3600.0 and settings.snos_work_dir is None


def test_command_mode_takes_a_program_with_arguments_from_flag_or_variable(script: Path) -> None:
    settings = load_run_settings(
        parse(["--snos-runner", "command", "--snos-timeout-seconds", "90"]),
        {**GOOD, P + "SNOS_COMMAND": f"{script} --cairo-vm 'rust vm'"},
    )
    assert settings.snos_runner == "command"
    assert settings.snos_command == f"{script} --cairo-vm 'rust vm'"
    assert settings.snos_timeout_seconds == 90.0
    by_flag = load_run_settings(parse(["--snos-runner", "COMMAND", "--snos-command", "sh -c true"]), GOOD)
    assert by_flag.snos_runner == "command" and by_flag.snos_command == "sh -c true"


def test_command_mode_problems_come_together_with_the_others(tmp_path: Path) -> None:
    text = "\n".join(problems_of(["--snos-runner", "command", "--port", "70000"], GOOD))
    assert "--snos-command (MADARA_ORCHESTRATOR_SNOS_COMMAND) is required with --snos-runner command" in text
    assert "--port must be between 0 and 65535" in text
    plain = tmp_path / "not-executable"
    plain.write_text("#!/bin/sh\n")
    problems = problems_of(
        ["--snos-runner", "command", "--snos-command", str(plain), "--snos-timeout-seconds", "0"], GOOD
    )
    assert f"--snos-command: {plain} is not executable (chmod +x it, or put its interpreter first)" in problems
    assert "--snos-timeout-seconds must be positive, got 0.0" in problems
    missing = problems_of(["--snos-runner", "command", "--snos-command", str(tmp_path / "gone") + " --x"], GOOD)
    assert f"--snos-command: {tmp_path / 'gone'} does not exist" in missing
    assert "--snos-command: 'prove_block' is not found on PATH (give its full path)" in problems_of(
        ["--snos-runner", "command", "--snos-command", "prove_block"], GOOD
    )


def test_http_mode_needs_a_url_which_is_never_echoed() -> None:
    settings = load_run_settings(
        parse(["--snos-runner", "http"]), {**GOOD, P + "SNOS_RUNNER_URL": "https://u:token@runner.example:8443"}
    )
    assert settings.snos_runner_url == "https://u:token@runner.example:8443"
    assert settings.describe()["snos_runner_url"] == "***"
    assert "--snos-runner-url (MADARA_ORCHESTRATOR_SNOS_RUNNER_URL) is required with --snos-runner http" in problems_of(
        ["--snos-runner", "http"], GOOD
    )
    problems = problems_of(["--snos-runner", "http", "--snos-runner-url", "runner:8000/token"], GOOD)
    assert problems == ["--snos-runner-url must be an http:// or https:// URL with a host"]


def test_one_modes_flags_with_another_mode_are_named(script: Path) -> None:
    problems = problems_of(["--snos-command", str(script), "--snos-runner-url", "http://127.0.0.1:1"], GOOD)
    assert "--snos-command is set but --snos-runner is devnet: add --snos-runner command" in problems
    assert "--snos-runner-url is set but --snos-runner is devnet: add --snos-runner http" in problems
    assert problems_of(["--snos-runner", "snos"], GOOD) == [
        "--snos-runner: must be one of command, http, devnet, got 'snos'"
    ]


def test_the_devnet_prover_is_refused_on_a_real_l1() -> None:
    problems = problems_of(["--prover", "devnet"], ETHEREUM)
    assert problems == [
        "--prover devnet proves nothing and registers no facts, so a core contract on Ethereum rejects every "
        "settlement: use it with --settle-on-devnet, or settle on Ethereum with --prover mock (facts on a mock "
        "verifier), atlantic or sharp"
    ]
    assert load_run_settings(parse(["--prover", "devnet"]), GOOD).settle_on_devnet is True


def test_the_cli_lists_snos_problems_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in list(os.environ):
        if key.startswith(P):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--snos-runner", "http", "--snos-command", "prove", "--prover", "devnet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "  - --snos-runner-url (MADARA_ORCHESTRATOR_SNOS_RUNNER_URL) is required with --snos-runner http" in err
    assert "  - --snos-command is set but --snos-runner is http: add --snos-runner command" in err
    assert "Traceback" not in err


# -- what each choice builds -------------------------------------------------------------------------


def settings_for(argv: list[str], tmp_path: Path) -> Settings:
    env = {**GOOD, P + "DATA_DIR": str(tmp_path / "data"), P + "RPC_FOR_SNOS": "http://127.0.0.1:9545/"}
    return load_run_settings(parse(argv), env)


async def test_each_runner_choice_builds_its_runner(script: Path, tmp_path: Path) -> None:
    rpc = StarknetRpcClient("http://127.0.0.1:9545")
    async with contextlib.AsyncExitStack() as exits:
        assert isinstance(build_snos_runner(settings_for([], tmp_path), rpc, exits), DevnetSnosRunner)
        argv = ["--snos-runner", "command", "--snos-command", f"{sys.executable} {script}"]
        argv += ["--snos-layout-name", "dynamic", "--snos-timeout-seconds", "120"]
        command = build_snos_runner(settings_for(argv, tmp_path), rpc, exits)
        assert isinstance(command, CommandSnosRunner)
        assert command.argv == [sys.executable, str(script)]
        assert command.work_dir == tmp_path / "data" / "snos"
        # The SNOS RPC is --rpc-for-snos; the OS hints are the L2 ones (SPEC §9).
        expected = SnosRunConfig(
            rpc_url="http://127.0.0.1:9545/", layout="dynamic", full_output=True, use_kzg_da=False, timeout_s=120.0
        )
        assert command.config == expected
        assert command.config.request(1, 2).rpc_url == "http://127.0.0.1:9545"
        argv = ["--snos-runner", "http", "--snos-runner-url", "http://127.0.0.1:8000/"]
        http = build_snos_runner(settings_for(argv, tmp_path), rpc, exits)
        assert isinstance(http, HttpSnosRunner) and http.url == "http://127.0.0.1:8000"
        assert not http._client.is_closed
    assert http._client.is_closed, "the stack closes the runner's HTTP client"
    await rpc.aclose()
