"""The chain and how its blocks are batched and proven: the sequencer, the batching limits, the prover (Atlantic,
SHARP, mock or devnet) and how SNOS and the aggregator run. One field a setting (cli/settings/declare.py)."""

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
from madara_orchestrator.domain.chain import MAX_BLOBS_PER_TXN
from madara_orchestrator.domain.proving import DEFAULT_ARTIFACTS_BASE_URL

PROVERS = ("atlantic", "sharp", "mock", "devnet")
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
SNOS_RUNNERS = ("command", "http", "devnet")
AGGREGATOR_RUNNERS = ("command", "http", "devnet")


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
    max_num_blobs: int = setting(
        "MAX_NUM_BLOBS",
        f"blobs per settlement transaction (1 to {MAX_BLOBS_PER_TXN})",
        default=MAX_BLOBS_PER_TXN,
        rule=BATCHING,
    )
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


ONE_VERIFIER_SIGNER = "this, --mock-verifier-signer-url or --mock-verifier-kms-key-id (exactly one)"


@dataclass(frozen=True)
class ProverSettings(SettingsGroup):
    GROUP = Group(
        "prover", "Who proves the SNOS batches and registers their facts (--prover picks one; see the next two groups)."
    )

    prover: str | None = setting(
        "PROVER",
        (
            "prover backend: atlantic, sharp, mock (no proofs; facts registered on a mock verifier) or devnet (no "
            "proofs, no L1 registration: for the devnet settlement ledger)"
        ),
        choices=PROVERS,
        required="required",
    )
    prover_layout_name: str = setting(
        "PROVER_LAYOUT_NAME",
        "Cairo layout the prover proves with (sent to Atlantic when it settles on Starknet)",
        default="dynamic",
        choices=LAYOUTS,
    )
    mock_verifier_address: str | None = setting(
        "MOCK_VERIFIER_ADDRESS",
        "fact registry the mock prover registers facts in (without it every settlement reverts on L1)",
        required="required with --prover mock",
    )
    mock_verifier_private_key: str | None = setting(
        "MOCK_VERIFIER_PRIVATE_KEY",
        (
            "key that registers facts with --prover mock (never the settlement key: they would compete for nonces; the "
            "original signs with the settlement key)"
        ),
        secret=True,
        required=f"{ONE_VERIFIER_SIGNER} with --prover mock",
    )
    mock_verifier_signer_url: str | None = setting(
        "MOCK_VERIFIER_SIGNER_URL",
        (
            "remote signer that holds the mock verifier key (with --ethereum-signer-tls-*/-header); its account "
            "in --mock-verifier-signer-address"
        ),
        secret=True,
        required=f"{ONE_VERIFIER_SIGNER} with --prover mock",
    )
    mock_verifier_signer_address: str | None = setting(
        "MOCK_VERIFIER_SIGNER_ADDRESS",
        "the account the remote signer signs fact registrations for",
        required="required with --mock-verifier-signer-url",
    )
    mock_verifier_kms_key_id: str | None = setting(
        "MOCK_VERIFIER_KMS_KEY_ID",
        "AWS KMS key (ECC_SECG_P256K1) that registers facts with --prover mock",
        required=f"{ONE_VERIFIER_SIGNER} with --prover mock",
    )
    store_audit_artifacts: bool = setting("STORE_AUDIT_ARTIFACTS", "keep proofs", default=False)


