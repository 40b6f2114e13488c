"""A double of a Starknet L2 node: the settlement layer an L3 appchain settles on.

No Starknet node runs on this machine, so this speaks the real Starknet JSON-RPC (spec 0.10, what
starknet-py 0.30 expects) well enough for starknet-py's ``FullNodeClient`` and single-owner ``Account``
(v3 invokes) to work against it unmodified. It hosts three kinds of built-in contracts:

- dev accounts (OpenZeppelin-like): a v3 invoke is checked as the sequencer and the account would check
  it — version 0x3 (61), known sender (55), hash not seen before (59), nonce equal to the account's
  pre-confirmed nonce (52), resource bounds covering the fixed gas model (53), signature ``[r, s]`` of the
  transaction hash by the account's key (55), Cairo-1 ``__execute__`` calldata (55) — and else rejected;
- a Piltover core contract (keep-starknet-strange/piltover, ``src/appchain.cairo`` and its state, config and
  messaging components, read at main of 2025-05-12): ``update_state(snos_output, layout_bridge_output)``
  from the owner/operator makes Piltover's checks, in Piltover's order and with its error strings:
  ``snos_output[2]`` is the configured SNOS program hash ('snos: invalid program hash'),
  ``layout_bridge_output[2]`` the layout bridge program hash ('lb: invalid program hash'),
  ``layout_bridge_output[4]`` the Poseidon hash of ``snos_output`` ('snos: invalid output hash'); the
  (bootloaded) SNOS output is deserialized as ``deserialize_os_output`` does (3 bootloader words, the
  10-word header, the KZG section when ``use_kzg_da``, the messages to L1 and to L2: a malformed segment
  fails with Cairo's panic, e.g. 'Option::unwrap failed.', 'Invalid n_messages_to_l1', 'Invalid payload
  size', 'Invalid from address'); its config hash is the configured one ('snos: invalid config hash'); the
  fact ``poseidon(bootloader_program_hash, poseidon(layout_bridge_output))`` has a verification in the
  fact registry ('no fact registered'), the first with more than 50 security bits; the state component
  wants the stored block number to be the output's previous block number ('State: invalid block number')
  and the stored root its initial root ('State: invalid previous root'); messages to L1 become consumable,
  messages to L2 must have been sent with ``send_message_to_appchain`` ('INVALID_MESSAGE_TO_SEAL').
  Then ``LogStateUpdate``. ``get_state()`` returns ``[state_root, block_number, block_hash]`` (block number
  ``FELT_PRIME - 1``, i.e. -1, before the first settlement); ``get_program_info``/``set_program_info``,
  ``get_facts_registry`` and the messaging entry points (send, status, consume; no cancellation) are there.
  Piltover version: the stored Piltover still declares ``update_state(snos_output, layout_bridge_output,
  onchain_data_hash: felt252, onchain_data_size: u256)``, while the original orchestrator (newer) sends the
  two spans only and the current Piltover takes exactly those two. This double follows the current form:
  exactly two spans, any word more fails as Cairo's ABI wrapper does ('Input too long for arguments'), a
  missing one 'Failed to deserialize param #N'; it does not emit ``LogStateTransitionFact`` (made from the
  on-chain data words that form no longer has). Every other check is Piltover's as read;
- an Integrity fact registry (HerodotusDev/integrity): ``register_fact(verifier_config, fact_hash,
  security_bits)`` as Integrity's mocked registry takes it (verifier accounts only: the double cannot check a
  STARK proof, so only the mock prover registers), ``get_all_verifications_for_fact_hash(fact_hash)`` and
  ``get_verification(verification_hash)``, with Integrity's verification hashes.

A contract's failure reads as Starknet reports a Cairo panic: ``0x<felt> ('<short string>')``, or the
text of a byte-array panic in double quotes. An accepted transaction always lands: a failing call reverts
it (REVERTED, with a reason; nonce consumed), as on Starknet. Blocks are sealed at once per transaction
(``block_time_s == 0``), every ``block_time_s`` by ``start()``, or by ``seal_block()``;
``hold_blocks(True)`` keeps transactions pre-confirmed.

It does not run Cairo, verify STARK proofs, charge fees (no balances: the fee is computed from a fixed gas
model and reported), cancel messages, or persist anything. Roots and block hashes are Poseidon digests of
the double's own state, not Patricia-tree roots.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Literal

from Crypto.Hash import keccak
from poseidon_py.poseidon_hash import poseidon_hash_many
from starknet_py.constants import EC_ORDER
from starknet_py.hash.selector import get_selector_from_name
from starknet_py.hash.transaction import (
    CommonTransactionV3Fields,
    TransactionHashPrefix,
    compute_invoke_v3_transaction_hash,
)
from starknet_py.hash.utils import private_to_stark_key, verify_message_signature
from starknet_py.net.client_models import DAMode, ResourceBounds, ResourceBoundsMapping
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from madara_orchestrator.devnet.jsonrpc import jsonrpc_response
from madara_orchestrator.devnet.layout_bridge import (
    BOOTLOADER_PROGRAM_HASH,
    BRIDGE_VERIFIER_CONFIG,
    DEVNET_CAIRO_VERIFIER_PROGRAM_HASH,
    FELT_PRIME,
    VerifierConfiguration,
    l2_fact,
    output_hash,
)
from madara_orchestrator.devnet.program_output import DEVNET_CONFIG_HASH, DEVNET_OS_PROGRAM_HASH
from madara_orchestrator.starknet.os_output import MessageToL1, MessageToL2, OsOutput, OsOutputHeader

SPEC_VERSION = "0.10.2"
"""The JSON-RPC spec version served: what starknet-py 0.30 (``EXPECTED_RPC_VERSION``) expects."""
STARKNET_VERSION = "0.14.0"
DEFAULT_CHAIN_ID = "SN_DEVNET_L2"
QUERY_VERSION_BASE = 2**128
"""Added to the version of a transaction signed only for fee estimation (never executable)."""
BLOCK_NUMBER_BEFORE_GENESIS = FELT_PRIME - 1
"""The core contract's block number before anything is settled: -1 as a felt (Piltover's ``Felt::MAX``)."""
BOOTLOADER_HEADER_WORDS = 3
"""What Piltover skips before the OS output: the bootloader's task count, task output size and program hash."""
SNOS_HEADER_WORDS = 10
"""initial_root, final_root, prev_block_number, new_block_number, prev_block_hash, new_block_hash,
os_program_hash, starknet_os_config_hash, use_kzg_da, full_output."""
MIN_SECURITY_BITS = 50
"""Piltover wants the first verification of the fact to have more than this many security bits."""
U32_BOUND = 2**32
CONTRACT_ADDRESS_BOUND = 2**251

# The fixed gas model: what a transaction consumes depends only on its size, never on its outcome.
L1_GAS_PRICE_FRI = 10**13
L1_DATA_GAS_PRICE_FRI = 10**9
L2_GAS_PRICE_FRI = 10**9
WEI_PER_FRI_DIVISOR = 1000
"""Block headers also quote prices in wei: the FRI price divided by this."""
L2_GAS_PER_TX = 1_000_000
L2_GAS_PER_WORD = 10_000
"""Per calldata and signature word."""
L1_DATA_GAS_PER_TX = 256
L1_GAS_PER_TX = 0


def _label_felt(label: str, modulus: int = 2**250) -> int:
    return int.from_bytes(keccak.new(digest_bits=256, data=label.encode()).digest(), "big") % modulus


@dataclass(frozen=True, slots=True)
class DevAccount:
    """A pre-deployed account with a fixed key, usable with starknet-py's ``Account`` and ``KeyPair``."""

    address: int
    private_key: int
    public_key: int


def _dev_account(index: int) -> DevAccount:
    private_key = _label_felt(f"madara-orchestrator devnet l2 account {index} key", EC_ORDER - 1) + 1
    return DevAccount(
        address=_label_felt(f"madara-orchestrator devnet l2 account {index} address"),
        private_key=private_key,
        public_key=private_to_stark_key(private_key),
    )


DEV_ACCOUNTS: tuple[DevAccount, ...] = tuple(_dev_account(i) for i in range(3))
"""[0] the operator (calls ``update_state``), [1] the verifier (calls ``register_fact``), [2] a bystander."""
OPERATOR_ACCOUNT = DEV_ACCOUNTS[0]
VERIFIER_ACCOUNT = DEV_ACCOUNTS[1]
CORE_CONTRACT_ADDRESS = _label_felt("madara-orchestrator devnet l2 core contract")
FACT_REGISTRY_ADDRESS = _label_felt("madara-orchestrator devnet l2 fact registry")
ACCOUNT_CLASS_HASH = _label_felt("madara-orchestrator devnet l2 account class", FELT_PRIME)
CORE_CONTRACT_CLASS_HASH = _label_felt("madara-orchestrator devnet l2 core contract class", FELT_PRIME)
FACT_REGISTRY_CLASS_HASH = _label_felt("madara-orchestrator devnet l2 fact registry class", FELT_PRIME)
SEQUENCER_ADDRESS = _label_felt("madara-orchestrator devnet l2 sequencer")

