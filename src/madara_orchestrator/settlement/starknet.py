"""Starknet settlement client (SPEC §8.3): an L3 settles on a Starknet L2 by invoking the core contract's
``update_state`` from a single-owner account, durably, like the Ethereum transaction manager.

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
import itertools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from starknet_py.hash.selector import get_selector_from_name
from starknet_py.hash.utils import message_signature
from starknet_py.net.client_models import ResourceBounds, ResourceBoundsMapping
from starknet_py.net.models.transaction import InvokeV3
from starknet_py.net.schemas.broadcasted_txn import BroadcastedTransactionSchema

from madara_orchestrator.backends.tx_store import (
    AttemptRecord,
    AttemptStatus,
    KeyStatus,
    TxKeyRecord,
    TxStore,
    attempts_summary,
)
from madara_orchestrator.domain.errors import BackendUnavailable, ConfigError, InvalidInput, OrchestratorError
from madara_orchestrator.interfaces import SettlementAttempt, SettlementResult
from madara_orchestrator.settlement.durable import (
    KeyGuard,
    KeyLocks,
    redact_url,
    to_settlement_attempts,
)
from madara_orchestrator.settlement.errors import FeeCapExceeded, SettlementTxError, TxReverted
from madara_orchestrator.starknet.rpc import parse_felt

log = logging.getLogger(__name__)

FELT_PRIME = 2**251 + 17 * 2**192 + 1
FELT_MAX = FELT_PRIME - 1
"""``Felt::MAX`` (-1): what ``get_state`` answers for the block number before the first settlement."""
EC_ORDER = 0x800000000000010FFFFFFFFFFFFFFFFB781126DCAE7B2321E66A241ADC64D2F
QUERY_VERSION_BASE = 2**128
"""Added to the version of a transaction signed only for ``starknet_estimateFee`` (never executable)."""

UPDATE_STATE_SELECTOR = get_selector_from_name("update_state")
GET_STATE_SELECTOR = get_selector_from_name("get_state")

"""Where ``crash_hook`` is called: after an attempt is stored and before it is broadcast; after the node
took it and before that is recorded; after its accepted receipt is seen and before it is recorded final."""

# Starknet JSON-RPC error codes (starknet_api_openrpc.json / starknet_write_api.json).
CONTRACT_NOT_FOUND = 20
TXN_HASH_NOT_FOUND = 29
CONTRACT_ERROR = 40
TRANSACTION_EXECUTION_ERROR = 41
INVALID_TRANSACTION_NONCE = 52
INSUFFICIENT_RESOURCES_FOR_VALIDATE = 53
INSUFFICIENT_ACCOUNT_BALANCE = 54
VALIDATION_FAILURE = 55
DUPLICATE_TX = 59
RATE_LIMITED_CODES = (-32005, 429)

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


class StarknetRpcError(OrchestratorError):
    """The node answered with a JSON-RPC error (the request reached it and was refused)."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data
        super().__init__(f"{method} failed: error {code}: {message}" + (f" ({data})" if data is not None else ""))

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


class RateLimited(BackendUnavailable):
    """The node refused the request for its rate limit: a condition to wait out."""


