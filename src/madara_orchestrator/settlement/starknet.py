"""Starknet settlement client (SPEC §8.3): an L3 settles on a Starknet L2 by invoking the core contract's
``update_state`` from a single-owner account, durably, through the send loop the Ethereum transaction
manager uses (``durable.DurableSender``; ``StarknetChain`` is its chain backend).

- Every signed INVOKE_TXN_V3 is stored in the ``TxStore`` (as the JSON sent to
  ``starknet_addInvokeTransaction``) BEFORE it is broadcast; its hash is computed locally, so a crash at
  any point leaves a record of every transaction that may be in the mempool or executed.
- The nonce is reserved per idempotency key in the store and reconciled with ``starknet_getNonce`` at
  ``latest`` and ``pre_confirmed``: a key keeps its nonce across restarts; a nonce spent by a transaction
  the store does not know is released and the job retry takes a new one.
- A restart first looks for a receipt of any stored attempt (executed → wait for acceptance, never send
  again), else re-broadcasts the stored JSON unchanged (a duplicate is fine).
- A key whose transaction was accepted on L2 returns its stored result and sends nothing.

Fees: resource bounds are ``starknet_estimateFee`` (block ``pre_confirmed``) × ``fee_multiplier`` on both
the amounts and the unit prices (as starknet-rs does); the tip is 0. Above ``max_fee_fri`` nothing is signed.
The TxStore's Ethereum-named fee columns hold, in FRI: ``max_fee_per_gas`` = l2_gas max_price_per_unit,
``max_priority_fee_per_gas`` = tip, ``max_fee_per_blob_gas`` = l1_data_gas max_price_per_unit; the key's
``fee_paid_wei`` (and the result's) = the receipt's ``actual_fee`` amount, in FRI.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from starknet_py.constants import EC_ORDER
from starknet_py.hash.selector import get_selector_from_name
from starknet_py.hash.utils import message_signature
from starknet_py.net.client_models import ResourceBounds, ResourceBoundsMapping
from starknet_py.net.models.transaction import InvokeV3
from starknet_py.net.schemas.broadcasted_txn import BroadcastedTransactionSchema

from madara_orchestrator.domain.errors import BackendUnavailable, ConfigError, InvalidInput
from madara_orchestrator.domain.settlement_tx import AttemptRecord
from madara_orchestrator.interfaces import SettlementResult, TxStore
from madara_orchestrator.settlement import durable
from madara_orchestrator.settlement.blob_tx import Fees
from madara_orchestrator.settlement.durable import DurableSender, KeyGuard, SendPolicy, to_settlement_attempts
from madara_orchestrator.settlement.errors import FeeCapExceeded, SettlementTxError
from madara_orchestrator.settlement.eth_rpc import JsonRpc, JsonRpcError
from madara_orchestrator.starknet.felt import STARKNET_PRIME as FELT_PRIME
from madara_orchestrator.starknet.rpc import parse_felt
from madara_orchestrator.starknet.rpc_types import (
    CONTRACT_ERROR,
    DUPLICATE_TX,
    INSUFFICIENT_ACCOUNT_BALANCE,
    INSUFFICIENT_RESOURCES_FOR_VALIDATE,
    INVALID_TRANSACTION_NONCE,
    TRANSACTION_EXECUTION_ERROR,
    TXN_HASH_NOT_FOUND,
    VALIDATION_FAILURE,
)

log = logging.getLogger(__name__)

FELT_MAX = FELT_PRIME - 1
"""``Felt::MAX`` (-1): what ``get_state`` answers for the block number before the first settlement."""
QUERY_VERSION_BASE = 2**128
"""Added to the version of a transaction signed only for ``starknet_estimateFee`` (never executable)."""

UPDATE_STATE_SELECTOR = get_selector_from_name("update_state")
GET_STATE_SELECTOR = get_selector_from_name("get_state")

"""Where ``crash_hook`` is called: after an attempt is stored and before it is broadcast; after the node
took it and before that is recorded; after its accepted receipt is seen and before it is recorded final."""

ACCEPTED = ("ACCEPTED_ON_L2", "ACCEPTED_ON_L1")

_ZERO_BOUNDS = ResourceBoundsMapping(
    l1_gas=ResourceBounds(max_amount=0, max_price_per_unit=0),
    l1_data_gas=ResourceBounds(max_amount=0, max_price_per_unit=0),
    l2_gas=ResourceBounds(max_amount=0, max_price_per_unit=0),
)


# --------------------------------------------------------------------------------------------------
# Configuration


def _is_hex_felt(value: str) -> bool:
    digits = value.removeprefix("0x").removeprefix("0X")
    if not value.lower().startswith("0x") or not 1 <= len(digits) <= 64:
        return False
    try:
        return int(digits, 16) < FELT_PRIME
    except ValueError:
        return False


def felt_hex(value: int | str) -> str:
    """A felt as ``0x`` + 64 lowercase hex digits: the form addresses are stored and compared in."""
    number = int(value, 16) if isinstance(value, str) else value
    return f"0x{number:064x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StarknetSettlementConfig:
    """The ``orchestrator run --settle-on-starknet`` options (SPEC §8.3)."""

    rpc_url: str = field(repr=False)
    """--starknet-rpc-url (of the settlement layer, the L2; never shown whole: it may carry a key)"""
    account_address: str
    """--starknet-account-address: the operator's single-owner account"""
    private_key: str = field(repr=False)
    """--starknet-private-key (never logged)"""
    core_contract_address: str
    """--starknet-cairo-core-contract-address"""
    finality_retry_wait_s: float = 6.0
    """--starknet-finality-retry-wait-in-secs: receipt polling interval."""
    confirmation_timeout_s: float = 300.0
    """How long one call waits for ACCEPTED_ON_L2 before it fails (retryable; the retry resumes the tx)."""
    fee_multiplier: float = 1.5
    """Applied to the estimated amounts and unit prices of each resource."""
    max_fee_fri: int | None = None
    """Hard cap on the signed fee liability (Σ max_amount · max_price_per_unit), in FRI; None = no cap."""
    rpc_timeout_s: float = 30.0

    def problems(self) -> list[str]:
        out = []
        if not self.rpc_url.startswith(("http://", "https://")):
            out.append("--starknet-rpc-url must be an http(s) URL")
        if not _is_hex_felt(self.account_address) or int(self.account_address, 16) == 0:
            out.append("--starknet-account-address must be a non-zero 0x-hex felt")
        if not _is_hex_felt(self.core_contract_address) or int(self.core_contract_address, 16) == 0:
            out.append("--starknet-cairo-core-contract-address must be a non-zero 0x-hex felt")
        if not _is_hex_felt(self.private_key) or not 0 < int(self.private_key, 16) < EC_ORDER:
            out.append("--starknet-private-key must be a 0x-hex Stark private key (non-zero, below the curve order)")
        if self.finality_retry_wait_s <= 0 or self.confirmation_timeout_s <= 0 or self.rpc_timeout_s <= 0:
            out.append("the finality retry wait, the confirmation timeout and the RPC timeout must be > 0")
        if not self.fee_multiplier >= 1.0:
            out.append("the Starknet fee multiplier must be >= 1.0")
        if self.max_fee_fri is not None and self.max_fee_fri <= 0:
            out.append("the Starknet max fee (FRI) must be > 0 when set")
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class StarknetSettlementResult(SettlementResult):
    """``fee_paid_wei`` holds the receipt's ``actual_fee`` amount, in FRI (the v3 fee unit), not wei."""

    block_number: int | None = None


