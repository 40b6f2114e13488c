"""How ``orchestrator run --help`` presents the options of ``RUN_OPTIONS`` (cli/settings.py): data keyed by
option name, kept apart from the option table.

- ``GROUPS``: the help's sections, in order, each with a one-line description and its options. Every option
  of ``RUN_OPTIONS`` is in exactly one (a unit test checks it: a new option needs a line here).
- ``metavar(option)``: what a flag's value looks like (URL, ADDRESS, KEY, FILE, SECONDS, N, ...), from the
  option's kind, choices and name, with ``METAVARS`` where that rule is wrong.
- ``REQUIREMENTS``: when an option without a default must be given, as the validation in cli/settings.py
  enforces it (a unit test derives the required options from ``load_run_settings`` and compares).
- ``UNSET``: what an option without a default means when it is not given.
- ``HELP``: the help shown instead of the table's where the table's text states a requirement in its own
  words (the requirement is then said once, by ``REQUIREMENTS``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from madara_orchestrator.cli.settings import Option

HELP_WIDTH = 100
"""The widest help lines get, however wide the terminal."""


@dataclass(frozen=True, slots=True)
class Group:
    title: str
    description: str
    options: tuple[str, ...]


GROUPS: tuple[Group, ...] = (
    Group(
        "chain",
        "The appchain's sequencer (Madara), its layer and the blocks to carry.",
        (
            "layer",
            "da_public_keys",
            "madara_rpc_url",
            "madara_feeder_gateway_url",
            "min_block_to_process",
            "max_block_to_process",
            "chain_poll_interval_seconds",
        ),
    ),
    Group(
        "prover",
        "Who proves the SNOS batches and registers their facts (--prover picks one; see the next two groups).",
        (
            "prover",
            "prover_layout_name",
            "mock_verifier_address",
            "mock_verifier_private_key",
            "store_audit_artifacts",
        ),
    ),
    Group(
        "prover: Atlantic",
        "With --prover atlantic: Herodotus' Atlantic proving service.",
        (
            "atlantic_api_key",
            "atlantic_service_url",
            "atlantic_network",
            "atlantic_prover_type",
            "atlantic_settlement_layer",
            "atlantic_mock_fact_hash",
            "atlantic_rpc_node_url",
            "atlantic_verifier_contract_address",
            "cairo_verifier_program_hash",
            "atlantic_verifier_cairo_vm",
            "atlantic_verifier_result",
            "atlantic_sharp_prover",
            "atlantic_artifacts_base_url",
            "atlantic_webhook_secret",
            "mock_atlantic_server",
        ),
    ),
    Group(
        "prover: SHARP",
        "With --prover sharp: StarkWare's SHARP, over mutual TLS (L2 only).",
        (
            "sharp_customer_id",
            "sharp_url",
            "sharp_user_crt_file",
            "sharp_user_key_file",
            "sharp_server_crt_file",
            "sharp_rpc_node_url",
            "gps_verifier_contract_address",
            "sharp_settlement_layer",
        ),
    ),
    Group(
        "SNOS",
        "How the Starknet OS is run on each SNOS batch (docs/snos-runner.md).",
        (
            "snos_runner",
            "snos_command",
            "snos_runner_url",
            "snos_timeout_seconds",
            "snos_work_dir",
            "rpc_for_snos",
            "snos_layout_name",
            "snos_full_output",
        ),
    ),
    Group(
        "aggregator",
        "With --prover sharp, mock or devnet: how the aggregator runs over each aggregator batch's SNOS outputs "
        "(docs/aggregator-runner.md).",
        ("aggregator_runner", "aggregator_command", "aggregator_runner_url", "aggregator_timeout_seconds"),
    ),
    Group(
        "batching",
        "How blocks are grouped: SNOS batches (one SNOS run each) inside aggregator batches (one settlement each).",
        (
            "max_batch_time_seconds",
            "max_batch_size",
            "max_blocks_per_snos_batch",
            "fixed_blocks_per_snos_batch",
            "max_snos_batches_per_aggregator_batch",
            "max_num_blobs",
            "blob_size_buffer",
            "max_aggregator_input_size",
            "default_empty_block_proving_gas",
            "bouncer_weights_limit_file",
            "batching_worker_lock_duration",
            "allow_starknet_versions",
            "replay_bounds_rpc_url",
        ),
    ),
    Group(
        "settlement",
        "Where state updates settle: exactly one of --settle-on-ethereum (L2), --settle-on-starknet (L3) "
        "or --settle-on-devnet.",
        ("settle_on_ethereum", "settle_on_starknet", "settle_on_devnet", "devnet_settlement_path"),
    ),
    Group(
        "settlement on Ethereum",
        "With --settle-on-ethereum: the Starknet core contract on L1, blob transactions and their fees.",
        (
            "ethereum_rpc_url",
            "ethereum_private_key",
            "l1_core_contract_address",
            "starknet_operator_address",
            "da_on_ethereum",
            "ethereum_finality_retry_wait_in_secs",
            "ethereum_tx_confirmation_timeout_secs",
            "ethereum_max_fee_bumps",
            "ethereum_l2_state_update_max_fee_wei",
            "ethereum_confirmations",
            "settlement_fee_wait_seconds",
            "disable_peerdas",
            "ethereum_da_rpc_url",
        ),
    ),
    Group(
        "settlement on Starknet",
        "With --settle-on-starknet (--layer l3): the appchain's core contract (Piltover) on Starknet.",
        (
            "starknet_rpc_url",
            "starknet_private_key",
            "starknet_account_address",
            "starknet_cairo_core_contract_address",
            "da_on_starknet",
            "starknet_finality_retry_wait_in_secs",
            "starknet_tx_confirmation_timeout_secs",
            "starknet_max_fee_fri",
            "starknet_da_rpc_url",
        ),
    ),
    Group(
        "jobs",
        "Concurrency, leases, retries and the timers that drive and heal the job pipeline.",
        (
            "max_concurrent_snos_jobs",
            "max_concurrent_proving_jobs",
            "max_concurrent_aggregator_jobs",
            "snos_job_timeout_seconds",
            "proving_job_timeout_seconds",
            "state_transition_timeout_seconds",
            "aggregator_job_timeout_seconds",
            "verification_poll_seconds",
            "retry_base_delay_seconds",
            "snos_job_buffer_size",
            "aggregator_job_buffer_size",
            "max_batch_processing_size",
            "max_priority_queue_size",
            "interval_seconds",
            "heal_interval_seconds",
            "heal_stale_after_seconds",
            "halt_on_failure",
            "graceful_shutdown_timeout",
        ),
    ),
    Group(
        "backends",
        "Database, object store and queues: embedded (SQLite and files) by default, PostgreSQL and/or AWS.",
        (
            "data_dir",
            "sqlite_path",
            "storage_dir",
            "postgres_url",
            "instance_id",
            "aws",
            "aws_s3",
            "aws_sqs",
            "aws_sns",
            "aws_prefix",
            "bucket_identifier",
            "queue_identifier",
            "topic_identifier",
            "storage_expiration_days",
        ),
    ),
    Group(
        "API and admin",
        "The HTTP API (health, jobs, metrics), its admin routes and alerts.",
        ("host", "port", "admin_enabled", "admin_token", "alert_webhook_url"),
    ),
    Group(
        "telemetry",
        "The log's progress line, and OpenTelemetry export of metrics and job traces (SPEC §14).",
        ("progress_interval_seconds", "otel_collector_endpoint", "otel_service_name", "otel_export_interval_seconds"),
    ),
)

GROUP_OF: dict[str, Group] = {name: group for group in GROUPS for name in group.options}

ANY_SETTLEMENT = "exactly one --settle-on-* is required"

REQUIREMENTS: dict[str, str] = {
    "madara_rpc_url": "required",
    "prover": "required",
    "settle_on_ethereum": f"{ANY_SETTLEMENT}; this one with --prover mock",
    "settle_on_starknet": f"{ANY_SETTLEMENT}; this one with --layer l3",
    "settle_on_devnet": ANY_SETTLEMENT,
    "mock_verifier_address": "required with --prover mock",
    "mock_verifier_private_key": "required with --prover mock",
    "atlantic_api_key": "required with --prover atlantic",
    "atlantic_service_url": "required with --prover atlantic, unless --mock-atlantic-server",
    "atlantic_network": "required with --prover atlantic",
    "atlantic_prover_type": "required with --prover atlantic",
    "atlantic_settlement_layer": "required with --prover atlantic",
    "atlantic_mock_fact_hash": "required with --prover atlantic",
    "atlantic_rpc_node_url": "required with --prover atlantic, unless --atlantic-mock-fact-hash true",
    "atlantic_verifier_contract_address": "required with --prover atlantic, unless --atlantic-mock-fact-hash true",
    "cairo_verifier_program_hash": "required with --prover atlantic on --layer l3",
    "sharp_customer_id": "required with --prover sharp",
    "sharp_url": "required with --prover sharp",
    "sharp_user_crt_file": "required with --prover sharp",
    "sharp_user_key_file": "required with --prover sharp",
    "sharp_server_crt_file": "required with --prover sharp",
    "sharp_rpc_node_url": "required with --prover sharp",
    "gps_verifier_contract_address": "required with --prover sharp",
    "snos_runner": "required",
    "snos_command": "required with --snos-runner command",
    "snos_runner_url": "required with --snos-runner http",
    "aggregator_runner": "required with --prover sharp, --prover mock or --prover devnet",
    "aggregator_command": "required with --aggregator-runner command",
    "aggregator_runner_url": "required with --aggregator-runner http",
    "ethereum_rpc_url": "required with --settle-on-ethereum",
    "ethereum_private_key": "required with --settle-on-ethereum",
    "l1_core_contract_address": "required with --settle-on-ethereum",
    "starknet_rpc_url": "required with --settle-on-starknet",
    "starknet_private_key": "required with --settle-on-starknet",
    "starknet_account_address": "required with --settle-on-starknet",
    "starknet_cairo_core_contract_address": "required with --settle-on-starknet",
    "aws": "required with --aws-s3, --aws-sqs or --aws-sns",
    "admin_token": "required with --admin-enabled",
}
"""When an option must be given, as validation (cli/settings.py) enforces it; shown at the end of its help."""

UNSET: dict[str, str] = {
    "postgres_url": "the embedded SQLite database",
    "aws_prefix": "no prefix",
    "devnet_settlement_path": "<data-dir>/devnet-settlement.db",
    "starknet_max_fee_fri": "no cap",
    "verification_poll_seconds": "each job type's own delays",
    "max_block_to_process": "no last block",
    "fixed_blocks_per_snos_batch": "the other SNOS batch limits decide",
    "alert_webhook_url": "no webhook",
    "bouncer_weights_limit_file": "the limits of SPEC §5.3",
    "allow_starknet_versions": "only the known 0.13.2-0.14.2",
    "replay_bounds_rpc_url": "no check",
}
"""What an option without a default value means when it is not given (and its help does not say), shown as
its default."""

METAVARS: dict[str, str] = {
    "queue_identifier": "TEMPLATE|ARN",
    "bucket_identifier": "NAME|ARN",
    "topic_identifier": "NAME|ARN",
    "aws_prefix": "PREFIX",
    "snos_command": "COMMAND",
    "aggregator_command": "COMMAND",
    "atlantic_mock_fact_hash": "{true,false}",
    "atlantic_prover_type": "TYPE",
    "atlantic_verifier_result": "STEP",
    "atlantic_network": "{mainnet,testnet}",
    "rpc_for_snos": "URL",
    "otel_service_name": "NAME",
    "host": "HOST",
    "port": "PORT",
    "ethereum_confirmations": "BLOCKS",
    "default_empty_block_proving_gas": "GAS",
    "cairo_verifier_program_hash": "FELT",
    "allow_starknet_versions": "VERSIONS",
    "da_public_keys": "FELT[,FELT...]",
}
"""Where the rule of ``metavar`` is wrong or too vague."""

_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_url", "URL"),
    ("_endpoint", "URL"),
    ("_address", "ADDRESS"),
    ("_private_key", "KEY"),
    ("_api_key", "KEY"),
    ("_secret", "SECRET"),
    ("_token", "TOKEN"),
    ("_dir", "DIR"),
    ("_file", "FILE"),
    ("_path", "FILE"),
    ("_id", "ID"),
    ("_layout_name", "LAYOUT"),
    ("_days", "DAYS"),
    ("_wei", "WEI"),
    ("_fri", "FRI"),
    ("_to_process", "BLOCK"),
)
_TIME_WORDS = ("seconds", "secs", "timeout", "duration", "interval")
_MAX_CHOICES_METAVAR = 4
"""More choices than this are listed in the help instead (the layouts)."""


def metavar(option: Option) -> str | None:
    """What the flag's value looks like; None for a switch (it takes no value)."""
    if option.kind is bool:
        return None
    if option.name in METAVARS:
        return METAVARS[option.name]
    if option.choices and len(option.choices) <= _MAX_CHOICES_METAVAR:
        return "{" + ",".join(option.choices) + "}"
    for suffix, shown in _SUFFIXES:
        if option.name.endswith(suffix):
            return shown
    if option.kind in (int, float) and any(word in option.name.split("_") for word in _TIME_WORDS):
        return "SECONDS"
    if option.kind is int:
        return "N"
    if option.kind is float:
        return "NUMBER"
    return "TEXT"


