"""Where state updates settle and how the service runs: settlement on Ethereum (L2) or Starknet (L3), the
jobs' concurrency and timers, the backends, the HTTP API and telemetry. One field a setting
(cli/settings/declare.py)."""

from __future__ import annotations

from dataclasses import dataclass

from madara_orchestrator.cli.settings.declare import (
    NON_NEGATIVE,
    PORT,
    POSITIVE,
    Group,
    SettingsGroup,
    setting,
)
from madara_orchestrator.domain.jobs import JobType

LEASE_OPTIONS = {
    JobType.SNOS_RUN: "snos_job_timeout_seconds",
    JobType.PROOF_CREATION: "proving_job_timeout_seconds",
    JobType.STATE_TRANSITION: "state_transition_timeout_seconds",
    JobType.AGGREGATOR: "aggregator_job_timeout_seconds",
}
"""The option giving each job type its lease (seconds a worker holds a job); ``run`` and ``setup`` share them."""

ANY_SETTLEMENT = "exactly one --settle-on-* is required"
ONE_SIGNER = "this, --ethereum-signer-url or --ethereum-kms-key-id (exactly one)"


@dataclass(frozen=True)
class SettlementSettings(SettingsGroup):
    GROUP = Group(
        "settlement",
        (
            "Where state updates settle: exactly one of --settle-on-ethereum (L2), --settle-on-starknet (L3) or "
            "--settle-on-devnet."
        ),
    )

    settle_on_ethereum: bool = setting(
        "SETTLE_ON_ETHEREUM",
        "settle on Ethereum with blob transactions",
        default=False,
        required=f"{ANY_SETTLEMENT}; this one with --prover mock",
    )
    settle_on_starknet: bool = setting(
        "SETTLE_ON_STARKNET",
        "settle on Starknet: one update_state invoke per SNOS batch",
        default=False,
        required=f"{ANY_SETTLEMENT}; this one with --layer l3",
    )
    settle_on_devnet: bool = setting(
        "SETTLE_ON_DEVNET",
        "settle on the devnet settlement ledger",
        default=False,
        required=ANY_SETTLEMENT,
    )
    max_settlements_in_flight: int | None = setting(
        "MAX_SETTLEMENTS_IN_FLIGHT",
        (
            "StateTransition jobs (settlement transactions, consecutive nonces) in flight at once; 1: one at a time "
            "(default 4 on Ethereum, 1 with --settle-on-starknet: several have not been tried on a real Starknet node)"
        ),
        rule=POSITIVE,
    )
    devnet_settlement_path: str | None = setting(
        "DEVNET_SETTLEMENT_PATH",
        "devnet settlement ledger file",
        unset="<data-dir>/devnet-settlement.db",
    )