# --------------------------------------------------------------------------------------------------
# Pure encoders


def _felts(values: Sequence[int], what: str) -> list[int]:
    out = []
    for index, value in enumerate(values):
        number = int(value)
        if not 0 <= number < FELT_PRIME:
            raise InvalidInput(f"{what}[{index}] = {number} is not a felt (0 ≤ x < the Stark prime)")
        out.append(number)
    return out


def update_state_arguments(snos_output: Sequence[int], program_output: Sequence[int]) -> list[int]:
    """``update_state(snos_output, layout_bridge_output)``: the two spans and nothing more,
    ``[len, snos_output…, len, layout_bridge_output…]``, as the original sends them (SPEC §8.3; its
    ``CoreContract::update_state`` leaves the on-chain data words out) and as Piltover's two-span
    ``update_state`` takes them: one word more is "Input too long for arguments"."""
    snos = _felts(snos_output, "snos_output")
    bridge = _felts(program_output, "program_output")
    return [len(snos), *snos, len(bridge), *bridge]


def execute_calldata(to: int, selector: int, calldata: Sequence[int]) -> list[int]:
    """A Cairo 1 account's ``__execute__`` calldata for one call: ``[1, to, selector, len, *calldata]``."""
    return [1, to, selector, len(calldata), *calldata]


