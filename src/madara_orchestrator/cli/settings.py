"""Settings for ``orchestrator run``: one table of options, each with its long flag and its
``MADARA_ORCHESTRATOR_*`` variable (SPEC §16), parsed once into a frozen object.

Precedence: flag, then ``<VAR>_FILE`` (secrets: the file's trimmed content), then ``<VAR>``, then the
default. Every problem is collected, so a bad configuration is reported in one message. Secrets are
never printed: ``Settings.describe()`` masks them.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from madara_orchestrator.aggregator.command import command_problem as aggregator_command_problem
from madara_orchestrator.cli import run_help
from madara_orchestrator.domain.batches import DEFAULT_BOUNCER_WEIGHT_LIMITS, BouncerWeights
from madara_orchestrator.domain.batching import BatchLimits, StarknetVersions
from madara_orchestrator.domain.errors import ConfigError, InvalidInput
from madara_orchestrator.domain.redaction import SecretMask, cut_urls
from madara_orchestrator.provers.atlantic import DEFAULT_ARTIFACTS_BASE_URL, AtlanticQueryStep
from madara_orchestrator.provers.sharp import build_ssl_context
from madara_orchestrator.snos.command import command_problem
from madara_orchestrator.starknet.blob import MAX_BLOBS_PER_TXN as MAX_BLOBS_PER_TX
from madara_orchestrator.starknet.felt import STARKNET_PRIME

ENV_PREFIX = "MADARA_ORCHESTRATOR_"
PROVERS = ("atlantic", "sharp", "mock", "devnet")
SNOS_RUNNERS = ("command", "http", "devnet")
AGGREGATOR_RUNNERS = ("command", "http", "devnet")
SETTLEMENT_LAYERS = ("ethereum", "starknet")
LAYOUTS = (
    "plain",
    "small",
    "dex",
    "recursive",
    "starknet",
    "starknet_with_keccak",
    "recursive_large_output",
    "recursive_with_poseidon",
    "all_solidity",
    "all_cairo",
    "dynamic",
)
"""Cairo layouts ``--snos-layout-name`` and ``--prover-layout-name`` accept (the original's ``LayoutName``)."""
MOCK_ATLANTIC_PORT = 4001
"""Where ``--mock-atlantic-server`` listens, as in the original."""
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9._~-]{16,}")
"""A webhook secret goes into a callback URL's path as it is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Option:
    name: str
    env: str | None
    kind: type = str
    default: Any = None
    help: str = ""
    secret: bool = False
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _o(name: str, env: str | None, kind: type = str, default: Any = None, help: str = "", **kw: Any) -> Option:
    return Option(name=name, env=env, kind=kind, default=default, help=help, **kw)


RUN_OPTIONS: tuple[Option, ...] = (
    # where things live (embedded default)
    _o("data_dir", "DATA_DIR", str, ".orchestrator-data", "directory of the embedded database and object store"),
    _o("sqlite_path", "SQLITE_PATH", str, None, "SQLite database file (default: <data-dir>/orchestrator.db)"),
    _o("storage_dir", "STORAGE_DIR", str, None, "object store directory (default: <data-dir>/objects)"),
    _o(
        "postgres_url",
        "POSTGRES_URL",
        str,
        None,
        "PostgreSQL for jobs, batches, locks, settlement transactions and (without --aws-sqs) the queues, "
        "shared by every instance: postgresql://user:password@host:port/db (MongoDB is not supported)",
        secret=True,
    ),
    _o(
        "queue_identifier",
        "AWS_SQS_QUEUE_IDENTIFIER",
        str,
        "mo_{}_queue",
        "queue name template ('{}' = the queue's token; gets '<prefix>_' on SQS) or SQS ARN",
    ),
    _o("aws_prefix", "AWS_PREFIX", str, None, "prefix of resource names"),
    # AWS (SPEC §16.1-16.2): credentials, region and endpoint from the standard AWS_* variables and profiles
    _o("aws", None, bool, False, "use AWS for the backends chosen with --aws-s3, --aws-sqs, --aws-sns"),
    _o("aws_s3", None, bool, False, "object store on S3 (needs --aws)"),
    _o("aws_sqs", None, bool, False, "queues on SQS (needs --aws)"),
    _o("aws_sns", None, bool, False, "alerts to SNS (needs --aws)"),
    _o("bucket_identifier", "AWS_S3_BUCKET_IDENTIFIER", str, "mo-bucket", "S3 bucket: name (gets '<prefix>-') or ARN"),
    _o("topic_identifier", "AWS_SNS_TOPIC_IDENTIFIER", str, "alerts", "SNS topic: name (gets '<prefix>_') or ARN"),
    _o(
        "storage_expiration_days",
        "STORAGE_EXPIRATION_DAYS",
        int,
        14,
        "days after which the artifacts of settled batches expire (the S3 lifecycle rule setup makes)",
    ),
    _o(
        "layer",
        "LAYER",
        str,
        "l2",
        "l2 (settles on Ethereum or the devnet ledger) or l3 (settles on Starknet: --settle-on-starknet)",
        choices=("l2", "l3"),
    ),
    _o(
        "da_public_keys",
        "DA_PUBLIC_KEYS",
        str,
        None,
        "DA committee public keys, comma-separated felts (0x hex): the OS encrypts the state diff for them, "
        "and they enter the OS config hash (Atlantic buckets' public_keys; without it: no encryption)",
    ),
    # the sequencer
    _o("madara_rpc_url", "MADARA_RPC_URL", str, None, "Starknet JSON-RPC of the sequencer"),
    _o(
        "madara_feeder_gateway_url",
        "MADARA_FEEDER_GATEWAY_URL",
        str,
        None,
        "feeder gateway, for bouncer weights (default: the RPC URL, its query kept as the request's query; "
        "a Madara node serves it on its --gateway-port, 8080 by default)",
    ),
    _o("rpc_for_snos", "RPC_FOR_SNOS", str, None, "RPC used by SNOS (default: the sequencer RPC)"),
    # outside services
    _o(
        "snos_runner",
        "SNOS_RUNNER",
        str,
        None,
        "how SNOS runs: command (--snos-command, once per SNOS batch), http (a runner service at "
        "--snos-runner-url) or devnet (a stand-in: the OS output built from the sequencer's state updates; no PIE "
        "a prover takes); see docs/snos-runner.md",
        choices=SNOS_RUNNERS,
    ),
    _o(
        "snos_command",
        "SNOS_COMMAND",
        str,
        None,
        "the program (a path or a name on PATH, optionally with its own arguments) that runs SNOS on one "
        "batch and writes cairo_pie.zip and os_output.json",
    ),
    _o(
        "snos_runner_url",
        "SNOS_RUNNER_URL",
        str,
        None,
        "base URL of the SNOS runner service (POST /run, GET /health)",
        secret=True,
    ),
    _o(
        "snos_timeout_seconds",
        "SNOS_TIMEOUT_SECONDS",
        float,
        3600.0,
        "with --snos-runner command|http: longest one SNOS run may take; then the command is killed with its "
        "process group (or the request abandoned) and the job retried",
    ),
    _o(
        "snos_work_dir",
        "SNOS_WORK_DIR",
        str,
        None,
        "with --snos-runner command: where each run gets its output directory (default: <data-dir>/snos)",
    ),
    _o(
        "aggregator_runner",
        "AGGREGATOR_RUNNER",
        str,
        None,
        "how the aggregator runs over each aggregator batch's SNOS outputs: command (--aggregator-command), http "
        "(a runner service at --aggregator-runner-url) or devnet (a stand-in whose PIE, program hash and messages "
        "no prover or core contract accepts); see docs/aggregator-runner.md",
        choices=AGGREGATOR_RUNNERS,
    ),
    _o(
        "aggregator_command",
        "AGGREGATOR_COMMAND",
        str,
        None,
        "the program (a path or a name on PATH, optionally with its own arguments) that runs the aggregator on "
        "one batch and writes cairo_pie.zip, program_output.json and da_segment.json",
    ),
    _o(
        "aggregator_runner_url",
        "AGGREGATOR_RUNNER_URL",
        str,
        None,
        "base URL of the aggregator runner service (POST /aggregate, GET /health)",
        secret=True,
    ),
    _o(
        "aggregator_timeout_seconds",
        "AGGREGATOR_TIMEOUT_SECONDS",
        float,
        3600.0,
        "with --aggregator-runner command|http: longest one aggregator run may take; then it is killed with its "
        "process group (or the request abandoned) and the job retried",
    ),
    _o(
        "prover",
        "PROVER",
        str,
        None,
        "prover backend: atlantic, sharp, mock (no proofs; facts registered on a mock verifier) or devnet (no "
        "proofs, no L1 registration: for the devnet settlement ledger)",
        choices=PROVERS,
    ),
    _o(
        "mock_verifier_address",
        "MOCK_VERIFIER_ADDRESS",
        str,
        None,
        "fact registry the mock prover registers facts in (without it every settlement reverts on L1)",
    ),
    _o(
        "mock_verifier_private_key",
        "MOCK_VERIFIER_PRIVATE_KEY",
        str,
        None,
        "key that registers facts with --prover mock (never the settlement key: they would compete for nonces; "
        "the original signs with the settlement key)",
        secret=True,
    ),
    # Atlantic (SPEC §7.3, §16.2)
    _o("atlantic_api_key", "ATLANTIC_API_KEY", str, None, "Atlantic API key", secret=True),
    _o(
        "atlantic_service_url",
        "ATLANTIC_SERVICE_URL",
        str,
        None,
        "Atlantic API base URL (with --mock-atlantic-server: the in-process mock)",
    ),
    _o(
        "atlantic_rpc_node_url",
        "ATLANTIC_RPC_NODE_URL",
        str,
        None,
        "L1 RPC of the fact checker (the original always requires it)",
    ),
    _o(
        "atlantic_mock_fact_hash",
        "ATLANTIC_MOCK_FACT_HASH",
        str,
        None,
        "true: facts and proofs are mocked by Atlantic and not checked on L1; false: checked",
    ),
    _o("atlantic_prover_type", "ATLANTIC_PROVER_TYPE", str, None, "Atlantic's prover type (otherwise unused)"),
    _o(
        "atlantic_settlement_layer",
        "ATLANTIC_SETTLEMENT_LAYER",
        str,
        None,
        "where Atlantic's facts are checked: ethereum or starknet",
        choices=SETTLEMENT_LAYERS,
    ),
    _o(
        "atlantic_verifier_contract_address",
        "ATLANTIC_VERIFIER_CONTRACT_ADDRESS",
        str,
        None,
        "GPS verifier the facts are checked on",
    ),
    _o(
        "cairo_verifier_program_hash",
        "CAIRO_V0_VERIFIER_PROGRAM_HASH",
        str,
        None,
        "program hash of the Cairo verifier for L2 proof verification",
    ),
    _o(
        "atlantic_verifier_cairo_vm",
        "ATLANTIC_CAIRO_VM",
        str,
        "rust",
        "Cairo VM Atlantic runs the PIE with: rust or python",
        choices=("rust", "python"),
    ),
    _o(
        "atlantic_verifier_result",
        "ATLANTIC_RESULT",
        str,
        "proof-generation",
        "what Atlantic produces for a child query (a query step, e.g. proof-generation, proof-verification)",
    ),
    _o(
        "atlantic_network",
        "ATLANTIC_NETWORK",
        str,
        None,
        "MAINNET or TESTNET (any case)",
        choices=("mainnet", "testnet"),
    ),
    _o(
        "atlantic_sharp_prover",
        "ATLANTIC_SHARP_PROVER",
        str,
        "stone",
        "prover Atlantic uses: stone or stwo",
        choices=("stone", "stwo"),
    ),
    _o(
        "atlantic_artifacts_base_url",
        "ATLANTIC_ARTIFACTS_BASE_URL",
        str,
        DEFAULT_ARTIFACTS_BASE_URL,
        "where Atlantic's artifacts (PIEs, DA blobs, proofs) are downloaded from",
    ),
    _o(
        "mock_atlantic_server",
        "MOCK_ATLANTIC_SERVER",
        bool,
        False,
        f"start a mock Atlantic server in this process on 127.0.0.1:{MOCK_ATLANTIC_PORT} and use it (only with "
        "--prover atlantic --atlantic-network TESTNET; for local development)",
    ),
    # SHARP (SPEC §7.2, §16.2)
    _o("sharp_customer_id", "SHARP_CUSTOMER_ID", str, None, "SHARP customer id"),
    _o("sharp_url", "SHARP_URL", str, None, "SHARP API base URL, https"),
    _o(
        "sharp_user_crt_file",
        "SHARP_USER_CRT_FILE",
        str,
        None,
        "PEM file of the client certificate for mutual TLS",
    ),
    _o(
        "sharp_user_key_file",
        "SHARP_USER_KEY_FILE",
        str,
        None,
        "PEM file of the client private key (PKCS#8) for mutual TLS",
    ),
    _o(
        "sharp_server_crt_file",
        "SHARP_SERVER_CRT_FILE",
        str,
        None,
        "PEM file of the server certificate, trusted as a root",
    ),
    _o(
        "sharp_rpc_node_url",
        "SHARP_RPC_NODE_URL",
        str,
        None,
        "L1 RPC where the GPS verifier is asked whether the aggregator fact is valid",
    ),
    _o(
        "gps_verifier_contract_address",
        "GPS_VERIFIER_CONTRACT_ADDRESS",
        str,
        None,
        "GPS verifier (fact registry) on L1",
    ),
    _o(
        "sharp_settlement_layer",
        "SHARP_SETTLEMENT_LAYER",
        str,
        "ethereum",
        "ethereum (facts checked on the GPS verifier) or starknet (not checked)",
        choices=SETTLEMENT_LAYERS,
    ),
    # layouts (SPEC §16.2)
    _o("snos_layout_name", "SNOS_LAYOUT_NAME", str, "all_cairo", "Cairo layout SNOS runs with", choices=LAYOUTS),
    _o(
        "prover_layout_name",
        "PROVER_LAYOUT_NAME",
        str,
        "dynamic",
        "Cairo layout the prover proves with (sent to Atlantic when it settles on Starknet)",
        choices=LAYOUTS,
    ),
    _o("settle_on_devnet", "SETTLE_ON_DEVNET", bool, False, "settle on the devnet settlement ledger"),
    _o("devnet_settlement_path", "DEVNET_SETTLEMENT_PATH", str, None, "devnet settlement ledger file"),
    _o("settle_on_ethereum", "SETTLE_ON_ETHEREUM", bool, False, "settle on Ethereum with blob transactions"),
    _o("ethereum_rpc_url", "ETHEREUM_SETTLEMENT_RPC_URL", str, None, "Ethereum JSON-RPC", secret=True),
    _o("ethereum_private_key", "ETHEREUM_PRIVATE_KEY", str, None, "operator key", secret=True),
    _o("l1_core_contract_address", "L1_CORE_CONTRACT_ADDRESS", str, None, "Starknet core contract on L1"),
    _o(
        "starknet_operator_address",
        "STARKNET_OPERATOR_ADDRESS",
        str,
        None,
        "operator address (0x...); accepted like the original's, unused: settlements are sent from the "
        "account of --ethereum-private-key",
    ),
    _o(
        "ethereum_finality_retry_wait_in_secs",
        "ETHEREUM_FINALITY_RETRY_WAIT_IN_SECS",
        float,
        6.0,
        "receipt polling (the original's 60 s adds up to a minute to every settlement, and settlements go "
        "one at a time; 6 s is half an L1 slot)",
    ),
    _o(
        "ethereum_tx_confirmation_timeout_secs",
        "ETHEREUM_TX_CONFIRMATION_TIMEOUT_SECS",
        float,
        300.0,
        "confirmation window of one fee attempt",
    ),
    _o("ethereum_max_fee_bumps", "ETHEREUM_MAX_FEE_BUMPS", int, 2, "replacements per settlement"),
    _o(
        "ethereum_l2_state_update_max_fee_wei",
        "ETHEREUM_L2_STATE_UPDATE_MAX_FEE_WEI",
        int,
        10**16,
        "hard cap on a settlement's fee liability",
    ),
    _o("ethereum_confirmations", "ETHEREUM_CONFIRMATIONS", int, 3, "blocks on top of a settlement tx"),
    _o("disable_peerdas", "ETHEREUM_DISABLE_PEERDAS", bool, False, "EIP-4844 blob proofs, not EIP-7594 cells"),
    _o("settlement_fee_wait_seconds", "SETTLEMENT_FEE_WAIT_SECONDS", float, 60.0, "retry delay above the fee cap"),
    _o("da_on_ethereum", "DA_ON_ETHEREUM", bool, False, "blobs travel with the Ethereum settlement tx"),
    _o("ethereum_da_rpc_url", "ETHEREUM_DA_RPC_URL", str, None, "accepted like the original's (unused)", secret=True),
    # L3: settle on Starknet (SPEC §8.3)
    _o(
        "settle_on_starknet",
        "SETTLE_ON_STARKNET",
        bool,
        False,
        "settle on Starknet: one update_state invoke per SNOS batch",
    ),
    _o("starknet_rpc_url", "STARKNET_SETTLEMENT_RPC_URL", str, None, "Starknet JSON-RPC to settle on", secret=True),
    _o("starknet_private_key", "STARKNET_PRIVATE_KEY", str, None, "key of the settling account", secret=True),
    _o("starknet_account_address", "STARKNET_ACCOUNT_ADDRESS", str, None, "the settling account (single-owner)"),
    _o(
        "starknet_cairo_core_contract_address",
        "STARKNET_CAIRO_CORE_CONTRACT_ADDRESS",
        str,
        None,
        "the appchain's core contract on Starknet (Piltover)",
    ),
    _o(
        "starknet_finality_retry_wait_in_secs",
        "STARKNET_FINALITY_RETRY_WAIT_IN_SECS",
        float,
        6.0,
        "receipt polling while a settlement waits to be accepted on L2",
    ),
    _o(
        "starknet_tx_confirmation_timeout_secs",
        "STARKNET_TX_CONFIRMATION_TIMEOUT_SECS",
        float,
        300.0,
        "how long one settlement invoke may take to be accepted before the job retries (and resumes it)",
    ),
    _o(
        "starknet_max_fee_fri",
        "STARKNET_MAX_FEE_FRI",
        int,
        None,
        "hard cap on a settlement invoke's fee (in FRI); above it nothing is signed",
    ),
    _o("da_on_starknet", "DA_ON_STARKNET", bool, False, "DA for an L3: the blob data is kept in object storage"),
    _o("starknet_da_rpc_url", "STARKNET_DA_RPC_URL", str, None, "accepted like the original's (unused)", secret=True),
    # engine
    _o("max_concurrent_snos_jobs", "MAX_CONCURRENT_SNOS_JOBS", int, 5, "SnosRun consumer concurrency"),
    _o("max_concurrent_proving_jobs", "MAX_CONCURRENT_PROVING_JOBS", int, 10, "ProofCreation concurrency"),
    _o("max_concurrent_aggregator_jobs", "MAX_CONCURRENT_AGGREGATOR_JOBS", int, 10, "Aggregator concurrency"),
    _o("snos_job_timeout_seconds", "SNOS_JOB_TIMEOUT_SECONDS", float, 60.0, "SnosRun processing lease"),
    _o("proving_job_timeout_seconds", "PROVING_JOB_TIMEOUT_SECONDS", float, 60.0, "ProofCreation lease"),
    _o("state_transition_timeout_seconds", "STATE_TRANSITION_TIMEOUT_SECONDS", float, 60.0, "StateTransition lease"),
    _o("aggregator_job_timeout_seconds", "AGGREGATOR_JOB_TIMEOUT_SECONDS", float, 60.0, "Aggregator lease"),
    _o("verification_poll_seconds", "VERIFICATION_POLL_SECONDS", float, None, "override every verification delay"),
    _o("retry_base_delay_seconds", "RETRY_BASE_DELAY_SECONDS", float, 5.0, "first back-off of a failed message"),
    _o("snos_job_buffer_size", "SNOS_JOB_BUFFER_SIZE", int, 50, "SnosRun jobs ahead of the oldest unfinished"),
    _o("aggregator_job_buffer_size", "AGGREGATOR_JOB_BUFFER_SIZE", int, 5, "Aggregator jobs in flight"),
    _o("max_batch_processing_size", "MAX_BATCH_PROCESSING_SIZE", int, 10, "blocks batched per trigger run"),
    _o("min_block_to_process", "MIN_BLOCK_NO_TO_PROCESS", int, 0, "first block"),
    _o("max_block_to_process", "MAX_BLOCK_NO_TO_PROCESS", int, None, "last block"),
    # batching (SPEC §5, §16.2)
    _o(
        "max_batch_time_seconds",
        "MAX_BATCH_TIME_SECONDS",
        int,
        300,
        "a batch this old closes, even when no new block comes (required in the original; 300 s keeps "
        "settlement latency bounded on a quiet chain)",
    ),
    _o("max_batch_size", "MAX_BATCH_SIZE", int, 100, "blocks per aggregator batch (one settlement)"),
    _o("max_num_blobs", "MAX_NUM_BLOBS", int, 6, "blobs per settlement transaction (1 to 6)"),
    _o("blob_size_buffer", "BLOB_SIZE_BUFFER", int, 15, "felts kept free in the last blob"),
    _o("max_blocks_per_snos_batch", "MAX_BLOCKS_PER_SNOS_BATCH", int, 10, "blocks per SNOS batch (one SNOS run)"),
    _o(
        "fixed_blocks_per_snos_batch",
        "FIXED_BLOCKS_PER_SNOS_BATCH",
        int,
        None,
        "exactly this many blocks per SNOS batch, ignoring every other SNOS rule",
    ),
    _o(
        "max_snos_batches_per_aggregator_batch",
        "MAX_SNOS_BATCHES_PER_AGGREGATOR_BATCH",
        int,
        50,
        "SNOS batches per aggregator batch (enforced here; the original ignores it)",
    ),
    _o("max_aggregator_input_size", "MAX_AGGREGATOR_INPUT_SIZE", int, 750_000, "felts of aggregator input"),
    _o(
        "default_empty_block_proving_gas",
        "DEFAULT_EMPTY_BLOCK_PROVING_GAS",
        int,
        1_500_000,
        "proving gas counted for a block that reports none",
    ),
    _o(
        "bouncer_weights_limit_file",
        "BOUNCER_WEIGHTS_LIMIT_FILE",
        str,
        None,
        "JSON object of bouncer weight limits per SNOS batch (missing fields keep the defaults of SPEC §5.3)",
    ),
    _o(
        "batching_worker_lock_duration",
        "BATCHING_LOCK_DURATION_SECONDS",
        float,
        60.0,
        "batching lease, renewed while batching runs (the original holds 3600 s without renewal, so a "
        "crashed instance stalls batching for an hour)",
    ),
    _o(
        "allow_starknet_versions",
        "ALLOW_STARKNET_VERSIONS",
        str,
        None,
        "Starknet versions batched besides the known ones (comma-separated), encoded like the nearest lower known one",
    ),
    _o(
        "replay_bounds_rpc_url",
        "REPLAY_BOUNDS_RPC_URL",
        str,
        None,
        "reference node: batching stops before a block whose hash differs there (SPEC §5.9)",
    ),
    _o("store_audit_artifacts", "STORE_AUDIT_ARTIFACTS", bool, False, "keep proofs"),
    _o("snos_full_output", "SNOS_FULL_OUTPUT", bool, False, "recorded in SnosRun metadata"),
    _o("max_priority_queue_size", "MAX_PRIORITY_QUEUE_SIZE", int, 20, "priority queue admission limit"),
    _o(
        "interval_seconds",
        "EVENT_BRIDGE_INTERVAL_SECONDS",
        float,
        60.0,
        "backstop trigger tick (setup --aws: the EventBridge rate, whole minutes)",
    ),
    _o("chain_poll_interval_seconds", "CHAIN_POLL_INTERVAL_SECONDS", float, 2.0, "sequencer head polling"),
    _o("heal_interval_seconds", "HEAL_INTERVAL_SECONDS", float, 60.0, "how often forgotten jobs are re-sent"),
    _o(
        "heal_stale_after_seconds",
        "HEAL_STALE_AFTER_SECONDS",
        float,
        120.0,
        "a job without progress for this long gets its message again: one lost when a process died between "
        "writing the job and sending its message (SQS cannot share the database's transaction); duplicates are "
        "harmless",
    ),
    _o("halt_on_failure", "HALT_ON_FAILURE", bool, False, "stop all triggers while any job is Failed"),
    _o("graceful_shutdown_timeout", "GRACEFUL_SHUTDOWN_TIMEOUT", float, 120.0, "seconds to finish in-flight work"),
    _o(
        "progress_interval_seconds",
        "PROGRESS_INTERVAL_SECONDS",
        float,
        30.0,
        "one INFO line of progress (head, each stage, open batch, lag) this often when something changed, and every "
        "5 minutes when nothing did; 0 turns it off",
    ),
    # HTTP API and alerts
    _o("host", "HOST", str, "127.0.0.1", "HTTP API address"),
    _o("port", "PORT", int, 3000, "HTTP API port"),
    _o(
        "instance_id",
        "INSTANCE_ID",
        str,
        None,
        "this instance's name, the same across its restarts and different for each instance sharing a database "
        "(default <hostname>-<port>); a restarted instance takes back its own leases at once (not in the original)",
    ),
    _o("admin_enabled", "ADMIN_ENABLED", bool, False, "mount the admin routes"),
    _o("admin_token", "ADMIN_TOKEN", str, None, "bearer token of the admin routes", secret=True),
    _o(
        "atlantic_webhook_secret",
        "ATLANTIC_WEBHOOK_SECRET",
        str,
        None,
        "shared secret of Atlantic's completion webhooks (16+ URL-safe characters): POST /webhooks/atlantic/<secret>, "
        "or the body signed in X-Atlantic-Signature: sha256=<HMAC-SHA256>; without it the webhook is off and "
        "verification only polls",
        secret=True,
    ),
    _o("alert_webhook_url", "ALERT_WEBHOOK_URL", str, None, "POST alerts to this URL", secret=True),
    # telemetry (SPEC §14)
    _o(
        "otel_collector_endpoint",
        "OTEL_COLLECTOR_ENDPOINT",
        str,
        None,
        "OpenTelemetry collector (OTLP over gRPC, e.g. http://127.0.0.1:4317): metrics and job traces are "
        "exported there; without it only /metrics serves the metrics",
    ),
    _o(
        "otel_service_name",
        "OTEL_SERVICE_NAME",
        str,
        "orchestrator",
        "service name of the exported telemetry (resources <name>_meter_service and <name>_trace_service)",
    ),
    _o(
        "otel_export_interval_seconds",
        "OTEL_EXPORT_INTERVAL_SECONDS",
        float,
        5.0,
        "how often metrics are exported to the collector",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved ``run`` settings. Each option is an attribute of its declared type (below, one line per
    ``RUN_OPTIONS`` entry; a unit test keeps the two in step); ``values`` holds them by name."""

    values: Mapping[str, Any]
    secrets: frozenset[str] = field(default_factory=frozenset)

    if TYPE_CHECKING:
        data_dir: ClassVar[str]
        sqlite_path: ClassVar[str | None]
        storage_dir: ClassVar[str | None]
        postgres_url: ClassVar[str | None]
        queue_identifier: ClassVar[str]
        aws_prefix: ClassVar[str | None]
        aws: ClassVar[bool]
        aws_s3: ClassVar[bool]
        aws_sqs: ClassVar[bool]
        aws_sns: ClassVar[bool]
        bucket_identifier: ClassVar[str]
        topic_identifier: ClassVar[str]
        storage_expiration_days: ClassVar[int]
        layer: ClassVar[str]
        da_public_keys: ClassVar[str | None]
        madara_rpc_url: ClassVar[str | None]
        madara_feeder_gateway_url: ClassVar[str | None]
        rpc_for_snos: ClassVar[str | None]
        snos_runner: ClassVar[str | None]
        snos_command: ClassVar[str | None]
        snos_runner_url: ClassVar[str | None]
        snos_timeout_seconds: ClassVar[float]
        snos_work_dir: ClassVar[str | None]
        aggregator_runner: ClassVar[str | None]
        aggregator_command: ClassVar[str | None]
        aggregator_runner_url: ClassVar[str | None]
        aggregator_timeout_seconds: ClassVar[float]
        prover: ClassVar[str | None]
        mock_verifier_address: ClassVar[str | None]
        mock_verifier_private_key: ClassVar[str | None]
        atlantic_api_key: ClassVar[str | None]
        atlantic_service_url: ClassVar[str | None]
        atlantic_rpc_node_url: ClassVar[str | None]
        atlantic_mock_fact_hash: ClassVar[str | None]
        atlantic_prover_type: ClassVar[str | None]
        atlantic_settlement_layer: ClassVar[str | None]
        atlantic_verifier_contract_address: ClassVar[str | None]
        cairo_verifier_program_hash: ClassVar[str | None]
        atlantic_verifier_cairo_vm: ClassVar[str]
        atlantic_verifier_result: ClassVar[str]
        atlantic_network: ClassVar[str | None]
        atlantic_sharp_prover: ClassVar[str]
        atlantic_artifacts_base_url: ClassVar[str]
        mock_atlantic_server: ClassVar[bool]
        sharp_customer_id: ClassVar[str | None]
        sharp_url: ClassVar[str | None]
        sharp_user_crt_file: ClassVar[str | None]
        sharp_user_key_file: ClassVar[str | None]
        sharp_server_crt_file: ClassVar[str | None]
        sharp_rpc_node_url: ClassVar[str | None]
        gps_verifier_contract_address: ClassVar[str | None]
        sharp_settlement_layer: ClassVar[str]
        snos_layout_name: ClassVar[str]
        prover_layout_name: ClassVar[str]
        settle_on_devnet: ClassVar[bool]
        devnet_settlement_path: ClassVar[str | None]
        settle_on_ethereum: ClassVar[bool]
        ethereum_rpc_url: ClassVar[str | None]
        ethereum_private_key: ClassVar[str | None]
        l1_core_contract_address: ClassVar[str | None]
        starknet_operator_address: ClassVar[str | None]
        ethereum_finality_retry_wait_in_secs: ClassVar[float]
        ethereum_tx_confirmation_timeout_secs: ClassVar[float]
        ethereum_max_fee_bumps: ClassVar[int]
        ethereum_l2_state_update_max_fee_wei: ClassVar[int]
        ethereum_confirmations: ClassVar[int]
        disable_peerdas: ClassVar[bool]
        settlement_fee_wait_seconds: ClassVar[float]
        da_on_ethereum: ClassVar[bool]
        ethereum_da_rpc_url: ClassVar[str | None]
        settle_on_starknet: ClassVar[bool]
        starknet_rpc_url: ClassVar[str | None]
        starknet_private_key: ClassVar[str | None]
        starknet_account_address: ClassVar[str | None]
        starknet_cairo_core_contract_address: ClassVar[str | None]
        starknet_finality_retry_wait_in_secs: ClassVar[float]
        starknet_tx_confirmation_timeout_secs: ClassVar[float]
        starknet_max_fee_fri: ClassVar[int | None]
        da_on_starknet: ClassVar[bool]
        starknet_da_rpc_url: ClassVar[str | None]
        max_concurrent_snos_jobs: ClassVar[int]
        max_concurrent_proving_jobs: ClassVar[int]
        max_concurrent_aggregator_jobs: ClassVar[int]
        snos_job_timeout_seconds: ClassVar[float]
        proving_job_timeout_seconds: ClassVar[float]
        state_transition_timeout_seconds: ClassVar[float]
        aggregator_job_timeout_seconds: ClassVar[float]
        verification_poll_seconds: ClassVar[float | None]
        retry_base_delay_seconds: ClassVar[float]
        snos_job_buffer_size: ClassVar[int]
        aggregator_job_buffer_size: ClassVar[int]
        max_batch_processing_size: ClassVar[int]
        min_block_to_process: ClassVar[int]
        max_block_to_process: ClassVar[int | None]
        max_batch_time_seconds: ClassVar[int]
        max_batch_size: ClassVar[int]
        max_num_blobs: ClassVar[int]
        blob_size_buffer: ClassVar[int]
        max_blocks_per_snos_batch: ClassVar[int]
        fixed_blocks_per_snos_batch: ClassVar[int | None]
        max_snos_batches_per_aggregator_batch: ClassVar[int]
        max_aggregator_input_size: ClassVar[int]
        default_empty_block_proving_gas: ClassVar[int]
        bouncer_weights_limit_file: ClassVar[str | None]
        batching_worker_lock_duration: ClassVar[float]
        allow_starknet_versions: ClassVar[str | None]
        replay_bounds_rpc_url: ClassVar[str | None]
        store_audit_artifacts: ClassVar[bool]
        snos_full_output: ClassVar[bool]
        max_priority_queue_size: ClassVar[int]
        interval_seconds: ClassVar[float]
        chain_poll_interval_seconds: ClassVar[float]
        heal_interval_seconds: ClassVar[float]
        heal_stale_after_seconds: ClassVar[float]
        halt_on_failure: ClassVar[bool]
        graceful_shutdown_timeout: ClassVar[float]
        progress_interval_seconds: ClassVar[float]
        host: ClassVar[str]
        port: ClassVar[int]
        instance_id: ClassVar[str | None]
        admin_enabled: ClassVar[bool]
        admin_token: ClassVar[str | None]
        atlantic_webhook_secret: ClassVar[str | None]
        alert_webhook_url: ClassVar[str | None]
        otel_collector_endpoint: ClassVar[str | None]
        otel_service_name: ClassVar[str]
        otel_export_interval_seconds: ClassVar[float]

    else:

        def __getattr__(self, name: str) -> Any:
            try:
                return self.values[name]
            except KeyError:
                raise AttributeError(name) from None

    def need(self, name: str) -> str:
        """A text option this configuration requires (``load_run_settings`` has checked it is set)."""
        value = self.values.get(name)
        if value is None:
            raise ConfigError([f"--{name.replace('_', '-')} is required with these settings"])
        return str(value)

    def describe(self) -> dict[str, Any]:
        """The settings as shown to people: secrets masked, URLs cut to ``scheme://host[:port]``."""
        return {
            k: "***" if k in self.secrets and v is not None else cut_urls(v) if isinstance(v, str) else v
            for k, v in self.values.items()
        }

    @property
    def da_keys(self) -> tuple[int, ...]:
        """``--da-public-keys`` as felts (validated by ``load_run_settings``); () when not given."""
        return parse_da_public_keys(self.values.get("da_public_keys"))

    def secret_mask(self) -> SecretMask:
        """What output must never show: every secret setting's value, and the credentials, query values and
        long path segments of every URL setting (an RPC URL may carry a key)."""
        return SecretMask(
            str(v) for k, v in self.values.items() if isinstance(v, str) and (k in self.secrets or "://" in v)
        )


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """The options as flags in the argument groups of cli/run_help.py, in its order; an option of no group
    (one of ``setup`` only) stays in the parser's own. Each flag has its metavar and help from there."""
    by_name = {option.name: option for option in options}
    placed: list[tuple[Any, Option]] = [(parser, o) for o in options if o.name not in run_help.GROUP_OF]
    for group in run_help.GROUPS:
        members = [by_name[name] for name in group.options if name in by_name]
        if members:
            section = parser.add_argument_group(group.title, group.description)
            placed += [(section, option) for option in members]
    for target, option in placed:
        text = run_help.help_text(option, ENV_PREFIX)
        if option.kind is bool:
            target.add_argument(option.flag, dest=option.name, action="store_true", default=None, help=text)
        else:
            target.add_argument(
                option.flag, dest=option.name, default=None, metavar=run_help.metavar(option), help=text
            )


