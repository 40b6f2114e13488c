"""Settings of the engine: how blocks are batched, and the concurrency, leases and timers of the jobs."""

from __future__ import annotations

from dataclasses import dataclass

from madara_orchestrator.cli.settings.declare import (
    BATCHING,
    NON_NEGATIVE,
    POSITIVE,
    Group,
    SettingsGroup,
    setting,
)


@dataclass(frozen=True)
class BatchingSettings(SettingsGroup):
    GROUP = Group(
        "batching",
        ("How blocks are grouped: SNOS batches (one SNOS run each) inside aggregator batches (one settlement each)."),
    )

    max_batch_time_seconds: int = setting(
        "MAX_BATCH_TIME_SECONDS",
        (
            "a batch this old closes, even when no new block comes (required in the original; 300 s keeps settlement "
            "latency bounded on a quiet chain)"
        ),
        default=300,
        rule=BATCHING,
    )
    max_batch_size: int = setting(
        "MAX_BATCH_SIZE",
        "blocks per aggregator batch (one settlement)",
        default=100,
        rule=BATCHING,
    )
    max_blocks_per_snos_batch: int = setting(
        "MAX_BLOCKS_PER_SNOS_BATCH",
        "blocks per SNOS batch (one SNOS run)",
        default=10,
        rule=BATCHING,
    )
    fixed_blocks_per_snos_batch: int | None = setting(
        "FIXED_BLOCKS_PER_SNOS_BATCH",
        "exactly this many blocks per SNOS batch, ignoring every other SNOS rule",
        rule=BATCHING,
        unset="the other SNOS batch limits decide",
    )
    max_snos_batches_per_aggregator_batch: int = setting(
        "MAX_SNOS_BATCHES_PER_AGGREGATOR_BATCH",
        "SNOS batches per aggregator batch (enforced here; the original ignores it)",
        default=50,
        rule=BATCHING,
    )
    max_num_blobs: int = setting("MAX_NUM_BLOBS", "blobs per settlement transaction (1 to 6)", default=6, rule=BATCHING)
    blob_size_buffer: int = setting("BLOB_SIZE_BUFFER", "felts kept free in the last blob", default=15, rule=BATCHING)
    max_aggregator_input_size: int = setting(
        "MAX_AGGREGATOR_INPUT_SIZE",
        "felts of aggregator input",
        default=750_000,
        rule=BATCHING,
    )
    default_empty_block_proving_gas: int = setting(
        "DEFAULT_EMPTY_BLOCK_PROVING_GAS",
        "proving gas counted for a block that reports none",
        default=1_500_000,
        rule=BATCHING,
        metavar="GAS",
    )
    bouncer_weights_limit_file: str | None = setting(
        "BOUNCER_WEIGHTS_LIMIT_FILE",
        ("JSON object of bouncer weight limits per SNOS batch (missing fields keep the defaults of SPEC §5.3)"),
        unset="the limits of SPEC §5.3",
    )
    batching_worker_lock_duration: float = setting(
        "BATCHING_LOCK_DURATION_SECONDS",
        (
            "batching lease, renewed while batching runs (the original holds 3600 s without renewal, so a crashed "
            "instance stalls batching for an hour)"
        ),
        default=60.0,
        rule=POSITIVE,
    )
    allow_starknet_versions: str | None = setting(
        "ALLOW_STARKNET_VERSIONS",
        (
            "Starknet versions batched besides the known ones (comma-separated), encoded like the nearest lower known "
            "one"
        ),
        metavar="VERSIONS",
        unset="only the known 0.13.2-0.14.2",
    )
    replay_bounds_rpc_url: str | None = setting(
        "REPLAY_BOUNDS_RPC_URL",
        "reference node: batching stops before a block whose hash differs there (SPEC §5.9)",
        unset="no check",
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
            "a job without progress for this long gets its message again: one lost when a process died between writing "
            "the job and sending its message (SQS cannot share the database's transaction); duplicates are harmless"
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