def resource_bounds(estimate: Mapping[str, Any], multiplier: float) -> ResourceBoundsMapping:
    """Bounds from one ``starknet_estimateFee`` result: each amount and unit price × ``multiplier``, rounded up."""

    def scaled(name: str) -> int:
        return math.ceil(_int(estimate.get(name), name) * multiplier)

    return ResourceBoundsMapping(
        l1_gas=ResourceBounds(max_amount=scaled("l1_gas_consumed"), max_price_per_unit=scaled("l1_gas_price")),
        l1_data_gas=ResourceBounds(
            max_amount=scaled("l1_data_gas_consumed"), max_price_per_unit=scaled("l1_data_gas_price")
        ),
        l2_gas=ResourceBounds(max_amount=scaled("l2_gas_consumed"), max_price_per_unit=scaled("l2_gas_price")),
    )


def fee_liability(bounds: ResourceBoundsMapping, tip: int = 0) -> int:
    """The most the account can be charged for a transaction with these bounds, in FRI."""
    return (
        bounds.l1_gas.max_amount * bounds.l1_gas.max_price_per_unit
        + bounds.l1_data_gas.max_amount * bounds.l1_data_gas.max_price_per_unit
        + bounds.l2_gas.max_amount * (bounds.l2_gas.max_price_per_unit + tip)
    )


def _int(value: Any, what: str) -> int:
    """A number the node answered; a malformed answer is the node misbehaving (an outage to wait out)."""
    try:
        if not isinstance(value, bool):
            return parse_felt(value, what)
    except InvalidInput:
        pass
    raise BackendUnavailable(f"the Starknet node answered {what} = {value!r:.80}; expected a number")


# --------------------------------------------------------------------------------------------------
# JSON-RPC


class StarknetRpcError(JsonRpcError):
    """A Starknet node's JSON-RPC error."""

    def _text(self) -> str:
        data = self.data
        return f"{self.method} failed: error {self.code}: {self.rpc_message}" + (
            f" ({data})" if data is not None else ""
        )

    @property
    def detail(self) -> str:
        """The node's own words: the error data (revert trace, validation message) when it sends one."""
        if self.data is None:
            return self.rpc_message
        if isinstance(self.data, dict):
            for name in ("execution_error", "revert_error", "error"):
                if self.data.get(name) is not None:
                    inner = self.data[name]
                    return inner if isinstance(inner, str) else json.dumps(inner)
        return self.data if isinstance(self.data, str) else json.dumps(self.data)


def starknet_json_rpc(url: str, *, timeout_s: float, client: httpx.AsyncClient | None = None) -> JsonRpc:
    """JSON-RPC to a Starknet node for settlement: one attempt per call in its own timeout; node errors →
    ``StarknetRpcError``; rate limits → ``RateLimited``."""
    return JsonRpc(url, timeout_s=timeout_s, client=client, label="Starknet", error=StarknetRpcError, rate_limits=True)


