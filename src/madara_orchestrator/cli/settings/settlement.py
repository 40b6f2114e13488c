"""Settings of settlement: where state updates settle, on Ethereum (L2) or Starknet (L3)."""

from __future__ import annotations

from dataclasses import dataclass

from madara_orchestrator.cli.settings.declare import (
    NON_NEGATIVE,
    POSITIVE,
    Group,
    SettingsGroup,
    setting,
)

ANY_SETTLEMENT = "exactly one --settle-on-* is required"


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
        "operator key",
        secret=True,
        required="required with --settle-on-ethereum",
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
            "--ethereum-private-key"
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