@dataclass(frozen=True)
class EthereumSettings(SettingsGroup):
    GROUP = Group(
        "settlement on Ethereum",
        "With --settle-on-ethereum: the Starknet core contract on L1, blob transactions and their fees.",
    )

    ethereum_rpc_url: str | None = setting(
        "ETHEREUM_SETTLEMENT_RPC_URL",
        "Ethereum JSON-RPC",
        secret=True,
        required="required with --settle-on-ethereum",
    )
    ethereum_private_key: str | None = setting(
        "ETHEREUM_PRIVATE_KEY",
        "operator key (in the process; or sign without it: --ethereum-signer-url or --ethereum-kms-key-id)",
        secret=True,
        required=f"{ONE_SIGNER} with --settle-on-ethereum",
    )
    ethereum_signer_url: str | None = setting(
        "ETHEREUM_SIGNER_URL",
        "remote signer that holds the operator key (Web3Signer/op-signer JSON-RPC eth_signTransaction)",
        secret=True,
        required=f"{ONE_SIGNER} with --settle-on-ethereum",
    )
    ethereum_signer_address: str | None = setting(
        "ETHEREUM_SIGNER_ADDRESS",
        "the account the remote signer signs for (each signed transaction is checked against it)",
        required="required with --ethereum-signer-url",
    )
    ethereum_signer_tls_ca: str | None = setting(
        "ETHEREUM_SIGNER_TLS_CA",
        "CA certificate (PEM) of the remote signer's TLS",
        metavar="FILE",
        unset="the system's",
    )
    ethereum_signer_tls_cert: str | None = setting(
        "ETHEREUM_SIGNER_TLS_CERT",
        "client certificate (PEM) for mutual TLS with the remote signer",
        metavar="FILE",
        unset="no client certificate",
    )
    ethereum_signer_tls_key: str | None = setting(
        "ETHEREUM_SIGNER_TLS_KEY",
        "key (PEM) of --ethereum-signer-tls-cert",
        metavar="FILE",
        unset="no client certificate",
    )
    ethereum_signer_header: str | None = setting(
        "ETHEREUM_SIGNER_HEADER",
        "HTTP header 'Name: value' sent to the remote signer, e.g. 'Authorization: Bearer …' (repeatable; the "
        "variable: one a line)",
        secret=True,
        metavar="HEADER",
        repeatable=True,
        unset="no header",
    )
    ethereum_kms_key_id: str | None = setting(
        "ETHEREUM_KMS_KEY_ID",
        "AWS KMS key (id, ARN or alias; ECC_SECG_P256K1, SIGN_VERIFY) that signs settlements; the key stays in KMS",
        required=f"{ONE_SIGNER} with --settle-on-ethereum",
    )
    l1_core_contract_address: str | None = setting(
        "L1_CORE_CONTRACT_ADDRESS",
        "Starknet core contract on L1",
        required="required with --settle-on-ethereum",
    )
    starknet_operator_address: str | None = setting(
        "STARKNET_OPERATOR_ADDRESS",
        (
            "operator address (0x...); accepted like the original's, unused: settlements are sent from the account of "
            "the settlement signer"
        ),
    )
    da_on_ethereum: bool = setting("DA_ON_ETHEREUM", "blobs travel with the Ethereum settlement tx", default=False)
    ethereum_finality_retry_wait_in_secs: float = setting(
        "ETHEREUM_FINALITY_RETRY_WAIT_IN_SECS",
        (
            "receipt polling (the original's 60 s adds up to a minute to every settlement, and settlements go one at a "
            "time; 6 s is half an L1 slot)"
        ),
        default=6.0,
        rule=POSITIVE,
    )
    ethereum_tx_confirmation_timeout_secs: float = setting(
        "ETHEREUM_TX_CONFIRMATION_TIMEOUT_SECS",
        "confirmation window of one fee attempt",
        default=300.0,
        rule=POSITIVE,
    )
    ethereum_max_fee_bumps: int = setting(
        "ETHEREUM_MAX_FEE_BUMPS",
        "replacements per settlement",
        default=2,
        rule=NON_NEGATIVE,
    )
    ethereum_l2_state_update_max_fee_wei: int = setting(
        "ETHEREUM_L2_STATE_UPDATE_MAX_FEE_WEI",
        "hard cap on a settlement's fee liability",
        default=10**16,
        rule=POSITIVE,
    )
    ethereum_confirmations: int = setting(
        "ETHEREUM_CONFIRMATIONS",
        "blocks on top of a settlement tx",
        default=3,
        rule=NON_NEGATIVE,
        metavar="BLOCKS",
    )
    settlement_fee_wait_seconds: float = setting(
        "SETTLEMENT_FEE_WAIT_SECONDS",
        "retry delay above the fee cap",
        default=60.0,
        rule=POSITIVE,
    )
    settlement_deadline_seconds: float = setting(
        "SETTLEMENT_DEADLINE_SECONDS",
        (
            "post a proven batch when L1 fees are at or under their target, or by the time its oldest block is this "
            "old; 0 sends at once, as the original (not in the original)"
        ),
        default=0.0,
        rule=NON_NEGATIVE,
        metavar="SECONDS",
    )
    settlement_fee_percentile: float = setting(
        "SETTLEMENT_FEE_PERCENTILE",
        (
            "with a deadline: the target base fee and blob base fee are this percentile of the recent blocks' fees; "
            "it relaxes toward the hard cap as the deadline nears"
        ),
        default=30.0,
        rule=NON_NEGATIVE,
        metavar="0-100",
    )
    settlement_fee_window_blocks: int = setting(
        "SETTLEMENT_FEE_WINDOW_BLOCKS",
        "with a deadline: the recent L1 blocks the target percentile is taken over (eth_feeHistory)",
        default=300,
        rule=POSITIVE,
        metavar="BLOCKS",
    )
    disable_peerdas: bool = setting(
        "ETHEREUM_DISABLE_PEERDAS",
        "EIP-4844 blob proofs, not EIP-7594 cells",
        default=False,
    )
    ethereum_da_rpc_url: str | None = setting(
        "ETHEREUM_DA_RPC_URL",
        "accepted like the original's (unused)",
        secret=True,
    )