def provider_error(
    exc: StarknetRpcError,
    *,
    attempts: Sequence[Any] = (),
    nonce: int | None = None,
    tx_hash: str | None = None,
) -> SettlementTxError:
    """A node's refusal in SPEC §8.3's words. A validation failure (bad signature, wrong account) is not
    retried; execution and contract errors depend on the contract's state (a fact not yet registered)."""
    kwargs: dict[str, Any] = {"attempts": list(attempts), "nonce": nonce, "tx_hash": tx_hash}
    if exc.code == VALIDATION_FAILURE:
        return SettlementTxError(
            f"Validation failure: {exc.detail}. Check --starknet-account-address and --starknet-private-key.",
            retryable=False,
            **kwargs,
        )
    if exc.code == TRANSACTION_EXECUTION_ERROR:
        return SettlementTxError(f"Transaction execution error: {exc.detail}", **kwargs)
    if exc.code == CONTRACT_ERROR:
        return SettlementTxError(f"Contract error: {exc.detail}", **kwargs)
    if exc.code == INSUFFICIENT_ACCOUNT_BALANCE:
        return SettlementTxError(
            f"Insufficient account balance: the operator account cannot pay the fee ({exc.detail}); fund it",
            **kwargs,
        )
    if exc.code == INSUFFICIENT_RESOURCES_FOR_VALIDATE:
        return SettlementTxError(f"Insufficient resources for validate: {exc.detail}", **kwargs)
    return SettlementTxError(f"Starknet provider error {exc.code} in {exc.method}: {exc.detail}", **kwargs)


# --------------------------------------------------------------------------------------------------
# The client


STARKNET_WORDS = durable.SenderWords(
    signer="account",
    settled="accepted",
    settled_log="accepted on L2",
    found="executed",
    not_final="executed, not yet accepted on L2",
    not_landed="not executed",
)