EXECUTE_SELECTOR = get_selector_from_name("__execute__")
UPDATE_STATE_SELECTOR = get_selector_from_name("update_state")
GET_STATE_SELECTOR = get_selector_from_name("get_state")
GET_PROGRAM_INFO_SELECTOR = get_selector_from_name("get_program_info")
SET_PROGRAM_INFO_SELECTOR = get_selector_from_name("set_program_info")
GET_FACTS_REGISTRY_SELECTOR = get_selector_from_name("get_facts_registry")
SEND_MESSAGE_TO_APPCHAIN_SELECTOR = get_selector_from_name("send_message_to_appchain")
SN_TO_APPCHAIN_MESSAGES_SELECTOR = get_selector_from_name("sn_to_appchain_messages")
APPCHAIN_TO_SN_MESSAGES_SELECTOR = get_selector_from_name("appchain_to_sn_messages")
CONSUME_MESSAGE_FROM_APPCHAIN_SELECTOR = get_selector_from_name("consume_message_from_appchain")
REGISTER_FACT_SELECTOR = get_selector_from_name("register_fact")
GET_ALL_VERIFICATIONS_SELECTOR = get_selector_from_name("get_all_verifications_for_fact_hash")
GET_VERIFICATION_SELECTOR = get_selector_from_name("get_verification")
LOG_STATE_UPDATE_KEY = get_selector_from_name("LogStateUpdate")
FACT_REGISTERED_KEY = get_selector_from_name("FactRegistered")
PROGRAM_INFO_CHANGED_KEY = get_selector_from_name("ProgramInfoChanged")
MESSAGE_SENT_KEY = get_selector_from_name("MessageSent")
MESSAGE_CONSUMED_KEY = get_selector_from_name("MessageConsumed")
MESSAGE_TO_STARKNET_RECEIVED_KEY = get_selector_from_name("MessageToStarknetReceived")
MESSAGE_TO_APPCHAIN_SEALED_KEY = get_selector_from_name("MessageToAppchainSealed")