def shows_default(option: Option) -> bool:
    """A default is shown unless there is none, the option is a secret, or it is a switch (off unless given)."""
    return option.default is not None and not option.secret and option.kind is not bool


def _shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def help_text(option: Option, env_prefix: str) -> str:
    """The option's help: what it is, when it is required or its default, its variable."""
    parts = [option.help]
    if option.choices and not (metavar(option) or "").startswith("{"):
        parts.append(f"one of: {', '.join(option.choices)}")
    text = "; ".join(p for p in parts if p)
    if option.name in REQUIREMENTS:
        text += f" ({REQUIREMENTS[option.name]})"
    elif shows_default(option):
        text += f" (default: {_shown(option.default)})"
    elif option.name in UNSET:
        text += f" (default: {UNSET[option.name]})"
    if option.env:
        file_form = "[_FILE]" if option.secret else ""
        text += f" [env {env_prefix}{option.env}{file_form}]"
    return text.replace("%", "%%")


_GLUED = re.compile(r"(\[env|\(default:) (\S+)")
_GLUE = "\x00"
"""Joins ``[env`` to its variable and ``(default:`` to its value while a help text is wrapped (when the two
fit on a line)."""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, at most ``HELP_WIDTH`` wide, with room for the longer flags before their help when the
    terminal is wide enough; lines break between words only, never inside a flag (``--settle-on-|starknet``)."""

    def __init__(self, prog: str) -> None:
        width = min(HELP_WIDTH, shutil.get_terminal_size().columns - 2)
        super().__init__(prog, max_help_position=32 if width >= HELP_WIDTH else 24, width=width)

    def _split_lines(self, text: str, width: int) -> list[str]:
        def glue(match: re.Match[str]) -> str:
            joined = f"{match[1]}{_GLUE}{match[2]}"
            return joined if len(joined) <= width else match[0]

        text = _GLUED.sub(glue, " ".join(text.split()))
        lines = textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)
        return [line.replace(_GLUE, " ") for line in lines]

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = " ".join(text.split())
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


RUN_USAGE = "%(prog)s [-h] [OPTIONS]"
RUN_DESCRIPTION = (
    "Run the orchestrator: queue consumers, triggers and the HTTP API. Every option can also be set by its "
    "MADARA_ORCHESTRATOR_* variable (shown in [env ...]) or a .env file; a flag wins over its variable, and a "
    "secret's <VAR>_FILE names a file holding it. Switches take no value (in a variable: true or false) and are "
    "off unless given. Required: --madara-rpc-url, --prover, --snos-runner and one --settle-on-*; what else a "
    "choice requires is said at each option."
)