class StarknetChain:
    """The ``ChainBackend`` of a Starknet L2: INVOKE_TXN_V3 ``update_state`` calls from the operator account,
    stored as the JSON sent to ``starknet_addInvokeTransaction``.

    The store's Ethereum-named fee columns hold, in FRI: ``max_fee_per_gas`` = l2_gas max_price_per_unit,
    ``max_priority_fee_per_gas`` = tip, ``max_fee_per_blob_gas`` = l1_data_gas max_price_per_unit."""

    words = STARKNET_WORDS

    def __init__(self, config: StarknetSettlementConfig, rpc: JsonRpc) -> None:
        """``rpc``: ``starknet_json_rpc`` to ``config.rpc_url``. ``ConfigError`` names each wrong option."""
        problems = config.problems()
        if problems:
            raise ConfigError(problems)
        self.config = config
        self.rpc = rpc
        self._private_key = int(config.private_key, 16)
        self.account = int(config.account_address, 16)
        self.sender = felt_hex(self.account)
        self.core = int(config.core_contract_address, 16)
        self._chain_id: int | None = None

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = _int(await self.rpc.request("starknet_chainId", []), "the chain id")
        return self._chain_id

    async def account_nonce(self, block_id: str) -> int:
        result = await self.rpc.request(
            "starknet_getNonce", {"block_id": block_id, "contract_address": hex(self.account)}
        )
        return _int(result, "the account nonce")

    async def nonce(self, block: Literal["latest", "pending"]) -> int:
        return await self.account_nonce("pre_confirmed" if block == "pending" else block)

    async def head(self) -> int:
        return _int(await self.rpc.request("starknet_blockNumber", []), "the block number")

    async def transaction_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt, or None while the node has not executed the transaction."""
        try:
            receipt = await self.rpc.request("starknet_getTransactionReceipt", {"transaction_hash": tx_hash})
        except StarknetRpcError as exc:
            if exc.code == TXN_HASH_NOT_FOUND:
                return None
            raise
        return receipt if isinstance(receipt, dict) else None

    async def receipt(self, tx_hash: str) -> durable.Receipt | None:
        """An executed transaction's receipt; final once accepted on L2 (its block and fee are read then)."""
        receipt = await self.transaction_receipt(tx_hash)
        if receipt is None:
            return None
        if receipt.get("finality_status") not in ACCEPTED:
            return durable.Receipt(
                block_number=None, final=False, revert_error=None, fee_paid=None, fee_text="", raw=receipt
            )
        block = receipt.get("block_number")
        block_number = _int(block, "the receipt's block number") if block is not None else None
        reverted = receipt.get("execution_status") == "REVERTED"
        fee = receipt.get("actual_fee")
        fee_paid = None if reverted or not isinstance(fee, dict) else _int(fee.get("amount"), "actual_fee")
        unit = fee.get("unit", "FRI") if isinstance(fee, dict) else ""
        return durable.Receipt(
            block_number=block_number,
            final=True,
            revert_error=(
                f"Transaction {tx_hash} has been reverted: {receipt.get('revert_reason', '')}" if reverted else None
            ),
            fee_paid=fee_paid,
            fee_text=f"fee {fee_paid} {unit}",
            raw=receipt,
        )

    async def broadcast(self, raw: bytes) -> None:
        await self.rpc.request("starknet_addInvokeTransaction", {"invoke_transaction": json.loads(raw)})

    def refusal(self, exc: Exception) -> durable.Refusal | None:
        if not isinstance(exc, StarknetRpcError):
            return None
        if exc.code == DUPLICATE_TX:
            return "already known"
        if exc.code == INVALID_TRANSACTION_NONCE:
            return "nonce too low"
        return "other"

    async def nonce_lost(self, attempt: AttemptRecord, exc: Exception) -> str:
        account_nonce = await self.account_nonce("pre_confirmed")
        why = (
            f"nonce {attempt.nonce} was spent by another transaction"
            if account_nonce > attempt.nonce
            else f"nonce {attempt.nonce} is not the account's next nonce {account_nonce}"
        )
        detail = exc.detail if isinstance(exc, StarknetRpcError) else str(exc)
        return f"{why} ({detail})"

    def submission_error(self, exc: Exception, attempts: list[AttemptRecord], nonce: int | None) -> SettlementTxError:
        assert isinstance(exc, StarknetRpcError)
        return provider_error(exc, attempts=to_settlement_attempts(attempts), nonce=nonce)

    async def _estimate(self, execute: list[int], nonce: int, chain_id: int) -> dict[str, Any]:
        """``starknet_estimateFee`` of the invoke, signed in its query form (version 3 + 2^128)."""
        query = InvokeV3(
            version=3 + QUERY_VERSION_BASE,
            signature=[],
            nonce=nonce,
            resource_bounds=_ZERO_BOUNDS,
            tip=0,
            calldata=execute,
            sender_address=self.account,
        )
        signed = await self._signed(query, chain_id)
        result = await self.rpc.request(
            "starknet_estimateFee",
            {"request": [_broadcast_json(signed)], "simulation_flags": [], "block_id": "pre_confirmed"},
        )
        if not isinstance(result, list) or not result or not isinstance(result[0], dict):
            raise BackendUnavailable(f"starknet_estimateFee at {self.rpc.where} answered {result!r:.200}")
        estimate: dict[str, Any] = result[0]
        return estimate

    async def _signed(self, tx: InvokeV3, chain_id: int) -> InvokeV3:
        """``sign_invoke`` off the event loop: crypto-cpp-py's Stark ECDSA signature takes about 0.25 s of CPU
        (its library call leaves the GIL), which on the loop's thread would stop the API and every job."""
        return await asyncio.to_thread(self.sign_invoke, tx, chain_id)

    def sign_invoke(self, tx: InvokeV3, chain_id: int) -> InvokeV3:
        tx_hash = tx.calculate_hash(chain_id)
        r, s = message_signature(msg_hash=tx_hash, priv_key=self._private_key)
        return dataclasses.replace(tx, signature=[r, s])

    async def sign(
        self, key: str, nonce: int, request: list[int], *, previous: AttemptRecord | None, existing: list[AttemptRecord]
    ) -> durable.SignedAttempt:
        """Estimate (× ``fee_multiplier``), check the cap and sign an invoke of ``update_state(request)``;
        a new attempt is never a replacement (``previous`` is None)."""
        chain_id = await self.chain_id()
        execute = execute_calldata(self.core, UPDATE_STATE_SELECTOR, request)
        try:
            estimate = await self._estimate(execute, nonce, chain_id)
        except StarknetRpcError as exc:
            raise provider_error(exc, attempts=to_settlement_attempts(existing), nonce=nonce) from exc
        bounds = resource_bounds(estimate, self.config.fee_multiplier)
        tip = 0
        liability = fee_liability(bounds, tip)
        cap = self.config.max_fee_fri
        if cap is not None and liability > cap:
            pending = [a for a in existing if a.status.is_in_flight]
            log.error("settlement %s: fee liability %s FRI exceeds the cap %s FRI; nothing signed", key, liability, cap)
            raise FeeCapExceeded(
                f"Starknet state update fee liability {liability} FRI (estimated overall fee "
                f"{_int(estimate.get('overall_fee', 0), 'overall_fee')} {estimate.get('unit', 'FRI')} × "
                f"{self.config.fee_multiplier:g}) exceeds the configured cap {cap} FRI. Nothing was signed. "
                "Retry when L2 fees fall (the job retry resumes this settlement), or raise the cap.",
                attempts=to_settlement_attempts(existing),
                nonce=nonce,
                tx_hash=pending[-1].tx_hash if pending else None,
            )
        tx = InvokeV3(
            version=3,
            signature=[],
            nonce=nonce,
            resource_bounds=bounds,
            tip=tip,
            calldata=execute,
            sender_address=self.account,
        )
        signed = await self._signed(tx, chain_id)
        return durable.SignedAttempt(
            tx_hash=hex(signed.calculate_hash(chain_id)),
            raw=json.dumps(_broadcast_json(signed), separators=(",", ":")).encode(),
            gas_multiplier=self.config.fee_multiplier,
            fees=Fees(
                max_fee_per_gas=bounds.l2_gas.max_price_per_unit,
                max_priority_fee_per_gas=tip,
                max_fee_per_blob_gas=bounds.l1_data_gas.max_price_per_unit,
            ),
            detail=f"fee liability ≤ {liability} FRI",
        )