def _poseidon(values: Sequence[int]) -> int:
    return int(poseidon_hash_many(list(values)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgramInfo:
    """Piltover's ``ProgramInfo`` (``config/interface.cairo``), in its field order."""

    bootloader_program_hash: int
    snos_config_hash: int
    snos_program_hash: int
    layout_bridge_program_hash: int

    def to_felts(self) -> list[int]:
        return [
            self.bootloader_program_hash,
            self.snos_config_hash,
            self.snos_program_hash,
            self.layout_bridge_program_hash,
        ]


DEVNET_PROGRAM_INFO = ProgramInfo(
    bootloader_program_hash=BOOTLOADER_PROGRAM_HASH,
    snos_config_hash=DEVNET_CONFIG_HASH,
    snos_program_hash=DEVNET_OS_PROGRAM_HASH,
    layout_bridge_program_hash=DEVNET_CAIRO_VERIFIER_PROGRAM_HASH,
)
"""The programs the devnet runs: its SNOS runner's program and config, the layout bridge it passes as
``--cairo-verifier-program-hash``, and the bootloader."""


def message_hash_to_appchain(
    from_address: int, to_address: int, selector: int, payload: Sequence[int], nonce: int
) -> int:
    """Piltover's ``compute_message_hash_sn_to_appc``."""
    return _poseidon([from_address, to_address, nonce, selector, len(payload), *payload])


def message_hash_to_starknet(from_address: int, to_address: int, payload: Sequence[int]) -> int:
    """Piltover's ``compute_message_hash_appc_to_sn``."""
    return _poseidon([from_address, to_address, len(payload), *payload])


def verification_hash(fact_hash: int, verifier_config: VerifierConfiguration, security_bits: int) -> int:
    """Integrity's ``get_verification_hash(fact_hash, get_verifier_config_hash(config), security_bits)``."""
    return _poseidon([fact_hash, _poseidon(verifier_config.to_felts()), security_bits])


# -- values the double exposes ---------------------------------------------------------------------


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
        return {"from_address": hex(self.from_address), "keys": _hexes(self.keys), "data": _hexes(self.data)}


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


# -- JSON-RPC plumbing --------------------------------------------------------------------------------


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


def _invalid_params(detail: str) -> RpcError:
    return RpcError(-32602, "Invalid params", detail)


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


def _hexes(values: Sequence[int]) -> list[str]:
    return [hex(v) for v in values]


def _felt(value: Any, what: str, *, bound: int = FELT_PRIME) -> int:
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            number = int(value, 16)
        except ValueError:
            number = -1
        if 0 <= number < bound:
            return number
    raise _invalid_params(f"{what}: expected a 0x-prefixed hex number below {bound:#x}, got {value!r}")


def _felts(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise _invalid_params(f"{what}: expected a list of felts, got {value!r}")
    return tuple(_felt(v, f"{what}[{i}]") for i, v in enumerate(value))


def _field(obj: dict[str, Any], name: str, what: str) -> Any:
    if name not in obj:
        raise _invalid_params(f"{what}: missing field {name!r}")
    return obj[name]


# -- transactions on the wire -------------------------------------------------------------------------


_RESOURCES = ("l1_gas", "l2_gas", "l1_data_gas")


@dataclass(frozen=True, slots=True, kw_only=True)
class InvokeV3:
    """A broadcasted INVOKE_TXN_V3, parsed."""

    sender_address: int
    calldata: tuple[int, ...]
    version: int
    signature: tuple[int, ...]
    nonce: int
    resource_bounds: ResourceBoundsMapping
    tip: int
    paymaster_data: tuple[int, ...]
    account_deployment_data: tuple[int, ...]
    nonce_data_availability_mode: DAMode
    fee_data_availability_mode: DAMode
    proof_facts: tuple[int, ...] | None

    @classmethod
    def from_json(cls, raw: Any) -> InvokeV3:
        what = "invoke_transaction"
        if not isinstance(raw, dict):
            raise _invalid_params(f"{what}: expected an object, got {raw!r}")
        if raw.get("type", "INVOKE") != "INVOKE":
            raise _invalid_params(f"{what}: only INVOKE transactions are served, got type {raw.get('type')!r}")
        bounds_raw = _field(raw, "resource_bounds", what)
        if not isinstance(bounds_raw, dict):
            raise _invalid_params(f"{what}.resource_bounds: expected an object")
        bounds: dict[str, ResourceBounds] = {}
        for resource in _RESOURCES:
            entry = _field(bounds_raw, resource, f"{what}.resource_bounds")
            if not isinstance(entry, dict):
                raise _invalid_params(f"{what}.resource_bounds.{resource}: expected an object")
            where = f"{what}.resource_bounds.{resource}"
            bounds[resource] = ResourceBounds(
                max_amount=_felt(_field(entry, "max_amount", where), f"{where}.max_amount", bound=2**64),
                max_price_per_unit=_felt(
                    _field(entry, "max_price_per_unit", where), f"{where}.max_price_per_unit", bound=2**128
                ),
            )
        proof_facts = raw.get("proof_facts")
        return cls(
            sender_address=_felt(_field(raw, "sender_address", what), "sender_address"),
            calldata=_felts(_field(raw, "calldata", what), "calldata"),
            version=_felt(_field(raw, "version", what), "version"),
            signature=_felts(_field(raw, "signature", what), "signature"),
            nonce=_felt(_field(raw, "nonce", what), "nonce"),
            resource_bounds=ResourceBoundsMapping(
                l1_gas=bounds["l1_gas"], l2_gas=bounds["l2_gas"], l1_data_gas=bounds["l1_data_gas"]
            ),
            tip=_felt(_field(raw, "tip", what), "tip", bound=2**64),
            paymaster_data=_felts(_field(raw, "paymaster_data", what), "paymaster_data"),
            account_deployment_data=_felts(_field(raw, "account_deployment_data", what), "account_deployment_data"),
            nonce_data_availability_mode=_da_mode(_field(raw, "nonce_data_availability_mode", what)),
            fee_data_availability_mode=_da_mode(_field(raw, "fee_data_availability_mode", what)),
            proof_facts=None if proof_facts is None else _felts(proof_facts, "proof_facts"),
        )

    def calculate_hash(self, chain_id: int) -> int:
        """The transaction hash exactly as Starknet (and starknet-py's signer) computes it."""
        common = CommonTransactionV3Fields(
            tx_prefix=TransactionHashPrefix.INVOKE,
            version=self.version,
            address=self.sender_address,
            tip=self.tip,
            resource_bounds=self.resource_bounds,
            paymaster_data=list(self.paymaster_data),
            chain_id=chain_id,
            nonce=self.nonce,
            nonce_data_availability_mode=self.nonce_data_availability_mode,
            fee_data_availability_mode=self.fee_data_availability_mode,
        )
        return compute_invoke_v3_transaction_hash(
            account_deployment_data=list(self.account_deployment_data),
            calldata=list(self.calldata),
            common_fields=common,
            proof_facts=None if self.proof_facts is None else list(self.proof_facts),
        )

    def to_json(self, transaction_hash: int) -> dict[str, Any]:
        bounds = self.resource_bounds
        wire: dict[str, Any] = {
            "type": "INVOKE",
            "transaction_hash": hex(transaction_hash),
            "sender_address": hex(self.sender_address),
            "calldata": _hexes(self.calldata),
            "version": hex(self.version),
            "signature": _hexes(self.signature),
            "nonce": hex(self.nonce),
            "resource_bounds": {
                name: {"max_amount": hex(b.max_amount), "max_price_per_unit": hex(b.max_price_per_unit)}
                for name, b in (
                    ("l1_gas", bounds.l1_gas),
                    ("l2_gas", bounds.l2_gas),
                    ("l1_data_gas", bounds.l1_data_gas),
                )
            },
            "tip": hex(self.tip),
            "paymaster_data": _hexes(self.paymaster_data),
            "account_deployment_data": _hexes(self.account_deployment_data),
            "nonce_data_availability_mode": self.nonce_data_availability_mode.name,
            "fee_data_availability_mode": self.fee_data_availability_mode.name,
        }
        if self.proof_facts is not None:
            wire["proof_facts"] = _hexes(self.proof_facts)
        return wire


def _da_mode(value: Any) -> DAMode:
    if value in ("L1", "L2"):
        return DAMode[value]
    raise _invalid_params(f"data availability mode: expected 'L1' or 'L2', got {value!r}")


def gas_usage(tx: InvokeV3) -> GasUsage:
    """The fixed gas model: a base cost plus a cost per calldata and signature word."""
    words = len(tx.calldata) + len(tx.signature)
    return GasUsage(
        l1_gas=L1_GAS_PER_TX, l1_data_gas=L1_DATA_GAS_PER_TX, l2_gas=L2_GAS_PER_TX + L2_GAS_PER_WORD * words
    )


def fee_estimate(tx: InvokeV3) -> dict[str, str]:
    """The ``FEE_ESTIMATE`` object ``starknet_estimateFee`` answers for ``tx`` under the double's gas model."""
    gas = gas_usage(tx)
    return {
        "l1_gas_consumed": hex(gas.l1_gas),
        "l1_gas_price": hex(L1_GAS_PRICE_FRI),
        "l2_gas_consumed": hex(gas.l2_gas),
        "l2_gas_price": hex(L2_GAS_PRICE_FRI),
        "l1_data_gas_consumed": hex(gas.l1_data_gas),
        "l1_data_gas_price": hex(L1_DATA_GAS_PRICE_FRI),
        "overall_fee": hex(gas.fee_fri),
        "unit": "FRI",
    }


def decode_execute_calldata(calldata: Sequence[int]) -> tuple[ContractCall, ...]:
    """Cairo-1 ``__execute__`` calldata: ``[n_calls, (to, selector, calldata_len, calldata…)…]``."""
    if not calldata:
        raise ValueError("empty calldata: expected [n_calls, (to, selector, calldata_len, calldata…)…]")
    calls: list[ContractCall] = []
    position = 1
    for index in range(calldata[0]):
        if position + 3 > len(calldata):
            raise ValueError(f"call {index} is cut short: {len(calldata)} words for {calldata[0]} calls")
        to, selector, length = calldata[position : position + 3]
        start = position + 3
        if start + length > len(calldata):
            raise ValueError(f"call {index} declares {length} calldata words, {len(calldata) - start} remain")
        calls.append(ContractCall(to=to, selector=selector, calldata=tuple(calldata[start : start + length])))
        position = start + length
    if position != len(calldata):
        raise ValueError(f"{len(calldata) - position} words left after {calldata[0]} calls")
    return tuple(calls)


# -- the world: state the contracts hold ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """One of Integrity's verifications of a fact."""

    verification_hash: int
    security_bits: int
    verifier_config: VerifierConfiguration

    def to_felts(self) -> list[int]:
        """A ``VerificationListElement``."""
        return [self.verification_hash, self.security_bits, *self.verifier_config.to_felts()]


class MessageStatus(IntEnum):
    """Piltover's ``MessageToAppchainStatus``: the value is the variant's index, its serialization."""

    NOT_SENT = 0
    SEALED = 1
    CANCELLED = 2
    PENDING = 3


@dataclass(slots=True, kw_only=True)
class _World:
    nonces: dict[int, int]
    core: CoreState
    program_info: ProgramInfo
    verifications: dict[int, tuple[Verification, ...]]
    """fact hash → its verifications, in registration order (Integrity's ``fact_verifications``)."""
    to_appchain: dict[int, tuple[MessageStatus, int]] = dataclasses.field(default_factory=dict)
    """Message hash → (status, nonce) of the messages sent from this L2 to the appchain."""
    to_appchain_nonce: int = 0
    to_starknet: dict[int, int] = dataclasses.field(default_factory=dict)
    """Message hash → how many times it can still be consumed (messages from the appchain)."""
    update_state_count: int = 0

    def copy(self) -> _World:
        return _World(
            nonces=dict(self.nonces),
            core=self.core,
            program_info=self.program_info,
            verifications=dict(self.verifications),
            to_appchain=dict(self.to_appchain),
            to_appchain_nonce=self.to_appchain_nonce,
            to_starknet=dict(self.to_starknet),
            update_state_count=self.update_state_count,
        )

    def root(self) -> int:
        nonces = [felt for address in sorted(self.nonces) for felt in (address, self.nonces[address])]
        verified = [v.verification_hash for fact in sorted(self.verifications) for v in self.verifications[fact]]
        to_appchain = [felt for h in sorted(self.to_appchain) for felt in (h, int(self.to_appchain[h][0]))]
        to_starknet = [felt for h in sorted(self.to_starknet) for felt in (h, self.to_starknet[h])]
        return _poseidon(
            [
                *self.core.to_felts(),
                *self.program_info.to_felts(),
                self.update_state_count,
                self.to_appchain_nonce,
                *nonces,
                *verified,
                *to_appchain,
                *to_starknet,
            ]
        )


class _Revert(Exception):
    """A contract call failed: the transaction reverts with this reason.

    ``panic`` is how Starknet reports it: a Cairo panic with a short string (``0x… ('reason')``), a byte-array
    panic (``"reason"``, e.g. ``assert!``), or an error of the execution itself (the text as is)."""

    def __init__(self, reason: str, *, panic: Literal["felt", "bytes", "none"] = "felt") -> None:
        super().__init__(reason)
        self.reason = reason
        self.panic = panic

    def __str__(self) -> str:
        if self.panic == "felt":
            return f"0x{self.reason.encode('ascii').hex()} ('{self.reason}')"
        if self.panic == "bytes":
            return f'"{self.reason}"'
        return self.reason


@dataclass(slots=True, kw_only=True)
class _CallContext:
    world: _World
    caller: int
    events: list[Event]


_Entrypoint = Callable[[_CallContext, tuple[int, ...]], list[int]]


@dataclass(frozen=True, slots=True, kw_only=True)
class _SealedBlock:
    number: int
    block_hash: int
    parent_hash: int
    timestamp: int
    tx_hashes: tuple[int, ...]
    new_root: int
    world: _World


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outcome:
    world: _World
    events: tuple[Event, ...]
    revert_reason: str | None


# -- the double ---------------------------------------------------------------------------------------


class StarknetL2Double:
    """The node: JSON-RPC at ``POST /`` (and ``/rpc/<version>``), its contracts, and its blocks."""

    def __init__(
        self,
        *,
        chain_id: str = DEFAULT_CHAIN_ID,
        block_time_s: float = 0.0,
        core_contract_address: int = CORE_CONTRACT_ADDRESS,
        fact_registry_address: int = FACT_REGISTRY_ADDRESS,
        program_info: ProgramInfo = DEVNET_PROGRAM_INFO,
        accounts: Sequence[DevAccount] = DEV_ACCOUNTS,
    ) -> None:
        """``accounts[0]`` is the core contract's owner and operator, ``accounts[1]`` (if any) the fact
        registry's verifier; ``program_info`` is the core contract's initial program info."""
        if not chain_id.isascii() or not 0 < len(chain_id) <= 31:
            raise ValueError(f"chain id {chain_id!r} must be 1 to 31 ASCII characters (a Cairo short string)")
        if block_time_s < 0:
            raise ValueError(f"block_time_s must be 0 (a block per transaction) or positive, got {block_time_s}")
        if not accounts:
            raise ValueError("at least one account (the operator) is needed")
        addresses = [a.address for a in accounts] + [core_contract_address, fact_registry_address]
        if len(set(addresses)) != len(addresses):
            raise ValueError("accounts, the core contract and the fact registry need distinct addresses")
        self.chain_id = chain_id
        self.chain_id_felt = int.from_bytes(chain_id.encode(), "big")
        self.block_time_s = block_time_s
        self.core_contract_address = core_contract_address
        self.fact_registry_address = fact_registry_address
        self.accounts: tuple[DevAccount, ...] = tuple(accounts)
        self.operator = self.accounts[0]
        self.verifiers: tuple[DevAccount, ...] = self.accounts[1:2]
        self._accounts_by_address = {a.address: a for a in self.accounts}
        self._contracts: dict[int, tuple[int, dict[int, _Entrypoint]]] = {
            core_contract_address: (
                CORE_CONTRACT_CLASS_HASH,
                {
                    UPDATE_STATE_SELECTOR: self._update_state,
                    GET_STATE_SELECTOR: self._get_state,
                    GET_PROGRAM_INFO_SELECTOR: self._get_program_info,
                    SET_PROGRAM_INFO_SELECTOR: self._set_program_info,
                    GET_FACTS_REGISTRY_SELECTOR: self._get_facts_registry,
                    SEND_MESSAGE_TO_APPCHAIN_SELECTOR: self._send_message_to_appchain,
                    SN_TO_APPCHAIN_MESSAGES_SELECTOR: self._sn_to_appchain_messages,
                    APPCHAIN_TO_SN_MESSAGES_SELECTOR: self._appchain_to_sn_messages,
                    CONSUME_MESSAGE_FROM_APPCHAIN_SELECTOR: self._consume_message_from_appchain,
                },
            ),
            fact_registry_address: (
                FACT_REGISTRY_CLASS_HASH,
                {
                    REGISTER_FACT_SELECTOR: self._register_fact,
                    GET_ALL_VERIFICATIONS_SELECTOR: self._get_all_verifications_for_fact_hash,
                    GET_VERIFICATION_SELECTOR: self._get_verification,
                },
            ),
        }
        for account in self.accounts:
            self._contracts[account.address] = (ACCOUNT_CLASS_HASH, {})

        genesis_world = _World(
            nonces={a.address: 0 for a in self.accounts},
            core=GENESIS_CORE_STATE,
            program_info=program_info,
            verifications={},
        )
        now = int(time.time())
        genesis_root = genesis_world.root()
        self._blocks: list[_SealedBlock] = [
            _SealedBlock(
                number=0,
                block_hash=_poseidon([0, 0, genesis_root, now]),
                parent_hash=0,
                timestamp=now,
                tx_hashes=(),
                new_root=genesis_root,
                world=genesis_world,
            )
        ]
        self._pending_world = genesis_world.copy()
        self._pending_hashes: list[int] = []
        self._pending_timestamp = now
        self._txs: dict[int, L2Transaction] = {}
        self._is_holding_blocks = False
        self._producer: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._methods: dict[str, Callable[[Any], Any]] = {
            "starknet_specVersion": lambda _: SPEC_VERSION,
            "starknet_chainId": lambda _: hex(self.chain_id_felt),
            "starknet_syncing": lambda _: False,
            "starknet_blockNumber": lambda _: self._blocks[-1].number,
            "starknet_blockHashAndNumber": self._rpc_block_hash_and_number,
            "starknet_getBlockWithTxHashes": lambda p: self._rpc_block(p, "hashes"),
            "starknet_getBlockWithTxs": lambda p: self._rpc_block(p, "txs"),
            "starknet_getBlockWithReceipts": lambda p: self._rpc_block(p, "receipts"),
            "starknet_getBlockTransactionCount": self._rpc_block_transaction_count,
            "starknet_getNonce": self._rpc_get_nonce,
            "starknet_getClassHashAt": self._rpc_get_class_hash_at,
            "starknet_getClassAt": self._rpc_get_class_at,
            "starknet_getClass": self._rpc_get_class,
            "starknet_call": self._rpc_call,
            "starknet_estimateFee": self._rpc_estimate_fee,
            "starknet_addInvokeTransaction": self._rpc_add_invoke,
            "starknet_getTransactionReceipt": self._rpc_receipt,
            "starknet_getTransactionStatus": self._rpc_status,
            "starknet_getTransactionByHash": self._rpc_transaction,
        }
        self._app = Starlette(
            routes=[
                Route("/", self._endpoint, methods=["POST"]),
                Route("/rpc/{version}", self._endpoint, methods=["POST"]),
            ]
        )

    @property
    def app(self) -> Starlette:
        return self._app

    # -- inspection and control (tests, the devnet) -------------------------------------------------

    @property
    def state(self) -> CoreState:
        """The core contract's state including pre-confirmed transactions (``get_state`` at pre_confirmed)."""
        return self._pending_world.core

    @property
    def sealed_state(self) -> CoreState:
        """The core contract's state at the latest sealed block (``get_state`` at latest)."""
        return self._blocks[-1].world.core

    @property
    def update_state_count(self) -> int:
        """Successful ``update_state`` executions, pre-confirmed ones included."""
        return self._pending_world.update_state_count

    @property
    def transactions(self) -> tuple[L2Transaction, ...]:
        """Every accepted transaction, in order."""
        return tuple(self._txs.values())

    def transaction(self, transaction_hash: int) -> L2Transaction:
        return self._txs[transaction_hash]

    @property
    def block_number(self) -> int:
        """The latest sealed block's number (0 is the empty genesis block)."""
        return self._blocks[-1].number

    @property
    def pre_confirmed_transaction_hashes(self) -> tuple[int, ...]:
        return tuple(self._pending_hashes)

    def nonce_of(self, address: int) -> int:
        """An account's nonce including pre-confirmed transactions."""
        return self._pending_world.nonces[address]

    @property
    def program_info(self) -> ProgramInfo:
        """The core contract's program info, pre-confirmed transactions included."""
        return self._pending_world.program_info

    def is_fact_registered(self, fact: int) -> bool:
        """Whether the fact has a verification (pre-confirmed transactions included)."""
        return bool(self._pending_world.verifications.get(fact))

    def verifications_of(self, fact: int) -> tuple[Verification, ...]:
        return self._pending_world.verifications.get(fact, ())

    def message_to_appchain_status(self, message_hash: int) -> MessageStatus:
        return self._pending_world.to_appchain.get(message_hash, (MessageStatus.NOT_SENT, 0))[0]

    def messages_to_starknet(self, message_hash: int) -> int:
        """How many times a message from the appchain can still be consumed."""
        return self._pending_world.to_starknet.get(message_hash, 0)

    def register_fact_directly(
        self,
        fact: int,
        *,
        security_bits: int = 78,
        verifier_config: VerifierConfiguration = BRIDGE_VERIFIER_CONFIG,
    ) -> None:
        """Register a verification of a fact without a transaction, at once visible at both latest and
        pre_confirmed (a state override for tests that do not go through a verifier). The defaults are those
        of the mock Atlantic server's bridge proofs (16 queries × 3 + 30 proof-of-work bits)."""
        for world in (self._pending_world, self._blocks[-1].world):
            _add_verification(world, fact, security_bits, verifier_config)
        self._notify()

    @property
    def is_holding_blocks(self) -> bool:
        return self._is_holding_blocks

    def hold_blocks(self, hold: bool) -> None:
        """While held, accepted transactions stay pre-confirmed until ``seal_block()``. Releasing the hold with
        ``block_time_s == 0`` seals what is pending at once."""
        self._is_holding_blocks = hold
        if not hold and self.block_time_s == 0 and self._pending_hashes:
            self.seal_block()

    def seal_block(self) -> int:
        """Seal the pre-confirmed block (even an empty one) and return its number."""
        parent = self._blocks[-1]
        number = parent.number + 1
        world = self._pending_world.copy()
        tx_hashes = tuple(self._pending_hashes)
        new_root = world.root()
        timestamp = max(int(time.time()), self._pending_timestamp)
        block_hash = _poseidon([number, parent.block_hash, new_root, timestamp, *tx_hashes])
        self._blocks.append(
            _SealedBlock(
                number=number,
                block_hash=block_hash,
                parent_hash=parent.block_hash,
                timestamp=timestamp,
                tx_hashes=tx_hashes,
                new_root=new_root,
                world=world,
            )
        )
        for tx_hash in tx_hashes:
            self._txs[tx_hash] = dataclasses.replace(
                self._txs[tx_hash], finality_status=FinalityStatus.ACCEPTED_ON_L2, block_hash=block_hash
            )
        self._pending_hashes = []
        self._pending_timestamp = int(time.time())
        self._notify()
        return number

    async def start(self) -> None:
        """With ``block_time_s > 0``, seal a block every ``block_time_s`` when transactions are pending and
        blocks are not held. Nothing to do with ``block_time_s == 0``."""
        if self.block_time_s == 0 or self._producer is not None:
            return

        async def produce() -> None:
            while True:
                await asyncio.sleep(self.block_time_s)
                if self._pending_hashes and not self._is_holding_blocks:
                    self.seal_block()

        self._producer = asyncio.create_task(produce(), name="starknet-l2-double-blocks")

    async def stop(self) -> None:
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer
            self._producer = None

    async def wait_for_sealed_block(self, number: int, *, timeout_s: float = 10.0) -> None:
        """Return once block ``number`` is sealed; ``TimeoutError`` after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while self._blocks[-1].number < number:
                await self._changed.wait()

    async def wait_for_settlement(self, block_number: int, *, timeout_s: float = 10.0) -> CoreState:
        """Return the sealed core state once it has settled L3 block ``block_number`` (or a later one)."""
        async with asyncio.timeout(timeout_s):
            while (settled := self.sealed_state.last_settled_block) is None or settled < block_number:
                await self._changed.wait()
        return self.sealed_state

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- the Piltover core contract -------------------------------------------------------------------

    def _assert_owner_or_operator(self, ctx: _CallContext) -> None:
        """Piltover's config component: the owner or a registered operator (here both are the operator)."""
        if ctx.caller != self.operator.address:
            raise _Revert("Config: not owner or operator")

    def _update_state(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        """Piltover's ``update_state`` with the two spans of its current form, its checks in its order."""
        snos_output, layout_bridge_output = _abi_args(calldata, (_SPAN, _SPAN))
        self._assert_owner_or_operator(ctx)
        world = ctx.world
        info = world.program_info
        # The SNOS proof is bootloaded: its 3rd word is the program hash of the bootloaded program, SNOS.
        if _at(snos_output, 2) != info.snos_program_hash:
            raise _Revert("snos: invalid program hash")
        # The layout bridge is bootloaded too: its 3rd word is its program hash...
        if _at(layout_bridge_output, 2) != info.layout_bridge_program_hash:
            raise _Revert("lb: invalid program hash")
        # ... and its 5th the hash of the output it verified.
        if output_hash(snos_output) != _at(layout_bridge_output, 4):
            raise _Revert("snos: invalid output hash")
        os_output = deserialize_os_output(snos_output)
        if os_output.header.starknet_os_config_hash != info.snos_config_hash:
            raise _Revert("snos: invalid config hash")
        fact = l2_fact(info.bootloader_program_hash, layout_bridge_output)
        verifications = self._verifications_for(ctx, fact)
        if not verifications:
            raise _Revert("no fact registered")
        if not verifications[0].security_bits > MIN_SECURITY_BITS:
            raise _Revert(
                f"assertion failed: `*verifications.at(0).security_bits > {MIN_SECURITY_BITS}`.", panic="bytes"
            )
        # The state component's update.
        header = os_output.header
        if world.core.block_number != header.prev_block_number:
            raise _Revert("State: invalid block number")
        if world.core.state_root != header.initial_root:
            raise _Revert("State: invalid previous root")
        world.core = CoreState(
            state_root=header.final_root, block_number=header.new_block_number, block_hash=header.new_block_hash
        )
        # The messaging component: messages to Starknet become consumable, messages to the appchain are sealed.
        for to_l1 in os_output.messages_to_l1:
            message_hash = message_hash_to_starknet(to_l1.from_address, to_l1.to_address, to_l1.payload)
            self._emit(
                ctx,
                (MESSAGE_TO_STARKNET_RECEIVED_KEY, message_hash, to_l1.from_address, to_l1.to_address),
                (len(to_l1.payload), *to_l1.payload),
            )
            world.to_starknet[message_hash] = world.to_starknet.get(message_hash, 0) + 1
        for to_l2 in os_output.messages_to_l2:
            message_hash = message_hash_to_appchain(
                to_l2.from_address, to_l2.to_address, to_l2.selector, to_l2.payload, to_l2.nonce
            )
            status, nonce = world.to_appchain.get(message_hash, (MessageStatus.NOT_SENT, 0))
            if status is not MessageStatus.PENDING:
                raise _Revert("INVALID_MESSAGE_TO_SEAL")
            world.to_appchain[message_hash] = (MessageStatus.SEALED, nonce)
            self._emit(
                ctx,
                (MESSAGE_TO_APPCHAIN_SEALED_KEY, message_hash, to_l2.from_address, to_l2.to_address),
                (to_l2.selector, to_l2.nonce, len(to_l2.payload), *to_l2.payload),
            )
        world.update_state_count += 1
        self._emit(ctx, (LOG_STATE_UPDATE_KEY,), tuple(world.core.to_felts()))
        return []

    def _verifications_for(self, ctx: _CallContext, fact: int) -> list[Verification]:
        """``IFactRegistryDispatcher { contract_address: facts_registry }.get_all_verifications_for_fact_hash``:
        a call into the registry, its answer deserialized as Piltover's dispatcher does."""
        inner = _CallContext(world=ctx.world, caller=self.core_contract_address, events=ctx.events)
        call = ContractCall(to=self.fact_registry_address, selector=GET_ALL_VERIFICATIONS_SELECTOR, calldata=(fact,))
        answer = self._invoke_entrypoint(inner, call)
        too_short = _Revert("Returned data too short")
        if not answer or len(answer) < 1 + 6 * answer[0]:
            raise too_short
        verifications = []
        for index in range(answer[0]):
            words = answer[1 + 6 * index : 7 + 6 * index]
            if words[1] >= U32_BOUND:
                raise too_short
            verifications.append(
                Verification(
                    verification_hash=words[0],
                    security_bits=words[1],
                    verifier_config=VerifierConfiguration(*words[2:]),
                )
            )
        return verifications

    def _get_state(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        _abi_args(calldata, ())
        return ctx.world.core.to_felts()

    def _get_program_info(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        _abi_args(calldata, ())
        return ctx.world.program_info.to_felts()

    def _set_program_info(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        (words,) = _abi_args(calldata, (_felts_of(4),))
        self._assert_owner_or_operator(ctx)
        old = ctx.world.program_info
        ctx.world.program_info = ProgramInfo(
            bootloader_program_hash=words[0],
            snos_config_hash=words[1],
            snos_program_hash=words[2],
            layout_bridge_program_hash=words[3],
        )
        self._emit(
            ctx,
            (PROGRAM_INFO_CHANGED_KEY,),
            (ctx.caller, *old.to_felts(), *ctx.world.program_info.to_felts()),
        )
        return []

    def _get_facts_registry(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        _abi_args(calldata, ())
        return [self.fact_registry_address]

    def _send_message_to_appchain(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        to_address, selector, payload = _abi_args(calldata, (_ADDRESS, _FELT, _SPAN))
        world = ctx.world
        nonce = world.to_appchain_nonce
        world.to_appchain_nonce = nonce + 1
        message_hash = message_hash_to_appchain(ctx.caller, to_address, selector, payload, nonce)
        self._emit(
            ctx, (MESSAGE_SENT_KEY, message_hash, ctx.caller, to_address), (selector, nonce, len(payload), *payload)
        )
        world.to_appchain[message_hash] = (MessageStatus.PENDING, nonce)
        return [message_hash, nonce]

    def _sn_to_appchain_messages(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        (message_hash,) = _abi_args(calldata, (_FELT,))
        status, nonce = ctx.world.to_appchain.get(message_hash, (MessageStatus.NOT_SENT, 0))
        return [int(status), nonce] if status is MessageStatus.PENDING else [int(status)]

    def _appchain_to_sn_messages(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        (message_hash,) = _abi_args(calldata, (_FELT,))
        count = ctx.world.to_starknet.get(message_hash, 0)
        return [1, count] if count else [0]

    def _consume_message_from_appchain(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        from_address, payload = _abi_args(calldata, (_ADDRESS, _SPAN))
        message_hash = message_hash_to_starknet(from_address, ctx.caller, payload)
        count = ctx.world.to_starknet.get(message_hash, 0)
        if count == 0:
            raise _Revert("INVALID_MESSAGE_TO_CONSUME")
        self._emit(ctx, (MESSAGE_CONSUMED_KEY, message_hash, from_address, ctx.caller), (len(payload), *payload))
        ctx.world.to_starknet[message_hash] = count - 1
        return [message_hash]

    # -- the Integrity fact registry ------------------------------------------------------------------

    def _register_fact(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        """Integrity's ``register_fact(verifier_config, fact_hash, security_bits) -> FactRegistered``."""
        config_words, fact_hash, security_bits = _abi_args(calldata, (_felts_of(4), _FELT, _U32))
        if ctx.caller not in {v.address for v in self.verifiers}:
            raise _Revert(
                f"caller {ctx.caller:#x} is not a verifier: only verifier accounts register facts", panic="bytes"
            )
        config = VerifierConfiguration(*config_words)
        vhash = _add_verification(ctx.world, fact_hash, security_bits, config)
        registered = (fact_hash, 0, security_bits, *config.to_felts(), vhash)
        self._emit(ctx, (FACT_REGISTERED_KEY, *registered), (), address=self.fact_registry_address)
        return list(registered)

    def _get_all_verifications_for_fact_hash(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        (fact_hash,) = _abi_args(calldata, (_FELT,))
        verifications = ctx.world.verifications.get(fact_hash, ())
        return [len(verifications), *(felt for v in verifications for felt in v.to_felts())]

    def _get_verification(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        """``Option<Verification>``: ``[0, fact_hash, security_bits, *config]`` (Some) or ``[1]`` (None)."""
        (wanted,) = _abi_args(calldata, (_FELT,))
        for fact_hash, verifications in ctx.world.verifications.items():
            for v in verifications:
                if v.verification_hash == wanted:
                    return [0, fact_hash, v.security_bits, *v.verifier_config.to_felts()]
        return [1]

    def _emit(
        self, ctx: _CallContext, keys: tuple[int, ...], data: tuple[int, ...], *, address: int | None = None
    ) -> None:
        from_address = self.core_contract_address if address is None else address
        ctx.events.append(Event(from_address=from_address, keys=keys, data=data))

    def _invoke_entrypoint(self, ctx: _CallContext, call: ContractCall) -> list[int]:
        """Run one call; raises ``_Revert`` with Starknet's wording for a missing contract or entry point."""
        contract = self._contracts.get(call.to)
        if contract is None:
            raise _Revert(f"Requested contract address {call.to:#066x} is not deployed.", panic="none")
        entrypoint = contract[1].get(call.selector)
        if entrypoint is None:
            raise _Revert(f"Entry point EntryPointSelector({call.selector:#066x}) not found in contract.", panic="none")
        return entrypoint(ctx, call.calldata)

    def _execute(self, world: _World, sender: int, calls: Sequence[ContractCall]) -> _Outcome:
        """Run an account's calls on a copy of ``world``: all of them take effect, or none (a revert)."""
        scratch = world.copy()
        ctx = _CallContext(world=scratch, caller=sender, events=[])
        for call in calls:
            try:
                self._invoke_entrypoint(ctx, call)
            except _Revert as failure:
                class_hash = self._contracts.get(call.to, (0, {}))[0]
                reason = (
                    "Transaction execution has failed:\n"
                    f"0: Error in the called contract (contract address: {sender:#066x}, "
                    f"class hash: {ACCOUNT_CLASS_HASH:#066x}, selector: {EXECUTE_SELECTOR:#066x}):\n"
                    f"1: Error in the called contract (contract address: {call.to:#066x}, "
                    f"class hash: {class_hash:#066x}, selector: {call.selector:#066x}):\n"
                    f"Execution failed. Failure reason: {failure}."
                )
                return _Outcome(world=world.copy(), events=(), revert_reason=reason)
        return _Outcome(world=scratch, events=tuple(ctx.events), revert_reason=None)

    # -- validation shared by addInvokeTransaction and estimateFee ----------------------------------------

    def _check_nonce(self, world: _World, tx: InvokeV3) -> None:
        expected = world.nonces[tx.sender_address]
        if tx.nonce != expected:
            raise RpcError(
                INVALID_TRANSACTION_NONCE,
                "Invalid transaction nonce",
                f"Invalid transaction nonce of contract at address {tx.sender_address:#066x}. "
                f"Account nonce: {expected:#x}; got: {tx.nonce:#x}.",
            )

    def _check_signature(self, tx: InvokeV3, tx_hash: int) -> tuple[ContractCall, ...]:
        """The account's ``__validate__``: the signature, then the calls' encoding."""
        account = self._accounts_by_address[tx.sender_address]
        is_valid = False
        if len(tx.signature) == 2:
            r, s = tx.signature
            if 0 < r < FELT_PRIME and 0 < s < EC_ORDER:
                with contextlib.suppress(Exception):
                    is_valid = verify_message_signature(tx_hash, [r, s], account.public_key)
        if not is_valid:
            raise RpcError(
                VALIDATION_FAILURE,
                "Account validation failed",
                f"invalid signature for transaction {tx_hash:#066x}: expected [r, s] by the key of account "
                f"{tx.sender_address:#066x}",
            )
        try:
            return decode_execute_calldata(tx.calldata)
        except ValueError as exc:
            raise RpcError(
                VALIDATION_FAILURE, "Account validation failed", f"cannot decode the __execute__ calldata: {exc}"
            ) from None

    def _check_sender(self, tx: InvokeV3) -> None:
        if tx.sender_address not in self._accounts_by_address:
            raise RpcError(
                VALIDATION_FAILURE,
                "Account validation failed",
                f"no account is deployed at {tx.sender_address:#066x}",
            )

    # -- JSON-RPC -------------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        return await jsonrpc_response(request, self._dispatch)

    def _dispatch(self, request: Any) -> dict[str, Any]:
        request_id = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise RpcError(-32600, "Invalid request")
            method = self._methods.get(request["method"])
            if method is None:
                raise RpcError(-32601, "Method not found", request["method"])
            params = request.get("params", [])
            if not isinstance(params, dict | list):
                raise _invalid_params("params must be an object or an array")
            return {"jsonrpc": "2.0", "id": request_id, "result": method(params)}
        except RpcError as error:
            return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}

    def call(self, method: str, params: Any) -> Any:
        """Serve one JSON-RPC method in-process (raises ``RpcError``)."""
        handler = self._methods.get(method)
        if handler is None:
            raise RpcError(-32601, "Method not found", method)
        return handler(params)

    @staticmethod
    def _param(params: Any, name: str, position: int, *, default: Any = ...) -> Any:
        if isinstance(params, dict) and name in params:
            return params[name]
        if isinstance(params, list) and len(params) > position:
            return params[position]
        if default is not ...:
            return default
        raise _invalid_params(f"missing parameter {name!r}")

    def _block_by_id(self, block_id: Any) -> _SealedBlock | None:
        """The sealed block ``block_id`` names, or None for ``pre_confirmed``."""
        if block_id == "pre_confirmed":
            return None
        if block_id == "latest":
            return self._blocks[-1]
        if block_id == "l1_accepted":
            raise RpcError(BLOCK_NOT_FOUND, "Block not found", "this double has no L1: no block is L1-accepted")
        if isinstance(block_id, dict):
            if "block_number" in block_id:
                number = block_id["block_number"]
                if isinstance(number, int) and not isinstance(number, bool) and 0 <= number < len(self._blocks):
                    return self._blocks[number]
                raise RpcError(BLOCK_NOT_FOUND, "Block not found")
            if "block_hash" in block_id:
                wanted = _felt(block_id["block_hash"], "block_hash")
                for block in self._blocks:
                    if block.block_hash == wanted:
                        return block
                raise RpcError(BLOCK_NOT_FOUND, "Block not found")
        raise _invalid_params(f"invalid block id {block_id!r}")

    def _world_at(self, block_id: Any) -> _World:
        block = self._block_by_id(block_id)
        return self._pending_world if block is None else block.world

    def _contract_address_param(self, params: Any, position: int) -> int:
        address = _felt(self._param(params, "contract_address", position), "contract_address")
        if address not in self._contracts:
            raise RpcError(CONTRACT_NOT_FOUND, "Contract not found")
        return address

    def _rpc_block_hash_and_number(self, _: Any) -> dict[str, Any]:
        head = self._blocks[-1]
        return {"block_hash": hex(head.block_hash), "block_number": head.number}

    def _price(self, fri: int) -> dict[str, str]:
        return {"price_in_fri": hex(fri), "price_in_wei": hex(fri // WEI_PER_FRI_DIVISOR)}

    def _header_prices(self) -> dict[str, Any]:
        return {
            "sequencer_address": hex(SEQUENCER_ADDRESS),
            "l1_gas_price": self._price(L1_GAS_PRICE_FRI),
            "l2_gas_price": self._price(L2_GAS_PRICE_FRI),
            "l1_data_gas_price": self._price(L1_DATA_GAS_PRICE_FRI),
            "l1_da_mode": "BLOB",
            "starknet_version": STARKNET_VERSION,
        }

    def _rpc_block(self, params: Any, shape: str) -> dict[str, Any]:
        block = self._block_by_id(self._param(params, "block_id", 0))
        tx_hashes = tuple(self._pending_hashes) if block is None else block.tx_hashes
        if shape == "hashes":
            transactions: list[Any] = [hex(h) for h in tx_hashes]
        elif shape == "txs":
            transactions = [self._txs[h].wire for h in tx_hashes]
        else:
            transactions = [
                {"transaction": self._txs[h].wire, "receipt": self._receipt_json(self._txs[h], with_block=False)}
                for h in tx_hashes
            ]
        if block is None:
            return {
                "block_number": self._blocks[-1].number + 1,
                "timestamp": self._pending_timestamp,
                **self._header_prices(),
                "transactions": transactions,
            }
        n_events = sum(len(self._txs[h].events) for h in tx_hashes)
        return {
            "status": "ACCEPTED_ON_L2",
            "block_hash": hex(block.block_hash),
            "parent_hash": hex(block.parent_hash),
            "block_number": block.number,
            "new_root": hex(block.new_root),
            "timestamp": block.timestamp,
            **self._header_prices(),
            "transaction_commitment": hex(_poseidon(list(tx_hashes))),
            "event_commitment": hex(_poseidon([n_events, *tx_hashes])),
            "receipt_commitment": hex(_poseidon([block.number, *tx_hashes])),
            "state_diff_commitment": hex(block.new_root),
            "event_count": n_events,
            "transaction_count": len(tx_hashes),
            "state_diff_length": len(tx_hashes),
            "transactions": transactions,
        }

    def _rpc_block_transaction_count(self, params: Any) -> int:
        block = self._block_by_id(self._param(params, "block_id", 0))
        return len(self._pending_hashes) if block is None else len(block.tx_hashes)

    def _rpc_get_nonce(self, params: Any) -> str:
        world = self._world_at(self._param(params, "block_id", 0))
        address = self._contract_address_param(params, 1)
        return hex(world.nonces.get(address, 0))

    def _rpc_get_class_hash_at(self, params: Any) -> str:
        self._block_by_id(self._param(params, "block_id", 0))
        return hex(self._contracts[self._contract_address_param(params, 1)][0])

    def _rpc_get_class_at(self, params: Any) -> dict[str, Any]:
        self._block_by_id(self._param(params, "block_id", 0))
        return self._sierra_class(self._contracts[self._contract_address_param(params, 1)][0])

    def _rpc_get_class(self, params: Any) -> dict[str, Any]:
        self._block_by_id(self._param(params, "block_id", 0))
        return self._sierra_class(_felt(self._param(params, "class_hash", 1), "class_hash"))

    def _sierra_class(self, class_hash: int) -> dict[str, Any]:
        """A stub Sierra class (no program): enough for a client to see a Cairo 1 contract and its entry points."""
        entry_points = {cls: sorted(entries) for cls, entries in self._contracts.values()}
        entry_points[ACCOUNT_CLASS_HASH] = [EXECUTE_SELECTOR, get_selector_from_name("__validate__")]
        selectors = entry_points.get(class_hash)
        if selectors is None:
            raise RpcError(CLASS_HASH_NOT_FOUND, "Class hash not found")
        return {
            "sierra_program": [hex(1), hex(class_hash)],
            "contract_class_version": "0.1.0",
            "entry_points_by_type": {
                "CONSTRUCTOR": [],
                "EXTERNAL": [{"selector": hex(s), "function_idx": i} for i, s in enumerate(sorted(selectors))],
                "L1_HANDLER": [],
            },
            "abi": "[]",
        }

    def _rpc_call(self, params: Any) -> list[str]:
        request = self._param(params, "request", 0)
        world = self._world_at(self._param(params, "block_id", 1))
        if not isinstance(request, dict):
            raise _invalid_params("request: expected an object")
        address = _felt(_field(request, "contract_address", "request"), "contract_address")
        selector = _felt(_field(request, "entry_point_selector", "request"), "entry_point_selector")
        calldata = _felts(_field(request, "calldata", "request"), "calldata")
        if address not in self._contracts:
            raise RpcError(CONTRACT_NOT_FOUND, "Contract not found")
        if selector not in self._contracts[address][1]:
            raise RpcError(21, "Requested entrypoint does not exist in the contract")
        ctx = _CallContext(world=world.copy(), caller=0, events=[])
        try:
            result = self._invoke_entrypoint(ctx, ContractCall(to=address, selector=selector, calldata=calldata))
        except _Revert as failure:
            raise RpcError(
                CONTRACT_ERROR, "Contract error", {"revert_error": f"Execution failed. Failure reason: {failure}."}
            ) from None
        return _hexes(result)

    def _rpc_estimate_fee(self, params: Any) -> list[dict[str, Any]]:
        """Validate and execute each transaction in turn on a scratch copy of the state; a validation failure or
        a revert is error 41, naming the transaction, as on Starknet."""
        requests = self._param(params, "request", 0)
        flags = self._param(params, "simulation_flags", 1, default=[])
        world = self._world_at(self._param(params, "block_id", 2, default="pre_confirmed")).copy()
        if not isinstance(requests, list) or not isinstance(flags, list):
            raise _invalid_params("request and simulation_flags must be arrays")
        skip_validate = "SKIP_VALIDATE" in flags
        estimates: list[dict[str, Any]] = []
        for index, raw in enumerate(requests):
            tx = InvokeV3.from_json(raw)
            try:
                if tx.version not in (3, QUERY_VERSION_BASE + 3):
                    raise RpcError(UNSUPPORTED_TX_VERSION, "The transaction version is not supported", hex(tx.version))
                self._check_sender(tx)
                self._check_nonce(world, tx)
                if skip_validate:
                    calls = decode_execute_calldata(tx.calldata)
                else:
                    calls = self._check_signature(tx, tx.calculate_hash(self.chain_id_felt))
            except (RpcError, ValueError) as failure:
                detail = failure.data if isinstance(failure, RpcError) else str(failure)
                raise RpcError(
                    TRANSACTION_EXECUTION_ERROR,
                    "Transaction execution error",
                    {"transaction_index": index, "execution_error": f"validation failed: {detail}"},
                ) from None
            outcome = self._execute(world, tx.sender_address, calls)
            if outcome.revert_reason is not None:
                raise RpcError(
                    TRANSACTION_EXECUTION_ERROR,
                    "Transaction execution error",
                    {"transaction_index": index, "execution_error": outcome.revert_reason},
                )
            world = outcome.world
            world.nonces[tx.sender_address] += 1
            estimates.append(fee_estimate(tx))
        return estimates

    def _rpc_add_invoke(self, params: Any) -> dict[str, str]:
        tx = InvokeV3.from_json(self._param(params, "invoke_transaction", 0))
        if tx.version != 3:
            raise RpcError(
                UNSUPPORTED_TX_VERSION,
                "The transaction version is not supported",
                f"version {tx.version:#x}: only 0x3 invokes are executed (query versions are for estimates only)",
            )
        tx_hash = tx.calculate_hash(self.chain_id_felt)
        if tx_hash in self._txs:
            raise RpcError(DUPLICATE_TX, "A transaction with the same hash already exists in the mempool", hex(tx_hash))
        self._check_sender(tx)
        self._check_nonce(self._pending_world, tx)
        gas = gas_usage(tx)
        _check_resource_bounds(tx.resource_bounds, gas)
        calls = self._check_signature(tx, tx_hash)

        outcome = self._execute(self._pending_world, tx.sender_address, calls)
        outcome.world.nonces[tx.sender_address] += 1
        self._pending_world = outcome.world
        if not self._pending_hashes:
            self._pending_timestamp = int(time.time())
        self._pending_hashes.append(tx_hash)
        self._txs[tx_hash] = L2Transaction(
            transaction_hash=tx_hash,
            sender_address=tx.sender_address,
            nonce=tx.nonce,
            calls=calls,
            execution_status=ExecutionStatus.REVERTED if outcome.revert_reason else ExecutionStatus.SUCCEEDED,
            revert_reason=outcome.revert_reason,
            finality_status=FinalityStatus.PRE_CONFIRMED,
            block_number=self._blocks[-1].number + 1,
            block_hash=None,
            gas=gas,
            events=outcome.events,
            wire=tx.to_json(tx_hash),
        )
        if self.block_time_s == 0 and not self._is_holding_blocks:
            self.seal_block()
        else:
            self._notify()
        return {"transaction_hash": hex(tx_hash)}

    def _known_tx(self, params: Any) -> L2Transaction:
        tx_hash = _felt(self._param(params, "transaction_hash", 0), "transaction_hash")
        tx = self._txs.get(tx_hash)
        if tx is None:
            raise RpcError(TXN_HASH_NOT_FOUND, "Transaction hash not found")
        return tx

    def _receipt_json(self, tx: L2Transaction, *, with_block: bool) -> dict[str, Any]:
        receipt: dict[str, Any] = {
            "type": "INVOKE",
            "transaction_hash": hex(tx.transaction_hash),
            "actual_fee": {"amount": hex(tx.gas.fee_fri), "unit": "FRI"},
            "execution_status": tx.execution_status.value,
            "finality_status": tx.finality_status.value,
            "messages_sent": [],
            "events": [event.to_json() for event in tx.events],
            "execution_resources": {
                "l1_gas": tx.gas.l1_gas,
                "l1_data_gas": tx.gas.l1_data_gas,
                "l2_gas": tx.gas.l2_gas,
            },
        }
        if tx.revert_reason is not None:
            receipt["revert_reason"] = tx.revert_reason
        if with_block:
            receipt["block_number"] = tx.block_number
            if tx.block_hash is not None:
                receipt["block_hash"] = hex(tx.block_hash)
        return receipt

    def _rpc_receipt(self, params: Any) -> dict[str, Any]:
        return self._receipt_json(self._known_tx(params), with_block=True)

    def _rpc_status(self, params: Any) -> dict[str, Any]:
        tx = self._known_tx(params)
        status: dict[str, Any] = {
            "finality_status": tx.finality_status.value,
            "execution_status": tx.execution_status.value,
        }
        if tx.revert_reason is not None:
            status["failure_reason"] = tx.revert_reason
        return status

    def _rpc_transaction(self, params: Any) -> dict[str, Any]:
        return self._known_tx(params).wire


def _check_resource_bounds(bounds: ResourceBoundsMapping, gas: GasUsage) -> None:
    """Error 53 unless each resource the transaction uses is covered, in amount and in price per unit."""
    shortfalls = []
    for name, bound, used, price in (
        ("l1_gas", bounds.l1_gas, gas.l1_gas, L1_GAS_PRICE_FRI),
        ("l2_gas", bounds.l2_gas, gas.l2_gas, L2_GAS_PRICE_FRI),
        ("l1_data_gas", bounds.l1_data_gas, gas.l1_data_gas, L1_DATA_GAS_PRICE_FRI),
    ):
        if used == 0:
            continue
        if bound.max_amount < used:
            shortfalls.append(f"{name} max_amount {bound.max_amount} < {used} needed")
        if bound.max_price_per_unit < price:
            shortfalls.append(f"{name} max_price_per_unit {bound.max_price_per_unit} < price {price}")
    if shortfalls:
        raise RpcError(
            INSUFFICIENT_RESOURCES_FOR_VALIDATE,
            "The transaction's resources don't cover validation or the minimal transaction fee",
            "; ".join(shortfalls),
        )


# -- Cairo's ABI wrapper, Integrity's storage, Piltover's SNOS output ---------------------------------

_FELT = "felt"
_U32 = "u32"
_ADDRESS = "address"
_SPAN = "span"
_BOUNDS = {_FELT: FELT_PRIME, _U32: U32_BOUND, _ADDRESS: CONTRACT_ADDRESS_BOUND}


def _felts_of(count: int) -> tuple[str, int]:
    """A struct of ``count`` felts as one parameter."""
    return ("felts", count)


def _abi_args(calldata: tuple[int, ...], params: Sequence[str | tuple[str, int]]) -> list[Any]:
    """Deserialize an entry point's parameters as the Cairo ABI wrapper does: a parameter that cannot be read
    is 'Failed to deserialize param #N', a word left over 'Input too long for arguments'."""
    values: list[Any] = []
    position = 0
    for number, param in enumerate(params, start=1):
        failed = _Revert(f"Failed to deserialize param #{number}")
        if isinstance(param, tuple):
            end = position + param[1]
            if end > len(calldata):
                raise failed
            values.append(tuple(calldata[position:end]))
            position = end
            continue
        if position >= len(calldata):
            raise failed
        if param == _SPAN:
            end = position + 1 + calldata[position]
            if end > len(calldata):
                raise failed
            values.append(tuple(calldata[position + 1 : end]))
            position = end
            continue
        if calldata[position] >= _BOUNDS[param]:
            raise failed
        values.append(calldata[position])
        position += 1
    if position != len(calldata):
        raise _Revert("Input too long for arguments")
    return values


def _at(span: Sequence[int], index: int) -> int:
    """``span.at(index)`` / ``array[index]``."""
    if index >= len(span):
        raise _Revert("Index out of bounds")
    return span[index]


def _add_verification(world: _World, fact: int, security_bits: int, config: VerifierConfiguration) -> int:
    """Integrity's ``_register_fact``: a verification is recorded once (by its hash); its hash."""
    vhash = verification_hash(fact, config, security_bits)
    known = world.verifications.get(fact, ())
    if all(v.verification_hash != vhash for v in known):
        world.verifications[fact] = (
            *known,
            Verification(verification_hash=vhash, security_bits=security_bits, verifier_config=config),
        )
    return vhash


class _SpanIter:
    """A ``SpanIter<felt252>`` as Piltover's deserialization walks it."""

    def __init__(self, words: Sequence[int]) -> None:
        self.words = words
        self.position = 0

    def next(self) -> int:
        """``*(input_iter.next().unwrap())``."""
        if self.position >= len(self.words):
            raise _Revert("Option::unwrap failed.")
        self.position += 1
        return self.words[self.position - 1]

    def segment(self, length: int) -> list[int]:
        """``read_segment``: up to ``length`` words, fewer if the input ends first."""
        taken = list(self.words[self.position : self.position + length])
        self.position += len(taken)
        return taken


def _u32(value: int, error: str) -> int:
    """``value.try_into().expect(error)`` into a ``usize``."""
    if value >= U32_BOUND:
        raise _Revert(error)
    return value


def _contract_address(value: int, error: str) -> int:
    if value >= CONTRACT_ADDRESS_BOUND:
        raise _Revert(error)
    return value


def deserialize_os_output(snos_output: Sequence[int]) -> OsOutput:
    """Piltover's ``deserialize_os_output`` of a bootloaded SNOS output: the bootloader's 3 words skipped, the
    10-word header, the KZG section skipped when ``use_kzg_da`` is not 0, then the messages; the state diff
    after them is not read. Fails with the Cairo panic Piltover would (a ``_Revert``)."""
    words = _SpanIter(snos_output)
    words.segment(BOOTLOADER_HEADER_WORDS)
    header = words.segment(SNOS_HEADER_WORDS)
    use_kzg_da = _at(header, 8)
    full_output = _at(header, 9)
    if use_kzg_da != 0:
        kzg = words.segment(2)
        n_blobs = _u32(_at(kzg, 1), "Invalid n_blobs")
        words.segment(2 * 2 * n_blobs)
    n_to_l1 = _u32(words.next(), "Invalid n_messages_to_l1")
    segment_to_l1 = _SpanIter(words.segment(n_to_l1))
    n_to_l2 = _u32(words.next(), "Invalid n_messages_to_l2")
    segment_to_l2 = _SpanIter(words.segment(n_to_l2))
    to_l1: list[MessageToL1] = []
    while len(message := segment_to_l1.segment(3)) == 3:
        payload = segment_to_l1.segment(_u32(message[2], "Invalid payload size"))
        to_l1.append(
            MessageToL1(
                from_address=_contract_address(message[0], "Invalid from address"),
                to_address=_contract_address(message[1], "Invalid to address"),
                payload=tuple(payload),
            )
        )
    to_l2: list[MessageToL2] = []
    while len(message := segment_to_l2.segment(5)) == 5:
        payload = segment_to_l2.segment(_u32(message[4], "Invalid payload size"))
        to_l2.append(
            MessageToL2(
                from_address=_contract_address(message[0], "Invalid from address"),
                to_address=_contract_address(message[1], "Invalid to address"),
                nonce=message[2],
                selector=message[3],
                payload=tuple(payload),
            )
        )
    return OsOutput(
        header=OsOutputHeader(
            initial_root=header[0],
            final_root=header[1],
            prev_block_number=header[2],
            new_block_number=header[3],
            prev_block_hash=header[4],
            new_block_hash=header[5],
            os_program_hash=header[6],
            starknet_os_config_hash=header[7],
            use_kzg_da=use_kzg_da != 0,
            full_output=full_output != 0,
        ),
        kzg=None,
        messages_to_l1=tuple(to_l1),
        messages_to_l2=tuple(to_l2),
        state_diff=None,
    )
