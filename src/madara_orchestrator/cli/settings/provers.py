"""Settings of the prover: which one, and those of Atlantic and SHARP."""

from __future__ import annotations

from dataclasses import dataclass

from madara_orchestrator.cli.settings.declare import (
    Group,
    SettingsGroup,
    setting,
)
from madara_orchestrator.provers.atlantic import DEFAULT_ARTIFACTS_BASE_URL

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
        required="required with --prover mock",
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
