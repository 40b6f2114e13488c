"""Settings of the chain (the sequencer, the layer, the blocks to carry) and of the backends (database, object
store, queues: embedded, PostgreSQL or AWS)."""

from __future__ import annotations

from dataclasses import dataclass

from madara_orchestrator.cli.settings.declare import (
    NON_NEGATIVE,
    POSITIVE,
    Group,
    SettingsGroup,
    setting,
)


@dataclass(frozen=True)
class ChainSettings(SettingsGroup):
    GROUP = Group("chain", "The appchain's sequencer (Madara), its layer and the blocks to carry.")

    layer: str = setting(
        "LAYER",
        "l2 (settles on Ethereum or the devnet ledger) or l3 (settles on Starknet: --settle-on-starknet)",
        default="l2",
        choices=("l2", "l3"),
    )
    da_public_keys: str | None = setting(
        "DA_PUBLIC_KEYS",
        (
            "DA committee public keys, comma-separated felts (0x hex): the OS encrypts the state diff for them, and "
            "they enter the OS config hash (Atlantic buckets' public_keys; without it: no encryption)"
        ),
        metavar="FELT[,FELT...]",
    )
    madara_rpc_url: str | None = setting("MADARA_RPC_URL", "Starknet JSON-RPC of the sequencer", required="required")
    madara_feeder_gateway_url: str | None = setting(
        "MADARA_FEEDER_GATEWAY_URL",
        (
            "feeder gateway, for bouncer weights (default: the RPC URL, its query kept as the request's query; a "
            "Madara node serves it on its --gateway-port, 8080 by default)"
        ),
    )
    min_block_to_process: int = setting("MIN_BLOCK_NO_TO_PROCESS", "first block", default=0, rule=NON_NEGATIVE)
    max_block_to_process: int | None = setting(
        "MAX_BLOCK_NO_TO_PROCESS",
        "last block",
        rule=NON_NEGATIVE,
        unset="no last block",
    )
    chain_poll_interval_seconds: float = setting(
        "CHAIN_POLL_INTERVAL_SECONDS",
        "sequencer head polling",
        default=2.0,
        rule=POSITIVE,
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