def _convert(option: Option, raw: Any, source: str, problems: list[str]) -> Any:
    if raw is None:
        return None
    if option.kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no", ""):
            return False
        problems.append(f"{source}: expected true or false, got {raw!r}")
        return None
    text = str(raw).strip()
    if option.kind is int or option.kind is float:
        try:
            number = option.kind(text)
        except ValueError:
            problems.append(f"{source}: expected a {'whole ' if option.kind is int else ''}number, got {text!r}")
            return None
        if not math.isfinite(number):
            problems.append(f"{source}: expected a finite number, got {text!r}")
            return None
        return number
    if option.choices and text.lower() not in option.choices:
        problems.append(f"{source}: must be one of {', '.join(option.choices)}, got {text!r}")
        return None
    return text.lower() if option.choices else text


def resolve(
    args: argparse.Namespace, options: Sequence[Option], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    values, problems, _ = _resolve(args, options, environ)
    return values, problems


def _resolve(
    args: argparse.Namespace, options: Sequence[Option], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str], set[str]]:
    """The values, the problems, and the names of the options given a value that could not be used (their
    default stands in, and no other problem, such as "is required", is reported about them)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    invalid: set[str] = set()
    for option in options:
        raw = getattr(args, option.name, None)
        source = option.flag
        if raw is None and option.env:
            var = ENV_PREFIX + option.env
            file_var = var + "_FILE"
            if option.secret and env.get(file_var):
                path = Path(env[file_var])
                try:
                    raw = path.read_text().strip()
                except OSError as exc:
                    problems.append(f"{file_var}: cannot read {path}: {exc.strerror}")
                    invalid.add(option.name)
                    raw = None
                else:
                    if not raw:
                        problems.append(f"{file_var}: {path} is empty")
                        invalid.add(option.name)
                        raw = None
                source = file_var
            elif env.get(var) is not None:
                raw = env[var]
                source = var
        value = _convert(option, raw, source, problems)
        if value is None and raw is not None:
            invalid.add(option.name)
        values[option.name] = option.default if value is None else value
    return values, problems, invalid


def _is_hex_address(text: str, *, length: int | None = None) -> bool:
    body = text[2:] if text.startswith("0x") else None
    if not body or any(c not in "0123456789abcdefABCDEF" for c in body):
        return False
    return length is None or len(body) == length


"""EIP-4844/EIP-7594: a transaction carries at most six blobs."""


def load_bouncer_weight_limits(path: str | None) -> BouncerWeights:
    """The limits file of ``--bouncer-weights-limit-file``; a bad file is an error, not silent defaults."""
    if path is None:
        return DEFAULT_BOUNCER_WEIGHT_LIMITS
    where = f"--bouncer-weights-limit-file {path}"
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidInput(f"{where}: cannot read it: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{where}: not JSON ({exc})") from None
    return BouncerWeights.from_json(data, where=where, defaults=DEFAULT_BOUNCER_WEIGHT_LIMITS)


def batch_limits(values: Mapping[str, Any], weights: BouncerWeights = DEFAULT_BOUNCER_WEIGHT_LIMITS) -> BatchLimits:
    return BatchLimits(
        max_batch_time_s=float(values["max_batch_time_seconds"]),
        max_blocks_per_snos_batch=values["max_blocks_per_snos_batch"],
        fixed_blocks_per_snos_batch=values["fixed_blocks_per_snos_batch"],
        max_batch_size=values["max_batch_size"],
        max_snos_batches_per_aggregator_batch=values["max_snos_batches_per_aggregator_batch"],
        max_num_blobs=values["max_num_blobs"],
        blob_size_buffer=values["blob_size_buffer"],
        max_aggregator_input_size=values["max_aggregator_input_size"],
        default_empty_block_proving_gas=values["default_empty_block_proving_gas"],
        bouncer_weight_limits=weights,
    )


_LIMIT_FLAGS = {
    "max batch time": "--max-batch-time-seconds",
    "max blocks per SNOS batch": "--max-blocks-per-snos-batch",
    "max batch size": "--max-batch-size",
    "max SNOS batches per aggregator batch": "--max-snos-batches-per-aggregator-batch",
    "max number of blobs": "--max-num-blobs",
    "max aggregator input size": "--max-aggregator-input-size",
    "fixed blocks per SNOS batch": "--fixed-blocks-per-snos-batch",
    "blob size buffer": "--blob-size-buffer",
    "default empty block proving gas": "--default-empty-block-proving-gas",
}


def _batching_flag(problem: str) -> str:
    """The flag a batching-limit problem is about (the policy names the limit, the user typed the flag)."""
    return next((flag for name, flag in _LIMIT_FLAGS.items() if problem.startswith(name)), "batching")


def _batching_problems(values: Mapping[str, Any]) -> list[str]:
    names = (
        "max_batch_time_seconds",
        "max_batch_size",
        "max_num_blobs",
        "blob_size_buffer",
        "max_blocks_per_snos_batch",
        "max_snos_batches_per_aggregator_batch",
        "max_aggregator_input_size",
        "default_empty_block_proving_gas",
    )
    if any(values[n] is None for n in names):
        return []  # already reported as not a number
    problems: list[str] = []
    try:
        weights = load_bouncer_weight_limits(values["bouncer_weights_limit_file"])
    except InvalidInput as exc:
        problems.append(str(exc))
        weights = DEFAULT_BOUNCER_WEIGHT_LIMITS
    problems += [f"{_batching_flag(p)}: {p}" for p in batch_limits(values, weights).problems()]
    if values["max_num_blobs"] > MAX_BLOBS_PER_TX:
        problems.append(
            f"--max-num-blobs must be at most {MAX_BLOBS_PER_TX} (blobs per transaction), got {values['max_num_blobs']}"
        )
    return problems


def _option(name: str) -> Option:
    return next(o for o in RUN_OPTIONS if o.name == name)


def _named(name: str) -> str:
    """``--flag (MADARA_ORCHESTRATOR_VAR)``, how a problem names an option."""
    option = _option(name)
    return f"{option.flag} ({ENV_PREFIX}{option.env})" if option.env else option.flag


def _required(values: Mapping[str, Any], names: Sequence[str], context: str) -> list[str]:
    return [f"{_named(name)} is required {context}" for name in names if not values[name]]


def _url_problem(values: Mapping[str, Any], name: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """An absolute URL with one of ``schemes`` and a host. A secret URL (it may carry a key) is not echoed."""
    value = values[name]
    if not value:
        return None
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError on a bad port
        is_valid = parts.scheme.lower() in schemes and bool(parts.hostname)
    except ValueError:
        is_valid = False
    if is_valid:
        return None
    shown = "" if _option(name).secret else f", got {value!r}"
    expected = " or ".join(f"{s}://" for s in schemes)
    return f"{_option(name).flag} must be an {expected} URL with a host{shown}"


def _address_problem(values: Mapping[str, Any], name: str, *, why: str = "") -> str | None:
    value = values[name]
    if value is None or _is_hex_address(value, length=40):
        return None
    return f"{_option(name).flag} must be a 20-byte address (0x and 40 hex digits){why}, got {value!r}"


def _private_key_body(value: str) -> str | None:
    """The 64 hex digits of a private key (``0x`` optional), lowercased; None when it is not one."""
    body = value[2:] if value[:2].lower() == "0x" else value
    if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body) or int(body, 16) == 0:
        return None
    return body.lower()


def _private_key_problem(values: Mapping[str, Any], name: str) -> str | None:
    value = values[name]
    if value is None or _private_key_body(value) is not None:
        return None
    return f"{_named(name)} must be a private key: 32 bytes as 64 hex digits (0x optional), not zero"


def _pem_problems(values: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """Each file readable and PEM; then the three together must make a TLS identity and trust root."""
    problems: list[str] = []
    for name in names:
        path = values[name]
        if not path:
            continue
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            problems.append(f"{_option(name).flag} {path}: cannot read it: {exc.strerror or exc}")
            continue
        if b"-----BEGIN " not in data:
            problems.append(f"{_option(name).flag} {path}: not a PEM file (no -----BEGIN line)")
    if not problems and all(values[n] for n in names):
        try:
            build_ssl_context(
                values["sharp_user_crt_file"], values["sharp_user_key_file"], values["sharp_server_crt_file"]
            )
        except ConfigError as exc:
            problems += exc.problems
    return problems


def _atlantic_problems(values: Mapping[str, Any]) -> list[str]:
    context = "with --prover atlantic"
    problems: list[str] = []
    if values["layer"] == "l3" and not values["cairo_verifier_program_hash"]:
        problems.append("Cairo verifier program hash is required for L3: set --cairo-verifier-program-hash")
    required = [
        "atlantic_api_key",
        "atlantic_mock_fact_hash",
        "atlantic_prover_type",
        "atlantic_settlement_layer",
        "atlantic_network",
    ]
    if not values["mock_atlantic_server"]:
        required.insert(1, "atlantic_service_url")
    mocked = (values["atlantic_mock_fact_hash"] or "").lower() == "true"
    if not mocked:
        required += ["atlantic_rpc_node_url", "atlantic_verifier_contract_address"]
    problems += _required(values, required, context)
    mock_fact_hash = values["atlantic_mock_fact_hash"]
    if mock_fact_hash is not None and mock_fact_hash.lower() not in ("true", "false"):
        problems.append(f"--atlantic-mock-fact-hash must be true or false, got {mock_fact_hash!r}")
    try:
        AtlanticQueryStep.from_cli(values["atlantic_verifier_result"] or "")
    except InvalidInput as exc:
        problems.append(f"--atlantic-verifier-result: {exc}")
    for name in ("atlantic_service_url", "atlantic_rpc_node_url", "atlantic_artifacts_base_url"):
        problems.append(_url_problem(values, name) or "")
    problems.append(_address_problem(values, "atlantic_verifier_contract_address") or "")
    program_hash = values["cairo_verifier_program_hash"]
    if program_hash is not None and not _is_felt(program_hash):
        problems.append(
            "--cairo-verifier-program-hash must be a felt (0x and hex, below 2^251 + 17·2^192 + 1), "
            f"got {program_hash!r}"
        )
    return [p for p in problems if p]


def _sharp_problems(values: Mapping[str, Any]) -> list[str]:
    pem_files = ("sharp_user_crt_file", "sharp_user_key_file", "sharp_server_crt_file")
    problems: list[str] = []
    if values["layer"] == "l3":
        problems.append("SHARP prover is L2-only (fact registration happens on L1)")
    problems += _required(
        values,
        ["sharp_customer_id", "sharp_url", *pem_files, "sharp_rpc_node_url", "gps_verifier_contract_address"],
        "with --prover sharp",
    )
    problems.append(_url_problem(values, "sharp_url", schemes=("https",)) or "")
    problems.append(_url_problem(values, "sharp_rpc_node_url") or "")
    problems.append(_address_problem(values, "gps_verifier_contract_address") or "")
    problems += _pem_problems(values, pem_files)
    return [p for p in problems if p]


def _mock_problems(values: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if values["layer"] == "l3":
        problems.append("Mock prover is L2-only")
    if not values["settle_on_ethereum"]:
        problems.append("--prover mock needs --settle-on-ethereum (it registers facts on the settlement chain)")
    if values["store_audit_artifacts"]:
        problems.append("--prover mock cannot be used with --store-audit-artifacts (it has no proofs)")
    if not values["mock_verifier_address"]:
        problems.append(
            f"{_named('mock_verifier_address')} is required with --prover mock: without a fact registry no fact "
            "is registered and every settlement reverts on L1 (and spends gas)"
        )
    if not values["mock_verifier_private_key"]:
        problems.append(
            f"{_named('mock_verifier_private_key')} is required with --prover mock: the key that registers "
            "facts (not the settlement key)"
        )
    problems.append(_address_problem(values, "mock_verifier_address") or "")
    mock_key, eth_key = values["mock_verifier_private_key"], values["ethereum_private_key"]
    if mock_key and eth_key:
        mock_body, eth_body = _private_key_body(mock_key), _private_key_body(eth_key)
        if mock_body is not None and mock_body == eth_body:
            problems.append(
                "--mock-verifier-private-key must differ from --ethereum-private-key: fact registrations and "
                "settlements would compete for the same account's nonces"
            )
    return [p for p in problems if p]


def _runner_problems(
    values: Mapping[str, Any], runner_name: str, command_name: str, url_name: str, check_command: Any
) -> list[str]:
    """A runner's ``command`` mode needs a command that can be run, ``http`` a URL; the flags of one mode
    given with another (or with none) are a mistake worth naming (another runner would silently run)."""
    runner = values[runner_name]
    flag, command_flag, url_flag = (_option(n).flag for n in (runner_name, command_name, url_name))
    problems: list[str] = []
    if runner == "command":
        if not values[command_name]:
            problems.append(f"{_named(command_name)} is required with {flag} command")
        else:
            problems.append(check_command(values[command_name]) or "")
    elif values[command_name]:
        problems.append(f"{command_flag} is set but {flag} is {runner or 'not'}: add {flag} command")
    if runner == "http":
        if not values[url_name]:
            problems.append(f"{_named(url_name)} is required with {flag} http")
        problems.append(_url_problem(values, url_name) or "")
    elif values[url_name]:
        problems.append(f"{url_flag} is set but {flag} is {runner or 'not'}: add {flag} http")
    return [p for p in problems if p]


def _snos_runner_problems(values: Mapping[str, Any]) -> list[str]:
    problems = _runner_problems(values, "snos_runner", "snos_command", "snos_runner_url", command_problem)
    if values["snos_runner"] is None and not problems:
        problems.append(
            f"{_named('snos_runner')} is required: command (--snos-command), http (--snos-runner-url) or devnet "
            "(a stand-in no prover accepts)"
        )
    return problems


def _aggregator_runner_problems(values: Mapping[str, Any]) -> list[str]:
    """SHARP, mock and devnet provers need an aggregator runner, chosen by name; Atlantic aggregates in its
    buckets and an L3 has no aggregator batches."""
    runner = values["aggregator_runner"]
    if values["layer"] == "l3" or values["prover"] == "atlantic":
        why = "an L3 has no aggregator batches" if values["layer"] == "l3" else "Atlantic aggregates in its buckets"
        given = [n for n in ("aggregator_runner", "aggregator_command", "aggregator_runner_url") if values[n]]
        return [f"{_option(n).flag} is set but {why}: drop it" for n in given]
    problems = _runner_problems(
        values, "aggregator_runner", "aggregator_command", "aggregator_runner_url", aggregator_command_problem
    )
    if runner is None and not problems and values["prover"]:
        problems.append(
            f"{_named('aggregator_runner')} is required with --prover {values['prover']}: command "
            "(--aggregator-command), http (--aggregator-runner-url) or devnet (a stand-in no prover or core "
            "contract accepts)"
        )
    return problems


DEVNET_PROVER_ON_ETHEREUM = (
    "--prover devnet proves nothing and registers no facts, so a core contract on Ethereum rejects every "
    "settlement: use it with --settle-on-devnet, or settle on Ethereum with --prover mock (facts on a mock "
    "verifier), atlantic or sharp"
)


def _is_felt(text: str) -> bool:
    return _is_hex_address(text) and int(text, 16) < STARKNET_PRIME


def parse_da_public_keys(text: str | None) -> tuple[int, ...]:
    """``0x1,0x2`` → felts, as the original's ``--da-public-keys`` (comma-separated, each trimmed, hex);
    ``InvalidInput`` naming the first bad key."""
    if text is None:
        return ()
    keys: list[int] = []
    for position, raw in enumerate(text.split(","), start=1):
        key = raw.strip()
        if not key:
            raise InvalidInput(f"--da-public-keys: key {position} is empty (comma-separated felts, 0x hex)")
        body = key[2:] if key[:2].lower() == "0x" else key
        if not body or len(body) > 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
            raise InvalidInput(f"--da-public-keys: key {position} {key[:70]!r} is not hex (e.g. 0x123...)")
        if int(body, 16) >= STARKNET_PRIME:
            raise InvalidInput(f"--da-public-keys: key {position} {key[:70]!r} is not below the Stark prime")
        keys.append(int(body, 16))
    return tuple(keys)


def backend_problems(values: Mapping[str, Any]) -> list[str]:
    """The backend choice: ``--aws-*`` need ``--aws`` and ``--aws`` needs one of them; a PostgreSQL URL."""
    problems: list[str] = []
    chosen = [flag for flag in ("aws_s3", "aws_sqs", "aws_sns") if values.get(flag)]
    if chosen and not values.get("aws"):
        flags = ", ".join("--" + f.replace("_", "-") for f in chosen)
        verb = "needs" if len(chosen) == 1 else "need"
        problems.append(f"{flags} {verb} --aws (credentials and region come from the standard AWS_* variables)")
    if values.get("aws") and not chosen:
        problems.append("--aws chooses nothing by itself: add --aws-s3, --aws-sqs and/or --aws-sns")
    url = values.get("postgres_url")
    if url is not None and not str(url).startswith(("postgresql://", "postgres://")):
        problems.append("--postgres-url must be a postgresql://user:password@host:port/database URL")
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
        problems += _required(
            values,
            [
                "starknet_rpc_url",
                "starknet_private_key",
                "starknet_account_address",
                "starknet_cairo_core_contract_address",
            ],
            "with --settle-on-starknet",
        )
        problems.append(_url_problem(values, "starknet_rpc_url") or "")
        for name in ("starknet_account_address", "starknet_cairo_core_contract_address"):
            text = values[name]
            if text is not None and not _is_felt(text):
                problems.append(f"--{name.replace('_', '-')} must be a felt (0x and hex, below the Stark prime)")
        key = values["starknet_private_key"]
        if key is not None and not _is_felt(key):
            problems.append("--starknet-private-key must be a felt (0x and hex, below the Stark prime)")
    return [p for p in problems if p]


POSITIVE = "positive"
NON_NEGATIVE = "non-negative"
PORT = "port"
BATCHING = "batching"
"""Checked with the batching limits (``BatchLimits.problems``), in the batching policy's words."""

