"""``load_run_settings``: every setting checked in one pass, before anything is created; all problems in
one ``ConfigError``, one line each (a value that cannot be used is not also reported missing)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import Any

from madara_orchestrator.cli.settings.checks import (
    address_problem,
    backend_problems,
    batching_problems,
    number_problems,
    private_key_problem,
    required,
    url_problem,
)
from madara_orchestrator.cli.settings.formats import is_felt, parse_da_public_keys
from madara_orchestrator.cli.settings.loading import resolve_checked
from madara_orchestrator.cli.settings.model import RUN_NUMBER_RULES, RUN_OPTIONS, SECRETS, Settings, option_named
from madara_orchestrator.cli.settings.prover_checks import (
    DEVNET_PROVER_ON_ETHEREUM,
    aggregator_runner_problems,
    atlantic_problems,
    mock_problems,
    sharp_problems,
    snos_runner_problems,
)
from madara_orchestrator.cli.settings.proving import PROVERS
from madara_orchestrator.cli.settings.signer_checks import signer_problems
from madara_orchestrator.domain.batching import StarknetVersions
from madara_orchestrator.domain.errors import ConfigError, InvalidInput

WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9._~-]{16,}")
"""A webhook secret goes into a callback URL's path as it is."""


def load_run_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Every setting checked in one pass, before anything is created; all problems in one ``ConfigError``
    (one line each: a value that cannot be used is not also reported missing)."""
    values, problems, invalid = resolve_checked(args, RUN_OPTIONS, environ)
    problems += batching_problems(values)
    versions = StarknetVersions.parse(values["allow_starknet_versions"])
    problems += [f"--allow-starknet-versions: {p}" for p in versions.problems()]
    problems += _choice_problems(values)
    problems += _layer_problems(values)
    problems += _format_problems(values)
    problems += _service_problems(values)
    problems = [p for p in problems if p]
    problems += number_problems(values, RUN_NUMBER_RULES)
    problems += _api_and_backend_problems(values)
    problems = [p for p in problems if not _about_missing(p, invalid)]
    if problems:
        raise ConfigError(problems)
    return Settings(values, SECRETS)


def _choice_problems(values: Mapping[str, Any]) -> list[str]:
    """The choices every configuration makes: the sequencer, the prover, one settlement layer."""
    problems: list[str] = []
    if not values["madara_rpc_url"]:
        problems.append("--madara-rpc-url (MADARA_ORCHESTRATOR_MADARA_RPC_URL) is required")
    if not values["prover"]:
        problems.append(f"--prover (MADARA_ORCHESTRATOR_PROVER) is required: one of {', '.join(PROVERS)}")
    chosen = [flag for flag in ("settle_on_devnet", "settle_on_ethereum", "settle_on_starknet") if values[flag]]
    if len(chosen) != 1:
        problems.append(
            "exactly one settlement layer is required: --settle-on-ethereum, --settle-on-starknet or --settle-on-devnet"
            + (" (more than one given)" if len(chosen) > 1 else "")
        )
    return problems


def _layer_problems(values: Mapping[str, Any]) -> list[str]:
    """Settlement and DA per layer: an L2 settles on Ethereum (or the devnet ledger), an L3 on Starknet."""
    problems: list[str] = []
    l3 = values["layer"] == "l3"
    if l3 and values["settle_on_ethereum"]:
        problems.append("--layer l3 settles on Starknet: use --settle-on-starknet, not --settle-on-ethereum")
    if l3 and values["settle_on_devnet"]:
        problems.append("--layer l3 settles on Starknet: use --settle-on-starknet (the devnet ledger is L2 only)")
    if not l3 and values["settle_on_starknet"]:
        problems.append("--settle-on-starknet is for an L3: add --layer l3")
    if values["da_on_ethereum"] and values["da_on_starknet"]:
        problems.append("choose one of --da-on-ethereum and --da-on-starknet")
    if l3 and values["da_on_ethereum"]:
        problems.append("--layer l3 publishes no blobs on Ethereum: use --da-on-starknet (or neither)")
    if values["settle_on_starknet"]:
        problems += required(
            values,
            [
                "starknet_rpc_url",
                "starknet_private_key",
                "starknet_account_address",
                "starknet_cairo_core_contract_address",
            ],
            "with --settle-on-starknet",
        )
        problems.append(url_problem(values, "starknet_rpc_url") or "")
        for name in ("starknet_account_address", "starknet_cairo_core_contract_address"):
            text = values[name]
            if text is not None and not is_felt(text):
                problems.append(f"--{name.replace('_', '-')} must be a felt (0x and hex, below the Stark prime)")
        key = values["starknet_private_key"]
        if key is not None and not is_felt(key):
            problems.append("--starknet-private-key must be a felt (0x and hex, below the Stark prime)")
    return [p for p in problems if p]


def _format_problems(values: Mapping[str, Any]) -> list[str]:
    """Settlement on Ethereum's required options; URLs, L1 addresses and private keys well-formed."""
    problems: list[str] = []
    if values["settle_on_ethereum"]:
        problems += required(
            values,
            ["ethereum_rpc_url", "l1_core_contract_address"],
            "with --settle-on-ethereum",
        )
    for name in (
        "madara_rpc_url",
        "madara_feeder_gateway_url",
        "rpc_for_snos",
        "ethereum_rpc_url",
        "alert_webhook_url",
        "otel_collector_endpoint",
        "replay_bounds_rpc_url",
    ):
        problems.append(url_problem(values, name) or "")
    problems.append(address_problem(values, "l1_core_contract_address") or "")
    problems.append(
        address_problem(values, "starknet_operator_address", why=" (the original parses it as an L1 address)") or ""
    )
    for name in ("ethereum_private_key", "mock_verifier_private_key"):
        problems.append(private_key_problem(values, name) or "")
    return problems + signer_problems(values) + _posting_problems(values)