@dataclass(frozen=True)
class StarknetSettings(SettingsGroup):
    GROUP = Group(
        "settlement on Starknet",
        "With --settle-on-starknet (--layer l3): the appchain's core contract (Piltover) on Starknet.",
    )

    starknet_rpc_url: str | None = setting(
        "STARKNET_SETTLEMENT_RPC_URL",
        "Starknet JSON-RPC to settle on",
        secret=True,
        required="required with --settle-on-starknet",
    )
    starknet_private_key: str | None = setting(
        "STARKNET_PRIVATE_KEY",
        "key of the settling account",
        secret=True,
        required="required with --settle-on-starknet",
    )
    starknet_account_address: str | None = setting(
        "STARKNET_ACCOUNT_ADDRESS",
        "the settling account (single-owner)",
        required="required with --settle-on-starknet",
    )
    starknet_cairo_core_contract_address: str | None = setting(
        "STARKNET_CAIRO_CORE_CONTRACT_ADDRESS",
        "the appchain's core contract on Starknet (Piltover)",
        required="required with --settle-on-starknet",
    )
    da_on_starknet: bool = setting(
        "DA_ON_STARKNET",
        "DA for an L3: the blob data is kept in object storage",
        default=False,
    )
    starknet_finality_retry_wait_in_secs: float = setting(
        "STARKNET_FINALITY_RETRY_WAIT_IN_SECS",
        "receipt polling while a settlement waits to be accepted on L2",
        default=6.0,
        rule=POSITIVE,
    )
    starknet_tx_confirmation_timeout_secs: float = setting(
        "STARKNET_TX_CONFIRMATION_TIMEOUT_SECS",
        "how long one settlement invoke may take to be accepted before the job retries (and resumes it)",
        default=300.0,
        rule=POSITIVE,
    )
    starknet_max_fee_fri: int | None = setting(
        "STARKNET_MAX_FEE_FRI",
        "hard cap on a settlement invoke's fee (in FRI); above it nothing is signed",
        rule=POSITIVE,
        unset="no cap",
    )
    starknet_da_rpc_url: str | None = setting(
        "STARKNET_DA_RPC_URL",
        "accepted like the original's (unused)",
        secret=True,
    )