RUN_NUMBER_RULES: dict[str, str] = {
    "storage_expiration_days": POSITIVE,
    "snos_timeout_seconds": POSITIVE,
    "aggregator_timeout_seconds": POSITIVE,
    "ethereum_finality_retry_wait_in_secs": POSITIVE,
    "ethereum_tx_confirmation_timeout_secs": POSITIVE,
    "ethereum_max_fee_bumps": NON_NEGATIVE,
    "ethereum_l2_state_update_max_fee_wei": POSITIVE,
    "ethereum_confirmations": NON_NEGATIVE,
    "settlement_fee_wait_seconds": POSITIVE,
    "starknet_finality_retry_wait_in_secs": POSITIVE,
    "starknet_tx_confirmation_timeout_secs": POSITIVE,
    "starknet_max_fee_fri": POSITIVE,
    "max_concurrent_snos_jobs": POSITIVE,
    "max_concurrent_proving_jobs": POSITIVE,
    "max_concurrent_aggregator_jobs": POSITIVE,
    "snos_job_timeout_seconds": POSITIVE,
    "proving_job_timeout_seconds": POSITIVE,
    "state_transition_timeout_seconds": POSITIVE,
    "aggregator_job_timeout_seconds": POSITIVE,
    "verification_poll_seconds": POSITIVE,
    "retry_base_delay_seconds": NON_NEGATIVE,
    "snos_job_buffer_size": POSITIVE,
    "aggregator_job_buffer_size": POSITIVE,
    "max_batch_processing_size": POSITIVE,
    "min_block_to_process": NON_NEGATIVE,
    "max_block_to_process": NON_NEGATIVE,
    "max_batch_time_seconds": BATCHING,
    "max_batch_size": BATCHING,
    "max_num_blobs": BATCHING,
    "blob_size_buffer": BATCHING,
    "max_blocks_per_snos_batch": BATCHING,
    "fixed_blocks_per_snos_batch": BATCHING,
    "max_snos_batches_per_aggregator_batch": BATCHING,
    "max_aggregator_input_size": BATCHING,
    "default_empty_block_proving_gas": BATCHING,
    "batching_worker_lock_duration": POSITIVE,
    "max_priority_queue_size": POSITIVE,
    "interval_seconds": POSITIVE,
    "chain_poll_interval_seconds": POSITIVE,
    "heal_interval_seconds": POSITIVE,
    "heal_stale_after_seconds": POSITIVE,
    "graceful_shutdown_timeout": NON_NEGATIVE,
    "port": PORT,
    "otel_export_interval_seconds": POSITIVE,
    "progress_interval_seconds": NON_NEGATIVE,
}
"""The range of every number option of ``run`` (a unit test checks that each int and float option has one)."""