@dataclass(frozen=True)
class AtlanticSettings(SettingsGroup):
    GROUP = Group("prover: Atlantic", "With --prover atlantic: Herodotus' Atlantic proving service.")

    atlantic_api_key: str | None = setting(
        "ATLANTIC_API_KEY",
        "Atlantic API key",
        secret=True,
        required="required with --prover atlantic",
    )
    atlantic_service_url: str | None = setting(
        "ATLANTIC_SERVICE_URL",
        "Atlantic API base URL (with --mock-atlantic-server: the in-process mock)",
        required="required with --prover atlantic, unless --mock-atlantic-server",
    )
    atlantic_network: str | None = setting(
        "ATLANTIC_NETWORK",
        "MAINNET or TESTNET (any case)",
        choices=("mainnet", "testnet"),
        metavar="{mainnet,testnet}",
        required="required with --prover atlantic",
    )
    atlantic_prover_type: str | None = setting(
        "ATLANTIC_PROVER_TYPE",
        "Atlantic's prover type (otherwise unused)",
        metavar="TYPE",
        required="required with --prover atlantic",
    )
    atlantic_settlement_layer: str | None = setting(
        "ATLANTIC_SETTLEMENT_LAYER",
        "where Atlantic's facts are checked: ethereum or starknet",
        choices=SETTLEMENT_LAYERS,
        required="required with --prover atlantic",
    )
    atlantic_mock_fact_hash: str | None = setting(
        "ATLANTIC_MOCK_FACT_HASH",
        "true: facts and proofs are mocked by Atlantic and not checked on L1; false: checked",
        metavar="{true,false}",
        required="required with --prover atlantic",
    )
    atlantic_rpc_node_url: str | None = setting(
        "ATLANTIC_RPC_NODE_URL",
        "L1 RPC of the fact checker (the original always requires it)",
        required="required with --prover atlantic, unless --atlantic-mock-fact-hash true",
    )
    atlantic_verifier_contract_address: str | None = setting(
        "ATLANTIC_VERIFIER_CONTRACT_ADDRESS",
        "GPS verifier the facts are checked on",
        required="required with --prover atlantic, unless --atlantic-mock-fact-hash true",
    )
    cairo_verifier_program_hash: str | None = setting(
        "CAIRO_V0_VERIFIER_PROGRAM_HASH",
        "program hash of the Cairo verifier for L2 proof verification",
        metavar="FELT",
        required="required with --prover atlantic on --layer l3",
    )
    atlantic_verifier_cairo_vm: str = setting(
        "ATLANTIC_CAIRO_VM",
        "Cairo VM Atlantic runs the PIE with: rust or python",
        default="rust",
        choices=("rust", "python"),
    )
    atlantic_verifier_result: str = setting(
        "ATLANTIC_RESULT",
        "what Atlantic produces for a child query (a query step, e.g. proof-generation, proof-verification)",
        default="proof-generation",
        metavar="STEP",
    )
    atlantic_sharp_prover: str = setting(
        "ATLANTIC_SHARP_PROVER",
        "prover Atlantic uses: stone or stwo",
        default="stone",
        choices=("stone", "stwo"),
    )
    atlantic_artifacts_base_url: str = setting(
        "ATLANTIC_ARTIFACTS_BASE_URL",
        "where Atlantic's artifacts (PIEs, DA blobs, proofs) are downloaded from",
        default=DEFAULT_ARTIFACTS_BASE_URL,
    )
    atlantic_webhook_secret: str | None = setting(
        "ATLANTIC_WEBHOOK_SECRET",
        (
            "shared secret of Atlantic's completion webhooks (16+ URL-safe characters): POST "
            "/webhooks/atlantic/<secret>, or the body signed in X-Atlantic-Signature: sha256=<HMAC-SHA256>; without it "
            "the webhook is off and verification only polls"
        ),
        secret=True,
    )
    mock_atlantic_server: bool = setting(
        "MOCK_ATLANTIC_SERVER",
        (
            f"start a mock Atlantic server in this process on 127.0.0.1:{MOCK_ATLANTIC_PORT} and use it (only with "
            "--prover atlantic --atlantic-network TESTNET; for local development)"
        ),
        default=False,
    )


@dataclass(frozen=True)
class SharpSettings(SettingsGroup):
    GROUP = Group("prover: SHARP", "With --prover sharp: StarkWare's SHARP, over mutual TLS (L2 only).")

    sharp_customer_id: str | None = setting(
        "SHARP_CUSTOMER_ID",
        "SHARP customer id",
        required="required with --prover sharp",
    )
    sharp_url: str | None = setting("SHARP_URL", "SHARP API base URL, https", required="required with --prover sharp")
    sharp_user_crt_file: str | None = setting(
        "SHARP_USER_CRT_FILE",
        "PEM file of the client certificate for mutual TLS",
        required="required with --prover sharp",
    )
    sharp_user_key_file: str | None = setting(
        "SHARP_USER_KEY_FILE",
        "PEM file of the client private key (PKCS#8) for mutual TLS",
        required="required with --prover sharp",
    )
    sharp_server_crt_file: str | None = setting(
        "SHARP_SERVER_CRT_FILE",
        "PEM file of the server certificate, trusted as a root",
        required="required with --prover sharp",
    )
    sharp_rpc_node_url: str | None = setting(
        "SHARP_RPC_NODE_URL",
        "L1 RPC where the GPS verifier is asked whether the aggregator fact is valid",
        required="required with --prover sharp",
    )
    gps_verifier_contract_address: str | None = setting(
        "GPS_VERIFIER_CONTRACT_ADDRESS",
        "GPS verifier (fact registry) on L1",
        required="required with --prover sharp",
    )
    sharp_settlement_layer: str = setting(
        "SHARP_SETTLEMENT_LAYER",
        "ethereum (facts checked on the GPS verifier) or starknet (not checked)",
        default="ethereum",
        choices=SETTLEMENT_LAYERS,
    )


