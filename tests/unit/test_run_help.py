"""``orchestrator run --help``: options grouped by area in a set order, typed metavars, defaults shown (never a
secret's), and "required with ..." exactly where validation (``load_run_settings``) requires an option."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from madara_orchestrator.cli import run_help
from madara_orchestrator.cli.main import main
from madara_orchestrator.cli.settings import ENV_PREFIX, GROUPS, RUN_OPTIONS, Option, add_options, load_run_settings
from madara_orchestrator.cli.settings.running import ANY_SETTLEMENT
from madara_orchestrator.domain.errors import ConfigError

NAMES = {option.name for option in RUN_OPTIONS}
BY_NAME = {option.name: option for option in RUN_OPTIONS}
REQUIREMENTS = {option.name: option.required for option in RUN_OPTIONS if option.required}


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(formatter_class=run_help.HelpFormatter)
    add_options(parser, RUN_OPTIONS)
    return parser


def helps() -> dict[str, str]:
    """Each option's help as argparse prints it (``%%`` unescaped)."""
    return {action.dest: (action.help or "").replace("%%", "%") for action in run_parser()._actions}


def metavars() -> dict[str, Any]:
    return {action.dest: action.metavar for action in run_parser()._actions}


# -- groups ---------------------------------------------------------------------------------------


def test_new_atlantic_webhook_secret_is_placed_in_the_prover_area() -> None:
    group = BY_NAME["atlantic_webhook_secret"].group
    assert group is not None and group.title.startswith("prover")
    secret = Option(name="atlantic_webhook_secret", env="ATLANTIC_WEBHOOK_SECRET", secret=True)
    assert run_help.metavar(secret) == "SECRET"


# -- metavars, defaults -----------------------------------------------------------------------------


def test_every_value_has_a_typed_metavar() -> None:
    shown = metavars()
    for option in RUN_OPTIONS:
        if option.kind is bool:
            assert shown[option.name] is None, f"{option.flag} is a switch: it takes no value"
            continue
        metavar = shown[option.name]
        assert metavar and metavar != "VALUE", f"{option.flag} has no typed metavar"
        assert metavar.startswith("{") or metavar == metavar.upper(), f"{option.flag}: {metavar}"
    assert shown["madara_rpc_url"] == "URL" and shown["l1_core_contract_address"] == "ADDRESS"
    assert shown["ethereum_private_key"] == "KEY" and shown["bouncer_weights_limit_file"] == "FILE"
    assert shown["snos_timeout_seconds"] == "SECONDS" and shown["max_batch_size"] == "N"
    assert shown["ethereum_l2_state_update_max_fee_wei"] == "WEI" and shown["snos_layout_name"] == "LAYOUT"
    assert shown["layer"] == "{l2,l3}" and shown["prover"] == "{atlantic,sharp,mock,devnet}"


def test_choices_too_many_for_a_metavar_are_listed_in_the_help() -> None:
    text = helps()["snos_layout_name"]
    assert "one of: plain, small, dex" in text and "dynamic" in text


def test_defaults_are_shown_except_for_secrets_and_switches() -> None:
    shown = helps()
    for option in RUN_OPTIONS:
        text = shown[option.name]
        if option.kind is bool:
            assert "(default:" not in text, f"{option.flag} is a switch: off unless given"
        elif option.secret:
            assert option.default is None or str(option.default) not in text, f"{option.flag} shows a secret"
        elif option.default is not None:
            default = option.default
            value = str(int(default)) if isinstance(default, float) and default.is_integer() else str(default)
            assert f"(default: {value})" in text, f"{option.flag} does not show its default {value}"
    assert "(default: 3600)" in shown["snos_timeout_seconds"]
    assert "(default: mo_{}_queue)" in shown["queue_identifier"]
    assert "(default: no cap)" in shown["starknet_max_fee_fri"]


def test_an_optional_value_without_a_default_says_what_unset_means() -> None:
    shown = helps()
    for option in RUN_OPTIONS:
        if option.kind is bool or option.default is not None or option.required:
            continue
        text = shown[option.name]
        said = ("(default: ", "(default ", "unused", "without it")
        assert any(words in text for words in said), f"{option.flag}: declare unset= (what leaving it out means)"


def test_a_secret_never_shows_its_default() -> None:
    secret = Option(name="some_token", env="SOME_TOKEN", default="hunter2", help="a token", secret=True)
    text = run_help.help_text(secret, ENV_PREFIX)
    assert "hunter2" not in text and "default" not in text
    assert text.endswith(f"[env {ENV_PREFIX}SOME_TOKEN[_FILE]]")