def number_problems(values: Mapping[str, Any], rules: Mapping[str, str]) -> list[str]:
    """One line per number outside its range, naming the flag."""
    problems: list[str] = []
    for name, rule in rules.items():
        value = values.get(name)
        if value is None or rule == BATCHING:
            continue
        flag = "--" + name.replace("_", "-")
        if rule == POSITIVE and value <= 0:
            kind = "a positive integer" if isinstance(value, int) else "positive"
            problems.append(f"{flag} must be {kind}, got {value}")
        elif rule == NON_NEGATIVE and value < 0:
            problems.append(f"{flag} must be 0 or more, got {value}")
        elif rule == PORT and not 0 <= value < 65536:
            problems.append(f"{flag} must be between 0 and 65535 (0: any free port), got {value}")
    return problems


def unknown_variables(environ: Mapping[str, str], options: Sequence[Option], *, also: Sequence[str] = ()) -> list[str]:
    """One warning per ``MADARA_ORCHESTRATOR_*`` variable that no option of ``options`` reads (nor ``also``:
    names, without the prefix, that other commands read), naming the closest known variable. Values are
    never shown."""
    plain = {o.env for o in options if o.env}
    known = plain | {o.env + "_FILE" for o in options if o.env and o.secret} | set(also)
    warnings: list[str] = []
    for variable in sorted(environ):
        name = variable.removeprefix(ENV_PREFIX)
        if not variable.startswith(ENV_PREFIX) or name in known:
            continue
        if name.endswith("_FILE") and name.removesuffix("_FILE") in plain:
            warnings.append(
                f"{variable} is ignored: only secrets are read from a file; set "
                f"{ENV_PREFIX}{name.removesuffix('_FILE')} instead"
            )
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {ENV_PREFIX}{close[0]}?" if close else "no setting has this name"
        warnings.append(f"unknown variable {variable} is ignored: {hint}")
    return warnings