@dataclass(frozen=True)
class JobSettings(SettingsGroup):
    GROUP = Group("jobs", "Concurrency, leases, retries and the timers that drive and heal the job pipeline.")

    max_concurrent_snos_jobs: int = setting(
        "MAX_CONCURRENT_SNOS_JOBS",
        "SnosRun consumer concurrency",
        default=5,
        rule=POSITIVE,
    )
    max_concurrent_proving_jobs: int = setting(
        "MAX_CONCURRENT_PROVING_JOBS",
        "ProofCreation concurrency",
        default=10,
        rule=POSITIVE,
    )
    max_concurrent_aggregator_jobs: int = setting(
        "MAX_CONCURRENT_AGGREGATOR_JOBS",
        "Aggregator concurrency",
        default=10,
        rule=POSITIVE,
    )
    snos_job_timeout_seconds: float = setting(
        "SNOS_JOB_TIMEOUT_SECONDS",
        "SnosRun processing lease",
        default=60.0,
        rule=POSITIVE,
    )
    proving_job_timeout_seconds: float = setting(
        "PROVING_JOB_TIMEOUT_SECONDS",
        "ProofCreation lease",
        default=60.0,
        rule=POSITIVE,
    )
    state_transition_timeout_seconds: float = setting(
        "STATE_TRANSITION_TIMEOUT_SECONDS",
        "StateTransition lease",
        default=60.0,
        rule=POSITIVE,
    )
    aggregator_job_timeout_seconds: float = setting(
        "AGGREGATOR_JOB_TIMEOUT_SECONDS",
        "Aggregator lease",
        default=60.0,
        rule=POSITIVE,
    )
    verification_poll_seconds: float | None = setting(
        "VERIFICATION_POLL_SECONDS",
        "override every verification delay",
        rule=POSITIVE,
        unset="each job type's own delays",
    )
    retry_base_delay_seconds: float = setting(
        "RETRY_BASE_DELAY_SECONDS",
        "first back-off of a failed message",
        default=5.0,
        rule=NON_NEGATIVE,
    )
    snos_job_buffer_size: int = setting(
        "SNOS_JOB_BUFFER_SIZE",
        "SnosRun jobs ahead of the oldest unfinished",
        default=50,
        rule=POSITIVE,
    )
    aggregator_job_buffer_size: int = setting(
        "AGGREGATOR_JOB_BUFFER_SIZE",
        "Aggregator jobs in flight",
        default=5,
        rule=POSITIVE,
    )
    max_batch_processing_size: int = setting(
        "MAX_BATCH_PROCESSING_SIZE",
        "blocks batched per trigger run",
        default=10,
        rule=POSITIVE,
    )
    max_priority_queue_size: int = setting(
        "MAX_PRIORITY_QUEUE_SIZE",
        "priority queue admission limit",
        default=20,
        rule=POSITIVE,
    )
    interval_seconds: float = setting(
        "EVENT_BRIDGE_INTERVAL_SECONDS",
        "backstop trigger tick (setup --aws: the EventBridge rate, whole minutes)",
        default=60.0,
        rule=POSITIVE,
    )
    heal_interval_seconds: float = setting(
        "HEAL_INTERVAL_SECONDS",
        "how often forgotten jobs are re-sent",
        default=60.0,
        rule=POSITIVE,
    )
    heal_stale_after_seconds: float = setting(
        "HEAL_STALE_AFTER_SECONDS",
        (
            "a job without progress for this long gets its message again (a backstop: a job's messages are written in "
            "its transaction, or in its outbox with SQS); duplicates are harmless"
        ),
        default=120.0,
        rule=POSITIVE,
    )
    halt_on_failure: bool = setting("HALT_ON_FAILURE", "stop all triggers while any job is Failed", default=False)
    graceful_shutdown_timeout: float = setting(
        "GRACEFUL_SHUTDOWN_TIMEOUT",
        "seconds to finish in-flight work",
        default=120.0,
        rule=NON_NEGATIVE,
    )


@dataclass(frozen=True)
class BackendSettings(SettingsGroup):
    GROUP = Group(
        "backends", "Database, object store and queues: embedded (SQLite and files) by default, PostgreSQL and/or AWS."
    )

    data_dir: str = setting(
        "DATA_DIR",
        "directory of the embedded database and object store",
        default=".orchestrator-data",
    )
    sqlite_path: str | None = setting("SQLITE_PATH", "SQLite database file (default: <data-dir>/orchestrator.db)")
    storage_dir: str | None = setting("STORAGE_DIR", "object store directory (default: <data-dir>/objects)")
    postgres_url: str | None = setting(
        "POSTGRES_URL",
        (
            "PostgreSQL for jobs, batches, locks, settlement transactions and (without --aws-sqs) the queues, shared "
            "by every instance: postgresql://user:password@host:port/db (MongoDB is not supported)"
        ),
        secret=True,
        unset="the embedded SQLite database",
    )
    instance_id: str | None = setting(
        "INSTANCE_ID",
        (
            "this instance's name, the same across its restarts and different for each instance sharing a database "
            "(default <hostname>-<port>); a restarted instance takes back its own leases at once (not in the original)"
        ),
    )
    # AWS (SPEC §16.1-16.2): credentials, region and endpoint from the standard AWS_* variables and profiles
    aws: bool = setting(
        None,
        "use AWS for the backends chosen with --aws-s3, --aws-sqs, --aws-sns",
        default=False,
        required="required with --aws-s3, --aws-sqs or --aws-sns",
    )
    aws_s3: bool = setting(None, "object store on S3 (needs --aws)", default=False)
    aws_sqs: bool = setting(None, "queues on SQS (needs --aws)", default=False)
    aws_sns: bool = setting(None, "alerts to SNS (needs --aws)", default=False)
    aws_prefix: str | None = setting("AWS_PREFIX", "prefix of resource names", metavar="PREFIX", unset="no prefix")
    bucket_identifier: str = setting(
        "AWS_S3_BUCKET_IDENTIFIER",
        "S3 bucket: name (gets '<prefix>-') or ARN",
        default="mo-bucket",
        metavar="NAME|ARN",
    )
    queue_identifier: str = setting(
        "AWS_SQS_QUEUE_IDENTIFIER",
        "queue name template ('{}' = the queue's token; gets '<prefix>_' on SQS) or SQS ARN",
        default="mo_{}_queue",
        metavar="TEMPLATE|ARN",
    )
    topic_identifier: str = setting(
        "AWS_SNS_TOPIC_IDENTIFIER",
        "SNS topic: name (gets '<prefix>_') or ARN",
        default="alerts",
        metavar="NAME|ARN",
    )
    storage_expiration_days: int = setting(
        "STORAGE_EXPIRATION_DAYS",
        "days after which the artifacts of settled batches expire (the S3 lifecycle rule setup makes)",
        default=14,
        rule=POSITIVE,
    )