@dataclass(frozen=True)
class SnosSettings(SettingsGroup):
    GROUP = Group("SNOS", "How the Starknet OS is run on each SNOS batch (docs/snos-runner.md).")

    snos_runner: str | None = setting(
        "SNOS_RUNNER",
        (
            "how SNOS runs: command (--snos-command, once per SNOS batch), http (a runner service at "
            "--snos-runner-url) or devnet (a stand-in: the OS output built from the sequencer's state updates; no PIE "
            "a prover takes); see docs/snos-runner.md"
        ),
        choices=AGGREGATOR_RUNNERS,
        required="required",
    )
    snos_command: str | None = setting(
        "SNOS_COMMAND",
        (
            "the program (a path or a name on PATH, optionally with its own arguments) that runs SNOS on one batch and "
            "writes cairo_pie.zip and os_output.json"
        ),
        metavar="COMMAND",
        required="required with --snos-runner command",
    )
    snos_runner_url: str | None = setting(
        "SNOS_RUNNER_URL",
        "base URL of the SNOS runner service (POST /run, GET /health)",
        secret=True,
        required="required with --snos-runner http",
    )
    snos_timeout_seconds: float = setting(
        "SNOS_TIMEOUT_SECONDS",
        (
            "with --snos-runner command|http: longest one SNOS run may take; then the command is killed with its "
            "process group (or the request abandoned) and the job retried"
        ),
        default=3600.0,
        rule=POSITIVE,
    )
    snos_work_dir: str | None = setting(
        "SNOS_WORK_DIR",
        "with --snos-runner command: where each run gets its output directory (default: <data-dir>/snos)",
    )
    rpc_for_snos: str | None = setting("RPC_FOR_SNOS", "RPC used by SNOS (default: the sequencer RPC)", metavar="URL")
    snos_layout_name: str = setting(
        "SNOS_LAYOUT_NAME",
        "Cairo layout SNOS runs with",
        default="all_cairo",
        choices=LAYOUTS,
    )
    snos_full_output: bool = setting("SNOS_FULL_OUTPUT", "recorded in SnosRun metadata", default=False)


@dataclass(frozen=True)
class AggregatorSettings(SettingsGroup):
    GROUP = Group(
        "aggregator",
        (
            "With --prover sharp, mock or devnet: how the aggregator runs over each aggregator batch's SNOS outputs "
            "(docs/aggregator-runner.md)."
        ),
    )

    aggregator_runner: str | None = setting(
        "AGGREGATOR_RUNNER",
        (
            "how the aggregator runs over each aggregator batch's SNOS outputs: command (--aggregator-command), http "
            "(a runner service at --aggregator-runner-url) or devnet (a stand-in whose PIE, program hash and messages "
            "no prover or core contract accepts); see docs/aggregator-runner.md"
        ),
        choices=AGGREGATOR_RUNNERS,
        required="required with --prover sharp, --prover mock or --prover devnet",
    )
    aggregator_command: str | None = setting(
        "AGGREGATOR_COMMAND",
        (
            "the program (a path or a name on PATH, optionally with its own arguments) that runs the aggregator on one "
            "batch and writes cairo_pie.zip, program_output.json and da_segment.json"
        ),
        metavar="COMMAND",
        required="required with --aggregator-runner command",
    )
    aggregator_runner_url: str | None = setting(
        "AGGREGATOR_RUNNER_URL",
        "base URL of the aggregator runner service (POST /aggregate, GET /health)",
        secret=True,
        required="required with --aggregator-runner http",
    )
    aggregator_timeout_seconds: float = setting(
        "AGGREGATOR_TIMEOUT_SECONDS",
        (
            "with --aggregator-runner command|http: longest one aggregator run may take; then it is killed with its "
            "process group (or the request abandoned) and the job retried"
        ),
        default=3600.0,
        rule=POSITIVE,
    )