class _JsonRpc:
    """JSON-RPC over HTTP, each call in its own timeout. Transport failures → ``BackendUnavailable``."""

    def __init__(self, url: str, *, timeout_s: float, client: httpx.AsyncClient | None) -> None:
        self.url = url
        self.where = redact_url(url)
        self.timeout_s = timeout_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._owns_client = client is None
        self._ids = itertools.count(1)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def request(self, method: str, params: Any) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self._client.post(self.url, json=payload)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"Starknet RPC {method} to {self.where} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if resp.status_code == 429:
            raise RateLimited(f"Request rate limited: the Starknet node at {self.where} refused {method} (HTTP 429)")
        if resp.status_code != 200:
            raise BackendUnavailable(
                f"Starknet RPC {method} to {self.where} answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        try:
            body = resp.json()
        except ValueError as exc:
            raise BackendUnavailable(
                f"Starknet RPC {method} at {self.where} answered non-JSON: {resp.text[:200]}"
            ) from exc
        if not isinstance(body, dict):
            raise BackendUnavailable(f"Starknet RPC {method} at {self.where} answered {body!r:.200}")
        err = body.get("error")
        if err is not None:
            if not isinstance(err, dict):
                raise BackendUnavailable(f"Starknet RPC {method} at {self.where} answered error {err!r:.200}")
            code = err.get("code", 0)
            code = code if isinstance(code, int) else 0
            message = str(err.get("message", ""))
            if code in RATE_LIMITED_CODES or "rate limit" in message.lower() or "too many requests" in message.lower():
                raise RateLimited(
                    f"Request rate limited: the Starknet node at {self.where} refused {method}: {message}"
                )
            raise StarknetRpcError(method, code, message, err.get("data"))
        if "result" not in body:
            raise BackendUnavailable(f"Starknet RPC {method} at {self.where} answered without a result: {body!r:.200}")
        return body["result"]


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


@dataclass(frozen=True, slots=True)
class _Found:
    attempt: AttemptRecord
    receipt: dict[str, Any]

    @property
    def is_accepted(self) -> bool:
        return self.receipt.get("finality_status") in ACCEPTED


class StarknetSettlementClient:
    """``SettlementClient`` for a Starknet L2: durable ``update_state`` invokes keyed by the batch.

    One send per key at a time: in this process by a lock, across processes by ``key_guard``.
    """

    def __init__(
        self,
        config: StarknetSettlementConfig,
        *,
        store: TxStore,
        key_guard: KeyGuard | None = None,
        crash_hook: Callable[[str], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        problems = config.problems()
        if problems:
            raise ConfigError(problems)
        self.config = config
        self.store = store
        self._private_key = int(config.private_key, 16)
        self._account = int(config.account_address, 16)
        self._core = int(config.core_contract_address, 16)
        self.core_contract = felt_hex(self._core)
        self._rpc = _JsonRpc(config.rpc_url, timeout_s=config.rpc_timeout_s, client=http_client)
        self._keys = KeyLocks(key_guard)
        self._crash_hook = crash_hook
        self._sleep = sleep
        self._monotonic = monotonic
        self._chain_id: int | None = None

    def __repr__(self) -> str:
        return f"StarknetSettlementClient(core_contract={self.core_contract}, operator={self.operator_address})"

    @property
    def operator_address(self) -> str:
        """The account address as ``0x`` + 64 lowercase hex digits (the ``sender`` in the TxStore)."""
        return felt_hex(self._account)

    async def aclose(self) -> None:
        await self._rpc.aclose()

    def _crash_point(self, point: str) -> None:
        if self._crash_hook is not None:
            self._crash_hook(point)

    # --- reads -------------------------------------------------------------------------------------

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = _int(await self._rpc.request("starknet_chainId", []), "the chain id")
        return self._chain_id

    async def _nonce(self, block_id: str) -> int:
        result = await self._rpc.request(
            "starknet_getNonce", {"block_id": block_id, "contract_address": hex(self._account)}
        )
        return _int(result, "the account nonce")

    async def get_nonce(self) -> int:
        """The operator account's nonce, counting pre-confirmed transactions."""
        return await self._nonce("pre_confirmed")

    async def get_state(self) -> list[int]:
        """The core contract's ``get_state()`` at ``latest``: ``[state_root, block_number, block_hash]``."""
        request = {"contract_address": hex(self._core), "entry_point_selector": hex(GET_STATE_SELECTOR), "calldata": []}
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
        try:
            receipt = await self._rpc.request("starknet_getTransactionReceipt", {"transaction_hash": tx_hash})
        except StarknetRpcError as exc:
            if exc.code == TXN_HASH_NOT_FOUND:
                return None
            raise
        return receipt if isinstance(receipt, dict) else None

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
        self, program_output: Sequence[int], blobs: Sequence[bytes], *, idempotency_key: str
    ) -> SettlementResult:
        raise SettlementTxError(
            "Starknet settlement takes calldata; blob DA is for Ethereum (use update_state_calldata, or settle "
            "on Ethereum with --settle-on-ethereum)",
            retryable=False,
        )

    async def update_state_calldata(
        self, snos_output: Sequence[int], program_output: Sequence[int], *, idempotency_key: str
    ) -> StarknetSettlementResult:
        """Settle ``update_state(snos_output, program_output)`` once for ``idempotency_key``.

        Returns when the transaction is accepted on L2; a key settled before returns its stored result and
        sends nothing. Raises ``TxReverted`` (not retryable), ``FeeCapExceeded``, ``SettlementTxError``
        (with the attempts) or ``BackendUnavailable`` (an outage to wait out).
        """
        arguments = update_state_arguments(snos_output, program_output)
        key = idempotency_key
        async with self._keys.hold(key):
            return await self._settle(key, arguments)

    async def _settle(self, key: str, arguments: list[int]) -> StarknetSettlementResult:
        record = await self.store.create_key(key, self.operator_address)
        if record.sender != self.operator_address:
            raise InvalidInput(
                f"settlement key {key!r} was started by {record.sender}, not by this account {self.operator_address}"
            )
        if record.status is KeyStatus.FINALIZED:
            log.info("settlement %s already accepted in tx %s; nothing sent", key, record.final_tx_hash)
            return await self._result(record, already_settled=True)
        if record.status is KeyStatus.REVERTED:
            log.info("settlement %s reverted before (%s); starting again with a new nonce", key, record.error)
            await self.store.restart_key(key)
            record = await self._get(key)

        # 1. Recovery: has any stored attempt been executed?
        in_flight = await self._in_flight(key, record.nonce)
        if in_flight:
            found = await self._find_receipt(in_flight)
            if found is not None:
                log.info("settlement %s: attempt %s found executed on restart", key, found.attempt.attempt_no)
                return await self._wait(key, found.attempt.nonce)

        # 2. Nonce: reserve, or reconcile the reserved one with the chain.
        chain_latest = await self._nonce("latest")
        if record.nonce is not None and chain_latest > record.nonce:
            found = await self._find_receipt(in_flight)  # it may have been accepted a moment ago
            if found is not None:
                return await self._wait(key, found.attempt.nonce)
            log.warning(
                "settlement %s: nonce %s was spent by a transaction this store does not know; taking a new nonce",
                key,
                record.nonce,
            )
            await self.store.release_nonce(key)
            in_flight = []
        chain_pending = await self._nonce("pre_confirmed")
        nonce = await self.store.reserve_nonce(key, chain_latest=chain_latest, chain_pending=chain_pending)

        # 3. Re-broadcast the stored attempt unchanged, or sign a new one.
        if in_flight:
            current = in_flight[-1]
            log.info(
                "settlement %s: resuming attempt %s (nonce %s, tx %s): re-broadcasting it",
                key,
                current.attempt_no,
                current.nonce,
                current.tx_hash,
            )
            if not await self._broadcast(key, current, resuming=True):
                await self._send_new_attempt(key, nonce, arguments)
        else:
            await self._send_new_attempt(key, nonce, arguments)

        # 4. Wait for acceptance on L2.
        return await self._wait(key, nonce)

    async def _send_new_attempt(self, key: str, nonce: int, arguments: list[int]) -> None:
        try:
            attempt = await self._new_attempt(key, nonce, arguments)
        except Exception:
            if not await self._in_flight(key, nonce):
                await self.store.release_nonce(key)  # nothing holds the nonce: do not leave a gap behind
            raise
        await self._broadcast(key, attempt, resuming=False)

    async def _estimate(self, execute: list[int], nonce: int, chain_id: int) -> dict[str, Any]:
        """``starknet_estimateFee`` of the invoke, signed in its query form (version 3 + 2^128)."""
        query = InvokeV3(
            version=3 + QUERY_VERSION_BASE,
            signature=[],
            nonce=nonce,
            resource_bounds=_ZERO_BOUNDS,
            tip=0,
            calldata=execute,
            sender_address=self._account,
        )
        signed = self._signed(query, chain_id)
        result = await self._rpc.request(
            "starknet_estimateFee",
            {"request": [_broadcast_json(signed)], "simulation_flags": [], "block_id": "pre_confirmed"},
        )
        if not isinstance(result, list) or not result or not isinstance(result[0], dict):
            raise BackendUnavailable(f"starknet_estimateFee at {self._rpc.where} answered {result!r:.200}")
        estimate: dict[str, Any] = result[0]
        return estimate

    def _signed(self, tx: InvokeV3, chain_id: int) -> InvokeV3:
        tx_hash = tx.calculate_hash(chain_id)
        r, s = message_signature(msg_hash=tx_hash, priv_key=self._private_key)
        return dataclasses.replace(tx, signature=[r, s])

    async def _new_attempt(self, key: str, nonce: int, arguments: list[int]) -> AttemptRecord:
        """Estimate, check the cap, sign and store (Signed) a new invoke; nothing is sent here.

        The attempt's fee columns hold: ``max_fee_per_gas`` = l2_gas max_price_per_unit,
        ``max_priority_fee_per_gas`` = tip, ``max_fee_per_blob_gas`` = l1_data_gas max_price_per_unit (FRI).
        """
        chain_id = await self.chain_id()
        execute = execute_calldata(self._core, UPDATE_STATE_SELECTOR, arguments)
        existing = await self.store.attempts(key)
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
            sender_address=self._account,
        )
        signed = self._signed(tx, chain_id)
        tx_hash = hex(signed.calculate_hash(chain_id))
        attempt_no = (existing[-1].attempt_no + 1) if existing else 1
        now = time.time()
        record = AttemptRecord(
            key=key,
            attempt_no=attempt_no,
            nonce=nonce,
            tx_hash=tx_hash,
            gas_multiplier=self.config.fee_multiplier,
            max_fee_per_gas=bounds.l2_gas.max_price_per_unit,
            max_priority_fee_per_gas=tip,
            max_fee_per_blob_gas=bounds.l1_data_gas.max_price_per_unit,
            status=AttemptStatus.SIGNED,
            error=None,
            raw=json.dumps(_broadcast_json(signed), separators=(",", ":")).encode(),
            created_at=now,
            updated_at=now,
        )
        await self.store.add_attempt(record)
        log.info(
            "settlement %s: attempt %s signed and stored: nonce %s, tx %s, fee liability ≤ %s FRI",
            key,
            attempt_no,
            nonce,
            tx_hash,
            liability,
        )
        self._crash_point("signed")
        return record

    async def _broadcast(self, key: str, attempt: AttemptRecord, *, resuming: bool) -> bool:
        """Send the stored attempt. True when the node has it (or executed it); False when a stored
        attempt that was never known to be sent is refused now (then a new one is signed)."""
        if attempt.raw is None:
            raise SettlementTxError(f"settlement {key}: attempt {attempt.attempt_no} has no stored transaction")
        try:
            await self._rpc.request("starknet_addInvokeTransaction", {"invoke_transaction": json.loads(attempt.raw)})
        except StarknetRpcError as exc:
            if exc.code == DUPLICATE_TX:
                log.info("settlement %s: the node already has attempt %s", key, attempt.attempt_no)
            elif exc.code == INVALID_TRANSACTION_NONCE:
                if await self._find_receipt(await self._in_flight(key, attempt.nonce)) is not None:
                    return True  # our own transaction spent it; waiting finds its receipt
                await self.store.set_attempt_status(
                    key, attempt.attempt_no, AttemptStatus.SUBMISSION_FAILED, error=str(exc)
                )
                await self.store.release_nonce(key)
                account_nonce = await self._nonce("pre_confirmed")
                why = (
                    f"nonce {attempt.nonce} was spent by another transaction"
                    if account_nonce > attempt.nonce
                    else f"nonce {attempt.nonce} is not the account's next nonce {account_nonce}"
                )
                raise SettlementTxError(
                    f"State update transaction submission failed: {why} ({exc.detail}). "
                    "Retrying the job takes a new nonce.",
                    attempts=await self._attempts(key),
                    nonce=attempt.nonce,
                ) from exc
            elif resuming and attempt.status is not AttemptStatus.SIGNED:
                # The node took it before; it may refuse a re-broadcast while still holding it. Wait on it.
                log.warning(
                    "settlement %s: re-broadcast of attempt %s refused (%s); it was accepted before, waiting on it",
                    key,
                    attempt.attempt_no,
                    exc,
                )
                return True
            elif resuming:
                # Signed before a crash and never known to be sent; refused now (fees moved): sign anew.
                log.warning("settlement %s: stored attempt %s refused: %s", key, attempt.attempt_no, exc)
                await self.store.set_attempt_status(
                    key, attempt.attempt_no, AttemptStatus.SUBMISSION_FAILED, error=str(exc)
                )
                return False
            else:
                await self.store.set_attempt_status(
                    key, attempt.attempt_no, AttemptStatus.SUBMISSION_FAILED, error=str(exc)
                )
                attempts = await self.store.attempts(key)
                if not any(a.status.is_in_flight for a in attempts):
                    await self.store.release_nonce(key)
                raise provider_error(exc, attempts=to_settlement_attempts(attempts), nonce=attempt.nonce) from exc
        self._crash_point("sent")
        await self.store.set_attempt_status(key, attempt.attempt_no, AttemptStatus.SENT)
        log.info("settlement %s: attempt %s broadcast (tx %s)", key, attempt.attempt_no, attempt.tx_hash)
        return True

    async def _find_receipt(self, attempts: Sequence[AttemptRecord]) -> _Found | None:
        for a in attempts:
            if a.tx_hash is None:
                continue
            receipt = await self.transaction_receipt(a.tx_hash)
            if receipt is not None:
                return _Found(a, receipt)
        return None

    async def _wait(self, key: str, nonce: int) -> StarknetSettlementResult:
        """Poll the nonce's in-flight attempts until one is accepted on L2, within the confirmation window."""
        deadline = self._monotonic() + self.config.confirmation_timeout_s
        while True:
            in_flight = await self._in_flight(key, nonce)
            found = await self._find_receipt(in_flight)
            if found is not None and found.is_accepted:
                return await self._record_outcome(key, found)
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                break
            await self._sleep(min(self.config.finality_retry_wait_s, remaining))
        where = "executed, not yet accepted on L2" if found is not None else "not executed"
        latest = in_flight[-1] if in_flight else None
        if latest is not None:
            await self.store.set_attempt_status(
                key,
                latest.attempt_no,
                AttemptStatus.TIMED_OUT,
                error=f"{where} after {self.config.confirmation_timeout_s:g}s",
            )
        attempts = await self.store.attempts(key)
        raise SettlementTxError(
            f"State update transaction {latest.tx_hash if latest else '?'} (nonce {nonce}) was {where} within "
            f"{self.config.confirmation_timeout_s:g}s. Retrying the job resumes it. Attempts: "
            f"{attempts_summary(attempts)}",
            attempts=to_settlement_attempts(attempts),
            nonce=nonce,
            tx_hash=latest.tx_hash if latest else None,
        )

    async def _record_outcome(self, key: str, found: _Found) -> StarknetSettlementResult:
        attempt, receipt = found.attempt, found.receipt
        block = receipt.get("block_number")
        block_number = _int(block, "the receipt's block number") if block is not None else None
        if receipt.get("execution_status") == "REVERTED":
            error = f"Transaction {attempt.tx_hash} has been reverted: {receipt.get('revert_reason', '')}"
            self._crash_point("mined")
            await self.store.mark_reverted(key, attempt.attempt_no, error=error, block_number=block_number)
            log.error("settlement %s: %s", key, error)
            raise TxReverted(
                error,
                attempts=await self._attempts(key),
                nonce=attempt.nonce,
                tx_hash=attempt.tx_hash,
            )
        fee = receipt.get("actual_fee")
        fee_paid = _int(fee.get("amount"), "actual_fee") if isinstance(fee, dict) else None
        self._crash_point("mined")
        await self.store.finalize(key, attempt.attempt_no, fee_paid_wei=fee_paid, block_number=block_number)
        log.info(
            "settlement %s accepted on L2: tx %s (attempt %s, nonce %s) in block %s, fee %s %s",
            key,
            attempt.tx_hash,
            attempt.attempt_no,
            attempt.nonce,
            block_number,
            fee_paid,
            fee.get("unit", "FRI") if isinstance(fee, dict) else "",
        )
        return await self._result(await self._get(key), already_settled=False)

    # --- store helpers -----------------------------------------------------------------------------

    async def _get(self, key: str) -> TxKeyRecord:
        record = await self.store.get_key(key)
        if record is None:
            raise AssertionError(f"settlement key {key} vanished from the tx store")
        return record

    async def _attempts(self, key: str) -> list[SettlementAttempt]:
        return to_settlement_attempts(await self.store.attempts(key))

    async def _in_flight(self, key: str, nonce: int | None) -> list[AttemptRecord]:
        if nonce is None:
            return []
        return [a for a in await self.store.attempts(key) if a.status.is_in_flight and a.nonce == nonce]

    async def _result(self, record: TxKeyRecord, *, already_settled: bool) -> StarknetSettlementResult:
        if record.final_tx_hash is None or record.nonce is None:
            raise AssertionError(f"settlement key {record.key} is finalized without a tx hash or nonce")
        return StarknetSettlementResult(
            tx_hash=record.final_tx_hash,
            nonce=record.nonce,
            attempts=await self._attempts(record.key),
            fee_paid_wei=record.fee_paid_wei,
            block_number=record.block_number,
            already_settled=already_settled,
        )


def _broadcast_json(tx: InvokeV3) -> dict[str, Any]:
    """The transaction as ``starknet_addInvokeTransaction`` / ``starknet_estimateFee`` take it."""
    dump: Callable[..., dict[str, Any]] = BroadcastedTransactionSchema().dump
    return dump(obj=tx)
