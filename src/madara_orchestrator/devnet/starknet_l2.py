"""A double of a Starknet L2 node: the settlement layer an L3 appchain settles on.

No Starknet node runs on this machine, so this speaks the real Starknet JSON-RPC (spec 0.10, what
starknet-py 0.30 expects) well enough for starknet-py's ``FullNodeClient`` and single-owner ``Account``
(v3 invokes) to work against it unmodified. It hosts three kinds of built-in contracts:

- dev accounts (OpenZeppelin-like): a v3 invoke is checked as the sequencer and the account would check
  it — version 0x3 (61), known sender (55), hash not seen before (59), nonce equal to the account's
  pre-confirmed nonce (52), resource bounds covering the fixed gas model (53), signature ``[r, s]`` of the
  transaction hash by the account's key (55), Cairo-1 ``__execute__`` calldata (55) — and else rejected;
- a Piltover-like core contract: ``update_state(snos_output, layout_bridge_output, …)`` from the operator
  account checks the SNOS header, that the bridge output commits to the SNOS output, that the bridge
  output's fact is registered, and block and state-root continuity; ``get_state()`` returns
  ``[state_root, block_number, block_hash]`` (block number ``FELT_PRIME - 1``, i.e. -1, before the first
  settlement);
- an Integrity-like fact registry: ``register_fact(fact)`` (verifier accounts only) and ``is_valid(fact)``.

An accepted transaction always lands: a failing call reverts it (REVERTED, with a reason; nonce consumed),
as on Starknet. Blocks are sealed at once per transaction (``block_time_s == 0``), every ``block_time_s``
by ``start()``, or by ``seal_block()``; ``hold_blocks(True)`` keeps transactions pre-confirmed.

It does not run Cairo, charge fees (no balances: the fee is computed from a fixed gas model and reported),
check the SNOS/bootloader program hashes or config hash, process L1↔L3 messages, or persist anything.
Roots and block hashes are Poseidon digests of the double's own state, not Patricia-tree roots.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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
from madara_orchestrator.devnet.layout_bridge import BRIDGE_PROGRAM_HASH, FELT_PRIME, l2_fact, output_hash

SPEC_VERSION = "0.10.2"
"""The JSON-RPC spec version served: what starknet-py 0.30 (``EXPECTED_RPC_VERSION``) expects."""
STARKNET_VERSION = "0.14.0"
DEFAULT_CHAIN_ID = "SN_DEVNET_L2"
QUERY_VERSION_BASE = 2**128
"""Added to the version of a transaction signed only for fee estimation (never executable)."""
BLOCK_NUMBER_BEFORE_GENESIS = FELT_PRIME - 1
"""The core contract's block number before anything is settled: -1 as a felt (Piltover's ``Felt::MAX``)."""
SNOS_HEADER_WORDS = 10
"""initial_root, final_root, prev_block_number, new_block_number, prev_block_hash, new_block_hash,
os_program_hash, starknet_os_config_hash, use_kzg_da, full_output."""
USE_KZG_DA_INDEX = 8

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
REGISTER_FACT_SELECTOR = get_selector_from_name("register_fact")
IS_VALID_SELECTOR = get_selector_from_name("is_valid")
LOG_STATE_UPDATE_KEY = get_selector_from_name("LogStateUpdate")
FACT_REGISTERED_KEY = get_selector_from_name("FactRegistered")


def _poseidon(values: Sequence[int]) -> int:
    return int(poseidon_hash_many(list(values)))


def _signed(value: int) -> int:
    """A felt read as a signed number (``FELT_PRIME - 1`` is -1)."""
    return value - FELT_PRIME if value > FELT_PRIME // 2 else value


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


@dataclass(slots=True, kw_only=True)
class _World:
    nonces: dict[int, int]
    core: CoreState
    facts: set[int]
    update_state_count: int = 0

    def copy(self) -> _World:
        return _World(
            nonces=dict(self.nonces), core=self.core, facts=set(self.facts), update_state_count=self.update_state_count
        )

    def root(self) -> int:
        nonces = [felt for address in sorted(self.nonces) for felt in (address, self.nonces[address])]
        return _poseidon([*self.core.to_felts(), self.update_state_count, *nonces, *sorted(self.facts)])


class _Revert(Exception):
    """A contract call failed: the transaction reverts with this reason."""


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
        bridge_program_hash: int = BRIDGE_PROGRAM_HASH,
        accounts: Sequence[DevAccount] = DEV_ACCOUNTS,
    ) -> None:
        """``accounts[0]`` is the core contract's operator, ``accounts[1]`` (if any) the fact registry's
        verifier."""
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
        self.bridge_program_hash = bridge_program_hash
        self.accounts: tuple[DevAccount, ...] = tuple(accounts)
        self.operator = self.accounts[0]
        self.verifiers: tuple[DevAccount, ...] = self.accounts[1:2]
        self._accounts_by_address = {a.address: a for a in self.accounts}
        self._contracts: dict[int, tuple[int, dict[int, _Entrypoint]]] = {
            core_contract_address: (
                CORE_CONTRACT_CLASS_HASH,
                {UPDATE_STATE_SELECTOR: self._update_state, GET_STATE_SELECTOR: self._get_state},
            ),
            fact_registry_address: (
                FACT_REGISTRY_CLASS_HASH,
                {REGISTER_FACT_SELECTOR: self._register_fact, IS_VALID_SELECTOR: self._is_valid},
            ),
        }
        for account in self.accounts:
            self._contracts[account.address] = (ACCOUNT_CLASS_HASH, {})

        genesis_world = _World(nonces={a.address: 0 for a in self.accounts}, core=GENESIS_CORE_STATE, facts=set())
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

    def is_fact_registered(self, fact: int) -> bool:
        return fact in self._pending_world.facts

    def register_fact_directly(self, fact: int) -> None:
        """Register a fact without a transaction, at once visible at both latest and pre_confirmed (a state
        override for tests that do not go through a verifier)."""
        self._pending_world.facts.add(fact)
        self._blocks[-1].world.facts.add(fact)
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

    # -- contracts ------------------------------------------------------------------------------------

    def _update_state(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        if ctx.caller != self.operator.address:
            raise _Revert(f"Config: not owner or operator (caller {ctx.caller:#x})")
        snos_output, program_output = _decode_update_state(calldata)
        if len(snos_output) < SNOS_HEADER_WORDS:
            raise _Revert(
                f"snos: invalid output size: {len(snos_output)} words, the header alone has {SNOS_HEADER_WORDS}"
            )
        if snos_output[USE_KZG_DA_INDEX] not in (0, 1):
            raise _Revert(f"snos: invalid use_kzg_da {snos_output[USE_KZG_DA_INDEX]:#x} (expected 0 or 1)")
        if not program_output:
            raise _Revert("lb: empty layout bridge output")
        snos_hash = output_hash(snos_output)
        if program_output[-1] != snos_hash:
            raise _Revert(
                f"snos: invalid output hash: the layout bridge output commits to {program_output[-1]:#x}, "
                f"the SNOS output hashes to {snos_hash:#x}"
            )
        fact = l2_fact(self.bridge_program_hash, program_output)
        if fact not in ctx.world.facts:
            raise _Revert(f"no fact registered: unregistered fact {fact:#x} for the layout bridge output")
        core = ctx.world.core
        prev_block, new_block = snos_output[2], snos_output[3]
        if prev_block != core.block_number:
            raise _Revert(
                f"State: invalid prev block num: the output follows block {_signed(prev_block)} but the last "
                f"settled block is {_signed(core.block_number)} (a gap: not contiguous)"
            )
        if _signed(new_block) <= _signed(prev_block):
            raise _Revert(
                f"State: invalid block number: new block {_signed(new_block)} is not after {_signed(prev_block)}"
            )
        if core.has_settled and snos_output[0] != core.state_root:
            raise _Revert(
                f"State: invalid previous root: the output starts from root {snos_output[0]:#x}, "
                f"the settled root is {core.state_root:#x}"
            )
        ctx.world.core = CoreState(state_root=snos_output[1], block_number=new_block, block_hash=snos_output[5])
        ctx.world.update_state_count += 1
        ctx.events.append(
            Event(
                from_address=self.core_contract_address,
                keys=(LOG_STATE_UPDATE_KEY,),
                data=tuple(ctx.world.core.to_felts()),
            )
        )
        return []

    def _get_state(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        _expect_args(calldata, 0, "get_state")
        return ctx.world.core.to_felts()

    def _register_fact(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        _expect_args(calldata, 1, "register_fact")
        if ctx.caller not in {v.address for v in self.verifiers}:
            raise _Revert(f"caller {ctx.caller:#x} is not a verifier: only verifier accounts register facts")
        ctx.world.facts.add(calldata[0])
        ctx.events.append(Event(from_address=self.fact_registry_address, keys=(FACT_REGISTERED_KEY,), data=calldata))
        return []

    def _is_valid(self, ctx: _CallContext, calldata: tuple[int, ...]) -> list[int]:
        _expect_args(calldata, 1, "is_valid")
        return [1 if calldata[0] in ctx.world.facts else 0]

    def _invoke_entrypoint(self, ctx: _CallContext, call: ContractCall) -> list[int]:
        """Run one call; raises ``_Revert`` with Starknet's wording for a missing contract or entry point."""
        contract = self._contracts.get(call.to)
        if contract is None:
            raise _Revert(f"Requested contract address {call.to:#066x} is not deployed.")
        entrypoint = contract[1].get(call.selector)
        if entrypoint is None:
            raise _Revert(f"Entry point EntryPointSelector({call.selector:#066x}) not found in contract.")
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
                    f"Execution failed. Failure reason: '{failure}'."
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
                CONTRACT_ERROR, "Contract error", {"revert_error": f"Execution failed. Failure reason: '{failure}'."}
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