def _posting_problems(values: Mapping[str, Any]) -> list[str]:
    """The settlement deadline waits for L1 blob fees: Ethereum settlement only; the percentile is one."""
    problems: list[str] = []
    if values["settlement_deadline_seconds"] and not values["settle_on_ethereum"]:
        problems.append(
            "--settlement-deadline-seconds times blob transactions on Ethereum: use it with --settle-on-ethereum, "
            "or leave it out (0: settlements go at once)"
        )
    if values["settlement_fee_percentile"] > 100:
        problems.append("--settlement-fee-percentile must be from 0 to 100")
    return problems


def _service_problems(values: Mapping[str, Any]) -> list[str]:
    """The prover chosen and what it needs, the SNOS and aggregator runners, the DA keys, the mock Atlantic."""
    problems: list[str] = []
    prover = values["prover"]
    if prover == "atlantic":
        problems += atlantic_problems(values)
    elif prover == "sharp":
        problems += sharp_problems(values)
    elif prover == "mock":
        problems += mock_problems(values)
    elif prover == "devnet" and values["settle_on_ethereum"]:
        problems.append(DEVNET_PROVER_ON_ETHEREUM)
    elif prover == "devnet" and values["layer"] == "l3":
        problems.append(
            "--prover devnet is L2-only: an L3's proofs must be real Stone proofs verified on the L2; "
            "use --prover atlantic (--mock-atlantic-server for a local one)"
        )
    problems += snos_runner_problems(values)
    try:
        parse_da_public_keys(values["da_public_keys"])
    except InvalidInput as exc:
        problems.append(str(exc))
    problems += aggregator_runner_problems(values)
    if values["mock_atlantic_server"]:
        if prover != "atlantic":
            problems.append("--mock-atlantic-server needs --prover atlantic")
        elif values["atlantic_network"] not in (None, "testnet"):
            problems.append("--mock-atlantic-server is only allowed with --atlantic-network TESTNET")
    return problems


def _api_and_backend_problems(values: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if values["admin_enabled"] and not values["admin_token"]:
        problems.append(
            "--admin-enabled needs --admin-token (or MADARA_ORCHESTRATOR_ADMIN_TOKEN[_FILE]): "
            "admin routes are never served without a bearer token"
        )
    if values["atlantic_webhook_secret"] is not None and not WEBHOOK_SECRET.fullmatch(
        values["atlantic_webhook_secret"]
    ):
        problems.append("--atlantic-webhook-secret must be 16 or more URL-safe characters (A-Z a-z 0-9 - _ . ~)")
    if "{}" not in (values["queue_identifier"] or ""):
        problems.append(f"--queue-identifier must contain '{{}}', got {values['queue_identifier']!r}")
    problems += backend_problems(values)
    if values["outbox_alert_seconds"] is not None and not values["aws_sqs"]:
        problems.append(
            "--outbox-alert-seconds needs --aws-sqs: only queues on SQS have an outbox (PostgreSQL and SQLite "
            "queues write the message in the job's own transaction); remove the setting or use --aws-sqs"
        )
    if values["max_block_to_process"] is not None and values["max_block_to_process"] < values["min_block_to_process"]:
        problems.append("--max-block-to-process is below --min-block-to-process")
    return problems


def _about_missing(problem: str, invalid: set[str]) -> bool:
    """Whether ``problem`` says an option is missing when its value was given but refused (already said)."""
    return " is required" in problem and any(problem.startswith(option_named(name).flag + " ") for name in invalid)