# -- requirements: what help says is what validation enforces -------------------------------------


ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ADDRESS = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
BASE: dict[str, Any] = {
    "madara_rpc_url": "http://127.0.0.1:9944",
    "prover": "devnet",
    "settle_on_devnet": True,
    "snos_runner": "devnet",
    "aggregator_runner": "devnet",
}
ETHEREUM: dict[str, Any] = {
    "madara_rpc_url": "http://127.0.0.1:9944",
    "snos_runner": "devnet",
    "aggregator_runner": "devnet",
    "settle_on_ethereum": True,
    "ethereum_rpc_url": "http://127.0.0.1:8545",
    "ethereum_private_key": ANVIL_KEY_0,
    "l1_core_contract_address": ADDRESS,
}
ATLANTIC: dict[str, Any] = {
    "prover": "atlantic",
    "aggregator_runner": None,  # Atlantic aggregates in its buckets
    "atlantic_api_key": "key",
    "atlantic_service_url": "https://atlantic.example",
    "atlantic_network": "testnet",
    "atlantic_mock_fact_hash": "false",
    "atlantic_prover_type": "starkware_sharp",
    "atlantic_settlement_layer": "ethereum",
    "atlantic_rpc_node_url": "http://127.0.0.1:8545",
    "atlantic_verifier_contract_address": ADDRESS,
}
STARKNET: dict[str, Any] = {
    "madara_rpc_url": "http://127.0.0.1:9944",
    "snos_runner": "devnet",
    "layer": "l3",
    "settle_on_starknet": True,
    "starknet_rpc_url": "http://127.0.0.1:9545",
    "starknet_private_key": "0x1",
    "starknet_account_address": "0x123",
    "starknet_cairo_core_contract_address": "0x456",
}