def _expect_args(calldata: tuple[int, ...], count: int, function: str) -> None:
    if len(calldata) < count:
        raise _Revert(f"Failed to deserialize param #{len(calldata) + 1} of {function}")
    if len(calldata) > count:
        raise _Revert(f"Input too long for arguments of {function}: {len(calldata)} words for {count}")


def _decode_update_state(calldata: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``[len, snos_output…, len, program_output…]`` then, optionally, ``onchain_data_hash`` and
    ``onchain_data_size`` as one felt (2 words) or a u256 (3 words); those are not used, as in Piltover."""

    def array_at(position: int, name: str) -> tuple[tuple[int, ...], int]:
        if position >= len(calldata):
            raise _Revert(f"Failed to deserialize param {name} of update_state: calldata ends at word {position}")
        length = calldata[position]
        end = position + 1 + length
        if end > len(calldata):
            raise _Revert(
                f"Failed to deserialize param {name} of update_state: {length} words declared, "
                f"{len(calldata) - position - 1} remain"
            )
        return calldata[position + 1 : end], end

    snos_output, position = array_at(0, "snos_output")
    program_output, position = array_at(position, "program_output")
    tail = len(calldata) - position
    if tail not in (0, 2, 3):
        raise _Revert(
            f"Input too long for arguments of update_state: {tail} words after program_output "
            "(expected none, or onchain_data_hash and onchain_data_size)"
        )
    return snos_output, program_output