def starknet_sender(
    chain: StarknetChain,
    store: TxStore,
    *,
    key_guard: KeyGuard | None = None,
    crash_hook: Callable[[str], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> DurableSender[list[int]]:
    """The durable send loop of Starknet settlement over ``chain`` and ``store``, as its options set it: one
    confirmation window and polling interval, never a fee bump, a nonce spent elsewhere released; for the
    composition root (and tests: ``crash_hook``, ``sleep``, ``monotonic``). ``key_guard`` keeps two
    processes from sending the same settlement at once."""
    policy = SendPolicy(
        confirmation_timeout_s=chain.config.confirmation_timeout_s,
        poll_interval_s=chain.config.finality_retry_wait_s,
        max_bumps=None,
        release_lost_nonce=True,
    )
    return DurableSender(
        chain, store, policy, monotonic=monotonic, sleep=sleep, crash_hook=crash_hook, key_guard=key_guard
    )


class StarknetSettlementClient:
    """``SettlementClient`` for a Starknet L2: durable ``update_state`` invokes keyed by the batch, sent by
    the durable send loop (``starknet_sender``) over a ``StarknetChain``; never replaced with a higher
    fee (a window without acceptance fails the call; its retry resumes the transaction).

    One send per key at a time: in this process by a lock, across processes by the sender's ``key_guard``.
    """

    def __init__(
        self,
        *,
        chain: StarknetChain,
        txmgr: DurableSender[list[int]],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``chain`` and ``txmgr`` (``starknet_sender`` over that ``chain``) are the composition root's;
        ``aclose`` closes the chain's rpc. ``sleep`` paces ``wait_for_tx_finality``."""
        self.config = chain.config
        self._rpc = chain.rpc
        self.chain = chain
        self.core_contract = felt_hex(chain.core)
        self._sleep = sleep
        self.txmgr = txmgr

    def __repr__(self) -> str:
        return f"StarknetSettlementClient(core_contract={self.core_contract}, operator={self.operator_address})"

    @property
    def operator_address(self) -> str:
        """The account address as ``0x`` + 64 lowercase hex digits (the ``sender`` in the TxStore)."""
        return self.chain.sender

    async def aclose(self) -> None:
        await self._rpc.aclose()

    # --- reads -------------------------------------------------------------------------------------

    async def chain_id(self) -> int:
        return await self.chain.chain_id()

    async def get_nonce(self) -> int:
        """The operator account's nonce, counting pre-confirmed transactions."""
        return await self.chain.account_nonce("pre_confirmed")

    async def get_state(self) -> list[int]:
        """The core contract's ``get_state()`` at ``latest``: ``[state_root, block_number, block_hash]``."""
        request = {
            "contract_address": hex(self.chain.core),
            "entry_point_selector": hex(GET_STATE_SELECTOR),
            "calldata": [],
        }
        try:
            result = await self._rpc.request("starknet_call", {"request": request, "block_id": "latest"})
        except StarknetRpcError as exc:
            raise InvalidInput(
                f"get_state on the core contract {self.core_contract} failed: {exc.detail} "
                f"(error {exc.code}); is it deployed there?"
            ) from exc
        if not isinstance(result, list):
            raise BackendUnavailable(f"starknet_call get_state answered {result!r:.200}; expected a felt list")
        return [_int(v, "get_state") for v in result]

    async def last_settled_block(self) -> int | None:
        """Element [1] of ``get_state()``; ``Felt::MAX`` (-1, nothing settled yet) → None."""
        state = await self.get_state()
        if not state:
            raise InvalidInput(f"get_state on the core contract {self.core_contract} returned an empty result")
        if len(state) < 2:
            raise InvalidInput(f"get_state on the core contract {self.core_contract} returned {state}: no block number")
        return None if state[1] == FELT_MAX else state[1]

    async def transaction_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt, or None while the node has not executed the transaction."""
        return await self.chain.transaction_receipt(tx_hash)

    async def verify_tx_inclusion(self, tx_hash: str) -> str:
        """``Rejected: …`` when reverted; ``Pending`` until accepted on L2 (or unknown); then ``Verified``."""
        receipt = await self.transaction_receipt(tx_hash)
        if receipt is None:
            return "Pending"
        if receipt.get("execution_status") == "REVERTED":
            return f"Rejected: Transaction {tx_hash} has been reverted: {receipt.get('revert_reason', '')}"
        if receipt.get("finality_status") in ACCEPTED:
            return "Verified"
        return "Pending"

    async def wait_for_tx_finality(self, tx_hash: str, *, max_retries: int = 10) -> int:
        """The block number once the transaction is accepted on L2 (SPEC §8.3: wait first, ≤ 10 polls)."""
        for _ in range(max_retries):
            await self._sleep(self.config.finality_retry_wait_s)
            receipt = await self.transaction_receipt(tx_hash)
            if receipt is not None and receipt.get("finality_status") in ACCEPTED:
                return _int(receipt.get("block_number"), "the receipt's block number")
        raise SettlementTxError(
            f"Max retries exceeeded while waiting for tx {tx_hash} finality ({max_retries} polls, "
            f"{self.config.finality_retry_wait_s:g}s apart)"
        )

    # --- writes ------------------------------------------------------------------------------------

    async def update_state_with_blobs(
        self,
        program_output: Sequence[int],
        blobs: Sequence[bytes],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> SettlementResult:
        raise SettlementTxError(
            "Starknet settlement takes calldata; blob DA is for Ethereum (use update_state_calldata, or settle "
            "on Ethereum with --settle-on-ethereum)",
            retryable=False,
        )

    async def update_state_calldata(
        self,
        snos_output: Sequence[int],
        program_output: Sequence[int],
        *,
        idempotency_key: str,
        after_key: str | None = None,
    ) -> StarknetSettlementResult:
        """Settle ``update_state(snos_output, program_output)`` once for ``idempotency_key``.

        Returns when the transaction is accepted on L2; a key settled before returns its stored result and
        sends nothing. Raises ``TxReverted`` (not retryable), ``FeeCapExceeded``, ``SettlementTxError``
        (with the attempts) or ``BackendUnavailable`` (an outage to wait out).
        """
        return await self._settle(idempotency_key, update_state_arguments(snos_output, program_output), after=after_key)

    async def _settle(self, key: str, arguments: list[int], *, after: str | None = None) -> StarknetSettlementResult:
        """Settle ``update_state(arguments)`` once for ``key`` (the arguments as they are, unchecked)."""

        async def build() -> list[int]:
            return arguments

        outcome = await self.txmgr.send(key, build, after=after)
        return outcome.result(StarknetSettlementResult, block_number=outcome.block_number)


def _broadcast_json(tx: InvokeV3) -> dict[str, Any]:
    """The transaction as ``starknet_addInvokeTransaction`` / ``starknet_estimateFee`` take it."""
    dump: Callable[..., dict[str, Any]] = BroadcastedTransactionSchema().dump
    return dump(obj=tx)
