"""What the double records and answers: transactions, events, the core state, JSON-RPC errors and parameter parsing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from madara_orchestrator.devnet.starknet_l2.constants import (
    BLOCK_NUMBER_BEFORE_GENESIS,
    L1_DATA_GAS_PRICE_FRI,
    L1_GAS_PRICE_FRI,
    L2_GAS_PRICE_FRI,
)


class ExecutionStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    REVERTED = "REVERTED"


class FinalityStatus(StrEnum):
    PRE_CONFIRMED = "PRE_CONFIRMED"
    ACCEPTED_ON_L2 = "ACCEPTED_ON_L2"


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreState:
    """What the core contract's ``get_state()`` returns."""

    state_root: int
    block_number: int
    block_hash: int

    @property
    def has_settled(self) -> bool:
        return self.block_number != BLOCK_NUMBER_BEFORE_GENESIS

    @property
    def last_settled_block(self) -> int | None:
        return self.block_number if self.has_settled else None

    def to_felts(self) -> list[int]:
        return [self.state_root, self.block_number, self.block_hash]


GENESIS_CORE_STATE = CoreState(state_root=0, block_number=BLOCK_NUMBER_BEFORE_GENESIS, block_hash=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractCall:
    to: int
    selector: int
    calldata: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    from_address: int
    keys: tuple[int, ...]
    data: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "from_address": hex(self.from_address),
            "keys": [hex(k) for k in self.keys],
            "data": [hex(d) for d in self.data],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class GasUsage:
    l1_gas: int
    l1_data_gas: int
    l2_gas: int

    @property
    def fee_fri(self) -> int:
        return (
            self.l1_gas * L1_GAS_PRICE_FRI + self.l1_data_gas * L1_DATA_GAS_PRICE_FRI + self.l2_gas * L2_GAS_PRICE_FRI
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class L2Transaction:
    """An accepted invoke as the double recorded it (a new value when its block is sealed)."""

    transaction_hash: int
    sender_address: int
    nonce: int
    calls: tuple[ContractCall, ...]
    execution_status: ExecutionStatus
    revert_reason: str | None
    finality_status: FinalityStatus
    block_number: int
    block_hash: int | None
    gas: GasUsage
    events: tuple[Event, ...]
    wire: dict[str, Any] = dataclasses.field(compare=False, hash=False)
    """The transaction as ``getTransactionByHash`` serves it."""

    @property
    def is_reverted(self) -> bool:
        return self.execution_status is ExecutionStatus.REVERTED


class RpcError(Exception):
    """A JSON-RPC error object: the Starknet spec's code, message and (optional) data."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}" + (f" ({data})" if data is not None else ""))
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


BLOCK_NOT_FOUND = 24
TXN_HASH_NOT_FOUND = 29
CONTRACT_NOT_FOUND = 20
CLASS_HASH_NOT_FOUND = 28
CONTRACT_ERROR = 40
TRANSACTION_EXECUTION_ERROR = 41
INVALID_TRANSACTION_NONCE = 52
INSUFFICIENT_RESOURCES_FOR_VALIDATE = 53
VALIDATION_FAILURE = 55
DUPLICATE_TX = 59
UNSUPPORTED_TX_VERSION = 61