def load_run_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Every setting checked in one pass, before anything is created; all problems in one ``ConfigError``
    (one line each: a value that cannot be used is not also reported missing)."""
    values, problems, invalid = _resolve(args, RUN_OPTIONS, environ)
    problems += _batching_problems(values)
    versions = StarknetVersions.parse(values["allow_starknet_versions"])
    problems += [f"--allow-starknet-versions: {p}" for p in versions.problems()]
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
    problems += _layer_problems(values)
    if values["settle_on_ethereum"]:
        problems += _required(
            values,
            ["ethereum_rpc_url", "ethereum_private_key", "l1_core_contract_address"],
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
        problems.append(_url_problem(values, name) or "")
    problems.append(_address_problem(values, "l1_core_contract_address") or "")
    problems.append(
        _address_problem(values, "starknet_operator_address", why=" (the original parses it as an L1 address)") or ""
    )
    for name in ("ethereum_private_key", "mock_verifier_private_key"):
        problems.append(_private_key_problem(values, name) or "")
    prover = values["prover"]
    if prover == "atlantic":
        problems += _atlantic_problems(values)
    elif prover == "sharp":
        problems += _sharp_problems(values)
    elif prover == "mock":
        problems += _mock_problems(values)
    elif prover == "devnet" and values["settle_on_ethereum"]:
        problems.append(DEVNET_PROVER_ON_ETHEREUM)
    elif prover == "devnet" and values["layer"] == "l3":
        problems.append(
            "--prover devnet is L2-only: an L3's proofs must be real Stone proofs verified on the L2; "
            "use --prover atlantic (--mock-atlantic-server for a local one)"
        )
    problems += _snos_runner_problems(values)
    try:
        parse_da_public_keys(values["da_public_keys"])
    except InvalidInput as exc:
        problems.append(str(exc))
    problems += _aggregator_runner_problems(values)
    if values["mock_atlantic_server"]:
        if prover != "atlantic":
            problems.append("--mock-atlantic-server needs --prover atlantic")
        elif values["atlantic_network"] not in (None, "testnet"):
            problems.append("--mock-atlantic-server is only allowed with --atlantic-network TESTNET")
    problems = [p for p in problems if p]
    problems += number_problems(values, RUN_NUMBER_RULES)
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
    if values["max_block_to_process"] is not None and values["max_block_to_process"] < values["min_block_to_process"]:
        problems.append("--max-block-to-process is below --min-block-to-process")
    problems = [p for p in problems if not _about_missing(p, invalid)]
    if problems:
        raise ConfigError(problems)
    return Settings(values, frozenset(o.name for o in RUN_OPTIONS if o.secret))


def _about_missing(problem: str, invalid: set[str]) -> bool:
    """Whether ``problem`` says an option is missing when its value was given but refused (already said)."""
    return " is required" in problem and any(problem.startswith(_option(name).flag + " ") for name in invalid)