@dataclass(frozen=True)
class ApiSettings(SettingsGroup):
    GROUP = Group("API and admin", "The HTTP API (health, jobs, metrics), its admin routes and alerts.")

    host: str = setting("HOST", "HTTP API address", default="127.0.0.1", metavar="HOST")
    port: int = setting("PORT", "HTTP API port", default=3000, rule=PORT, metavar="PORT")
    admin_enabled: bool = setting("ADMIN_ENABLED", "mount the admin routes", default=False)
    admin_token: str | None = setting(
        "ADMIN_TOKEN",
        "bearer token of the admin routes",
        secret=True,
        required="required with --admin-enabled",
    )
    alert_webhook_url: str | None = setting(
        "ALERT_WEBHOOK_URL",
        "POST alerts to this URL",
        secret=True,
        unset="no webhook",
    )
    backlog_alert_blocks: int | None = setting(
        "BACKLOG_ALERT_BLOCKS",
        "alert once when this many blocks are produced and not settled (GET /backlog), and once when it clears",
        rule=POSITIVE,
        unset="no backlog alert",
    )
    outbox_alert_seconds: float | None = setting(
        "OUTBOX_ALERT_SECONDS",
        (
            "alert once when the oldest message waiting in the outbox (--aws-sqs: written with its job's change, "
            "not yet sent to SQS) has waited this many seconds, and once when it clears (not in the original)"
        ),
        rule=POSITIVE,
        unset="no outbox alert",
    )


@dataclass(frozen=True)
class TelemetrySettings(SettingsGroup):
    GROUP = Group(
        "telemetry", "The log's progress line, and OpenTelemetry export of metrics, job traces and logs (SPEC §14)."
    )

    progress_interval_seconds: float = setting(
        "PROGRESS_INTERVAL_SECONDS",
        (
            "one INFO line of progress (head, each stage, open batch, lag) this often when something changed, and "
            "every 5 minutes when nothing did; 0 turns it off"
        ),
        default=30.0,
        rule=NON_NEGATIVE,
    )
    otel_collector_endpoint: str | None = setting(
        "OTEL_COLLECTOR_ENDPOINT",
        (
            "OpenTelemetry collector (OTLP over gRPC, e.g. http://127.0.0.1:4317): metrics, job traces (with their "
            "outbound HTTP calls) and logs are exported there; without it only /metrics serves the metrics"
        ),
    )
    otel_service_name: str = setting(
        "OTEL_SERVICE_NAME",
        "service name of the exported telemetry (resources <name>_meter_service and <name>_trace_service)",
        default="orchestrator",
        metavar="NAME",
    )
    otel_export_interval_seconds: float = setting(
        "OTEL_EXPORT_INTERVAL_SECONDS",
        "how often metrics are exported to the collector",
        default=5.0,
        rule=POSITIVE,
    )