def scenarios(tmp_path: Path) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Valid configurations, each with the flags that make options required in it (besides the base's)."""
    from tests.helpers.sharp import make_pki

    pki = make_pki(tmp_path)
    sharp = {
        "prover": "sharp",
        "sharp_customer_id": "cust-1",
        "sharp_url": "https://sharp.example",
        "sharp_user_crt_file": pki.client_crt,
        "sharp_user_key_file": pki.client_key,
        "sharp_server_crt_file": pki.ca_crt,
        "sharp_rpc_node_url": "http://127.0.0.1:8545",
        "gps_verifier_contract_address": ADDRESS,
    }
    mock = {"prover": "mock", "mock_verifier_address": ADDRESS, "mock_verifier_private_key": ANVIL_KEY_1}
    keyless = {k: v for k, v in ETHEREUM.items() if k != "ethereum_private_key"}
    remote = {
        **keyless,
        "ethereum_signer_url": "https://signer.example:9000",
        "ethereum_signer_address": ADDRESS,
        "prover": "mock",
        "mock_verifier_address": ADDRESS,
        "mock_verifier_signer_url": "https://signer.example:9000",
        "mock_verifier_signer_address": "0x" + "22" * 20,
    }
    kms = {
        **keyless,
        "ethereum_kms_key_id": "alias/settlement",
        "prover": "mock",
        "mock_verifier_address": ADDRESS,
        "mock_verifier_kms_key_id": "alias/verifier",
    }
    return [
        (("--prover mock", "--settle-on-ethereum", "--ethereum-signer-url", "--mock-verifier-signer-url"), remote),
        (("--prover mock", "--settle-on-ethereum"), kms),
        (("--prover devnet",), BASE),
        (("--prover mock", "--settle-on-ethereum"), {**ETHEREUM, **mock}),
        (("--prover sharp", "--settle-on-ethereum"), {**ETHEREUM, **sharp}),
        (("--prover atlantic",), {**BASE, **ATLANTIC}),
        (
            ("--prover atlantic", "--layer l3", "--settle-on-starknet"),
            {**STARKNET, **ATLANTIC, "cairo_verifier_program_hash": "0x1234"},
        ),
        (
            ("--prover devnet", "--snos-runner command"),
            {**BASE, "snos_runner": "command", "snos_command": sys.executable},
        ),
        (
            ("--prover devnet", "--snos-runner http"),
            {**BASE, "snos_runner": "http", "snos_runner_url": "http://127.0.0.1:9000"},
        ),
        (
            ("--prover devnet", "--aggregator-runner command"),
            {**BASE, "aggregator_runner": "command", "aggregator_command": sys.executable},
        ),
        (
            ("--prover devnet", "--aggregator-runner http"),
            {**BASE, "aggregator_runner": "http", "aggregator_runner_url": "http://127.0.0.1:9001"},
        ),
        (("--prover devnet", "--admin-enabled"), {**BASE, "admin_enabled": True, "admin_token": "token"}),
        (("--prover devnet", "--aws-s3", "--aws-sqs"), {**BASE, "aws": True, "aws_s3": True, "aws_sqs": True}),
    ]


def is_valid(values: Mapping[str, Any]) -> bool:
    args = run_parser().parse_args([])
    for name, value in values.items():
        setattr(args, name, value)
    try:
        load_run_settings(args, {})
    except ConfigError:
        return False
    return True


def required_in(values: Mapping[str, Any]) -> set[str]:
    """The options of ``values`` without a default of their own whose absence validation refuses."""
    assert is_valid(values), f"scenario is not valid: {values}"
    by_name = {option.name: option for option in RUN_OPTIONS}
    candidates = [name for name in values if by_name[name].default in (None, False)]
    return {name for name in candidates if not is_valid({k: v for k, v in values.items() if k != name})}


def test_help_says_required_exactly_where_validation_requires(tmp_path: Path) -> None:
    unconditional = ("required", ANY_SETTLEMENT)
    derived: set[str] = set()
    for triggers, values in scenarios(tmp_path):
        required = required_in(values)
        derived |= required
        for name in required:
            note = REQUIREMENTS.get(name)
            flag = "--" + name.replace("_", "-")
            assert note, f"validation requires {flag} with {triggers or 'any setting'}: declare it (required=)"
            parts = note.split("; ")
            ok = any(part in unconditional for part in parts) or any(t in part for part in parts for t in triggers)
            assert ok, f"{flag} is required with {triggers}, but its help says {note!r}"
    claimed = set(REQUIREMENTS)
    assert claimed <= derived, f"help says required, validation does not require: {sorted(claimed - derived)}"
    assert {"madara_rpc_url", "prover", "settle_on_devnet"} <= required_in(BASE)


def test_required_options_say_so_once_in_their_help() -> None:
    shown = helps()
    for name, note in REQUIREMENTS.items():
        assert f"({note})" in shown[name]
        assert "(default:" not in shown[name], f"--{name} is required: it has no default to show"
        assert shown[name].count("required") == note.count("required"), f"--{name} says 'required' twice"
    assert "(required with --settle-on-ethereum)" in shown["ethereum_rpc_url"]
    assert "(required with --prover atlantic, unless --atlantic-mock-fact-hash true)" in shown["atlantic_rpc_node_url"]


# -- the rendered help ----------------------------------------------------------------------------


def rendered(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: int) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as exited:
        main(["run", "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_rendered_help_is_grouped_in_order_and_loses_no_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = rendered(capsys, monkeypatch, 200)
    assert text.startswith("usage: orchestrator run [-h] [OPTIONS]\n")
    positions = [text.index(f"\n{group.title}:\n") for group in GROUPS]
    assert positions == sorted(positions), "the groups appear in the order of the bases of Settings"
    for group in GROUPS:
        assert group.description in " ".join(text.split())
    section_of: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if re.fullmatch(r"\S.*:", line):
            section = line[:-1]
        elif match := re.match(r"  (--[a-z0-9-]+)", line):
            section_of[match[1]] = section
    for option in RUN_OPTIONS:
        assert option.flag in section_of, f"{option.flag} is missing from run --help"
        assert option.group is not None and section_of[option.flag] == option.group.title, option.flag
    assert "VALUE" not in text


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_rendered_help_wraps_between_words(
    columns: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = rendered(capsys, monkeypatch, columns)
    lines = text.splitlines()
    too_wide = [line for line in lines if len(line) > min(run_help.HELP_WIDTH, columns - 2)]
    assert all(len(line.split()) == 1 for line in too_wide), "only a word longer than a line may overflow"
    assert not [line for line in lines if line.endswith("-")], "a flag or word was broken at a hyphen"
    if columns >= run_help.HELP_WIDTH:
        assert not [line for line in lines if line.endswith("[env")], "[env VAR] was split"
        assert not [line for line in lines if line.endswith("(default:")], "(default: X) was split"
