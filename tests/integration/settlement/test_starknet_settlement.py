"""Starknet settlement (an L3 settling on an L2): the durable client against a scripted node for the
provider's refusals, and against the Starknet L2 double for settlement, reverts, finality and crashes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starknet_py.hash.selector import get_selector_from_name
from starknet_py.hash.utils import private_to_stark_key, verify_message_signature
from starknet_py.net.account.account import Account, _parse_calls
from starknet_py.net.client_models import Call, ResourceBounds, ResourceBoundsMapping
from starknet_py.net.full_node_client import FullNodeClient
from starknet_py.net.models.transaction import InvokeV3
from starknet_py.net.signer.key_pair import KeyPair

from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.devnet.starknet_l2 import (
    CORE_CONTRACT_ADDRESS,
    L1_DATA_GAS_PRICE_FRI,
    L2_GAS_PRICE_FRI,
    OPERATOR_ACCOUNT,
    StarknetL2Double,
    fee_estimate,
)
from madara_orchestrator.devnet.starknet_l2 import InvokeV3 as DoubleInvokeV3
from madara_orchestrator.domain.errors import BackendUnavailable, ConfigError, outage_cause
from madara_orchestrator.domain.settlement_tx import AttemptStatus, KeyStatus
from madara_orchestrator.interfaces import SettlementClient, TxStore
from madara_orchestrator.server.background import BackgroundServer
from madara_orchestrator.settlement.durable import SettlementKeyBusy
from madara_orchestrator.settlement.errors import FeeCapExceeded, SettlementTxError, TxReverted
from madara_orchestrator.settlement.starknet import (
    FELT_MAX,
    StarknetChain,
    StarknetSettlementClient,
    StarknetSettlementConfig,
    execute_calldata,
    fee_liability,
    resource_bounds,
    starknet_json_rpc,
    update_state_arguments,
)
from tests.conftest import REPO_ROOT
from tests.helpers.piltover import batch, bridge_of, fact_of, snos_output, update_state_calldata
from tests.helpers.settlement_clients import starknet_client

ACCOUNT = "0x" + "0" * 60 + "abcd"
PRIVATE_KEY = "0x71d7bb07b9a64f6f78ac4c816aff4da9"
CORE = "0x" + "0" * 60 + "c0de"
CHAIN_ID = int.from_bytes(b"SN_SEPOLIA", "big")

# --------------------------------------------------------------------------------------------------
# A scripted node (httpx.MockTransport): the provider's refusals that the L2 double does not produce.


class ScriptedNode:
    """Answers the settlement client's calls; ``errors[method]`` scripts a JSON-RPC error or HTTP status."""

    def __init__(self) -> None:
        self.nonces = {"latest": 0, "pre_confirmed": 0}
        self.errors: dict[str, dict[str, Any] | int | Exception] = {}
        self.estimate = {
            "l1_gas_consumed": "0x0",
            "l1_gas_price": "0x10",
            "l2_gas_consumed": "0x100000",
            "l2_gas_price": "0x3b9aca00",
            "l1_data_gas_consumed": "0x80",
            "l1_data_gas_price": "0x20",
            "overall_fee": hex(0x100000 * 0x3B9ACA00 + 0x80 * 0x20),
            "unit": "FRI",
        }
        self.sent: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.receipts: dict[int, dict[str, Any]] = {}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        method, params = body["method"], body["params"]
        self.calls.append(method)
        scripted = self.errors.get(method)
        if isinstance(scripted, Exception):
            raise scripted
        if isinstance(scripted, int):
            return httpx.Response(scripted, text="slow down")
        if scripted is not None:
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": scripted})
        if method == "starknet_getTransactionReceipt" and int(params["transaction_hash"], 16) not in self.receipts:
            scripted = _error(29, "Transaction hash not found")
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": scripted})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": self.answer(method, params)})

    def answer(self, method: str, params: dict[str, Any]) -> Any:
        if method == "starknet_chainId":
            return hex(CHAIN_ID)
        if method == "starknet_getNonce":
            return hex(self.nonces[params["block_id"]])
        if method == "starknet_estimateFee":
            return [self.estimate]
        if method == "starknet_addInvokeTransaction":
            tx = params["invoke_transaction"]
            self.sent.append(tx)
            tx_hash = _hash_of(tx)
            self.receipts[tx_hash] = {
                "type": "INVOKE",
                "transaction_hash": hex(tx_hash),
                "execution_status": "SUCCEEDED",
                "finality_status": "ACCEPTED_ON_L2",
                "block_number": 7,
                "actual_fee": {"amount": "0x2a", "unit": "FRI"},
            }
            return {"transaction_hash": hex(tx_hash)}
        if method == "starknet_getTransactionReceipt":
            return self.receipts[int(params["transaction_hash"], 16)]
        if method == "starknet_call":
            return ["0x0", hex(FELT_MAX), "0x0"]
        raise AssertionError(method)


def _hash_of(tx: dict[str, Any]) -> int:
    """The hash of an INVOKE_TXN_V3 as sent (what a node computes)."""
    return DoubleInvokeV3.from_json(tx).calculate_hash(CHAIN_ID)


def _error(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, **({"data": data} if data is not None else {})}


def _config(url: str = "http://node.test/rpc", **overrides: Any) -> StarknetSettlementConfig:
    values: dict[str, Any] = {
        "rpc_url": url,
        "account_address": ACCOUNT,
        "private_key": PRIVATE_KEY,
        "core_contract_address": CORE,
        "finality_retry_wait_s": 0.01,
        "confirmation_timeout_s": 5.0,
        **overrides,
    }
    return StarknetSettlementConfig(**values)


def _client(
    config: StarknetSettlementConfig,
    *,
    store: TxStore,
    http_client: httpx.AsyncClient | None = None,
    **options: Any,
) -> StarknetSettlementClient:
    """The client as the composition root builds it: its JSON-RPC client to ``config.rpc_url`` passed in;
    ``store`` and the sender's ``options`` (``crash_hook``, ``key_guard``) for its durable sender."""
    rpc = starknet_json_rpc(config.rpc_url, timeout_s=config.rpc_timeout_s, client=http_client)
    return starknet_client(config, rpc, store, **options)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteTxStore]:
    opened = SqliteTxStore(tmp_path / "tx.db")
    yield opened
    opened.close()


def _scripted_client(node: ScriptedNode, store: SqliteTxStore, **overrides: Any) -> StarknetSettlementClient:
    return _client(_config(**overrides), store=store, http_client=node.client())


SNOS = [1, 2, FELT_MAX, 0, 5, 6, 7, 8, 0, 1, 0, 0]
BRIDGE = [11, 12]


# --------------------------------------------------------------------------------------------------
# Encoding and signing, pinned against starknet-py's own account


async def test_signed_invoke_is_what_a_starknet_py_account_signs() -> None:
    node = ScriptedNode()
    client = _client(_config(), store=SqliteTxStore(":memory:"), http_client=node.client())
    arguments = update_state_arguments(SNOS, BRIDGE)
    assert arguments == [12, *SNOS, 2, *BRIDGE]  # the original's calldata: the two spans, nothing more
    execute = execute_calldata(int(CORE, 16), get_selector_from_name("update_state"), arguments)
    call = Call(to_addr=int(CORE, 16), selector=get_selector_from_name("update_state"), calldata=arguments)
    assert execute == _parse_calls(1, [call])

    bounds = ResourceBoundsMapping(
        l1_gas=ResourceBounds(max_amount=0, max_price_per_unit=5),
        l1_data_gas=ResourceBounds(max_amount=7, max_price_per_unit=9),
        l2_gas=ResourceBounds(max_amount=1000, max_price_per_unit=11),
    )
    account = Account(
        address=ACCOUNT,
        client=FullNodeClient(node_url="http://node.test/rpc"),
        key_pair=KeyPair.from_private_key(PRIVATE_KEY),
        chain=CHAIN_ID,
    )
    account._cairo_version = 1  # type: ignore[assignment]  # spares a getClassAt
    expected = await account.sign_invoke_v3(call, nonce=3, resource_bounds=bounds, tip=0)
    tx = InvokeV3(
        version=3,
        signature=[],
        nonce=3,
        resource_bounds=bounds,
        tip=0,
        calldata=execute,
        sender_address=int(ACCOUNT, 16),
    )
    signed = client.chain.sign_invoke(tx, CHAIN_ID)
    assert signed.signature == expected.signature
    assert signed.calculate_hash(CHAIN_ID) == expected.calculate_hash(CHAIN_ID)
    public = private_to_stark_key(int(PRIVATE_KEY, 16))
    assert verify_message_signature(signed.calculate_hash(CHAIN_ID), signed.signature, public)
    await client.aclose()


def test_resource_bounds_scale_amounts_and_prices_and_bound_the_fee() -> None:
    estimate = {
        "l1_gas_consumed": "0x0",
        "l1_gas_price": "0x3",
        "l2_gas_consumed": "0x64",
        "l2_gas_price": "0xa",
        "l1_data_gas_consumed": "0x3",
        "l1_data_gas_price": "0x5",
    }
    bounds = resource_bounds(estimate, 1.5)
    assert (bounds.l2_gas.max_amount, bounds.l2_gas.max_price_per_unit) == (150, 15)
    assert (bounds.l1_data_gas.max_amount, bounds.l1_data_gas.max_price_per_unit) == (5, 8)  # rounded up
    assert (bounds.l1_gas.max_amount, bounds.l1_gas.max_price_per_unit) == (0, 5)
    assert fee_liability(bounds) == 150 * 15 + 5 * 8


def test_config_names_each_bad_value_and_repr_hides_the_key(store: SqliteTxStore) -> None:
    bad = StarknetSettlementConfig(
        rpc_url="ws://x",
        account_address="abcd",
        private_key="0xzz",
        core_contract_address="0x" + "f" * 64,
        fee_multiplier=0.5,
        max_fee_fri=0,
    )
    problems = bad.problems()
    assert len(problems) == 6, problems
    assert not _config().problems()
    with pytest.raises(ConfigError):
        _client(bad, store=store)
    client = _client(_config(), store=store)
    for text in (repr(client), repr(client.config)):
        assert PRIVATE_KEY not in text and PRIVATE_KEY.removeprefix("0x") not in text
    assert client.operator_address == "0x" + "0" * 60 + "abcd"


# --------------------------------------------------------------------------------------------------
# The provider's refusals


async def test_blob_settlement_is_refused_for_good(store: SqliteTxStore) -> None:
    client = _scripted_client(ScriptedNode(), store)
    with pytest.raises(SettlementTxError, match="blob DA is for Ethereum") as info:
        await client.update_state_with_blobs([1], [b"\0" * 131072], idempotency_key="b")
    assert info.value.retryable is False


async def test_fee_estimate_above_the_cap_signs_nothing_and_holds_no_nonce(store: SqliteTxStore) -> None:
    node = ScriptedNode()
    client = _scripted_client(node, store, max_fee_fri=10**9)
    with pytest.raises(FeeCapExceeded, match=r"exceeds the configured cap 1000000000 FRI\. Nothing was signed"):
        await client.update_state_calldata(SNOS, BRIDGE, idempotency_key="batch-1")
    assert "starknet_addInvokeTransaction" not in node.calls
    assert await store.attempts("batch-1") == []
    key = await store.get_key("batch-1")
    assert key is not None and key.nonce is None and key.status is KeyStatus.PENDING


@pytest.mark.parametrize(
    ("scripted", "message"),
    [
        (429, "Request rate limited"),
        (_error(-32005, "Rate limit exceeded"), "Request rate limited"),
        (httpx.ConnectError("connection refused"), "ConnectError"),
    ],
    ids=["http-429", "rpc-rate-limit", "connection-refused"],
)
async def test_rate_limits_and_unreachable_nodes_are_outages_to_wait_out(
    store: SqliteTxStore, scripted: Any, message: str
) -> None:
    node = ScriptedNode()
    node.errors["starknet_estimateFee"] = scripted
    client = _scripted_client(node, store)
    with pytest.raises(BackendUnavailable, match=message) as info:
        await client.update_state_calldata(SNOS, BRIDGE, idempotency_key="batch-1")
    assert outage_cause(info.value) is info.value
    key = await store.get_key("batch-1")
    assert key is not None and key.nonce is None  # nothing signed: the nonce is not held


@pytest.mark.parametrize(
    ("method", "scripted", "message", "retryable"),
    [
        (
            "starknet_addInvokeTransaction",
            _error(55, "Account validation failed", "invalid signature"),
            "Validation failure: invalid signature",
            False,
        ),
        (
            "starknet_estimateFee",
            _error(41, "Transaction execution error", {"transaction_index": 0, "execution_error": "Fact not found"}),
            "Transaction execution error: Fact not found",
            True,
        ),
        (
            "starknet_estimateFee",
            _error(40, "Contract error", {"revert_error": "Invalid block number"}),
            "Contract error: Invalid block number",
            True,
        ),
    ],
    ids=["validation-failure", "execution-error", "contract-error"],
)
async def test_provider_refusals_are_reported_in_the_nodes_words(
    store: SqliteTxStore, method: str, scripted: dict[str, Any], message: str, retryable: bool
) -> None:
    node = ScriptedNode()
    node.errors[method] = scripted
    client = _scripted_client(node, store)
    with pytest.raises(SettlementTxError, match=message) as info:
        await client.update_state_calldata(SNOS, BRIDGE, idempotency_key="batch-1")
    assert info.value.retryable is retryable
    key = await store.get_key("batch-1")
    assert key is not None and key.nonce is None  # refused: the nonce is free for the retry
    attempts = await store.attempts("batch-1")
    if method == "starknet_addInvokeTransaction":
        assert [a.status for a in attempts] == [AttemptStatus.SUBMISSION_FAILED]
        assert [a.status for a in info.value.attempts] == ["SubmissionFailed"]
    else:
        assert attempts == []


async def test_a_stored_attempt_whose_nonce_was_spent_elsewhere_releases_the_nonce(store: SqliteTxStore) -> None:
    node = ScriptedNode()
    crashed = _client(_config(), store=store, http_client=node.client(), crash_hook=_die_at("signed"))
    with pytest.raises(_Killed):
        await crashed.update_state_calldata(SNOS, BRIDGE, idempotency_key="batch-1")
    assert [a.status for a in await store.attempts("batch-1")] == [AttemptStatus.SIGNED]

    # Meanwhile a transaction this store does not know took nonce 0, still pre-confirmed.
    node.nonces["pre_confirmed"] = 1
    node.errors["starknet_addInvokeTransaction"] = _error(52, "Invalid transaction nonce")
    client = _scripted_client(node, store)
    node.calls.clear()
    with pytest.raises(SettlementTxError, match="nonce 0 was spent by another transaction") as info:
        await client.update_state_calldata(SNOS, BRIDGE, idempotency_key="batch-1")
    assert info.value.retryable is True
    # The node's latest count does not pass nonce 0: no grace spent waiting for a receipt that cannot come.
    assert node.calls.count("starknet_getTransactionReceipt") == 2, "once at the restart, once at the refusal"
    key = await store.get_key("batch-1")
    assert key is not None and key.nonce is None
    assert [a.status for a in await store.attempts("batch-1")] == [AttemptStatus.SUBMISSION_FAILED]

    # The retry takes the next nonce and a new transaction.
    node.errors.clear()
    node.nonces["latest"] = 1
    result = await client.update_state_calldata(SNOS, BRIDGE, idempotency_key="batch-1")
    assert result.nonce == 1 and result.fee_paid_wei == 42 and result.block_number == 7
    assert [int(tx["nonce"], 16) for tx in node.sent] == [1]
    assert int(result.tx_hash, 16) == _hash_of(node.sent[0])
    assert [a.status for a in result.attempts] == ["SubmissionFailed", "Finalized"]


async def test_a_key_another_process_is_sending_is_an_outage_to_wait_out(store: SqliteTxStore) -> None:
    @contextlib.asynccontextmanager
    async def held_elsewhere(key: str) -> AsyncIterator[bool]:
        yield False

    node = ScriptedNode()
    client: SettlementClient = _client(_config(), store=store, key_guard=held_elsewhere, http_client=node.client())
    with pytest.raises(SettlementKeyBusy, match="another orchestrator process is sending it now"):
        await client.update_state_calldata(SNOS, BRIDGE, idempotency_key="batch-1")
    assert node.calls == []


class _Killed(BaseException):
    """Stands for the process dying at a crash point (in-process tests)."""


def _die_at(point: str) -> Callable[[str], None]:
    def hook(reached: str) -> None:
        if reached == point:
            raise _Killed(point)

    return hook


# --------------------------------------------------------------------------------------------------
# Against the Starknet L2 double (served over HTTP in this process, so it outlives killed workers)


class RecordingApp:
    """Wraps the double's ASGI app: records each JSON-RPC method served and wakes waiters after each."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.methods: list[str] = []
        self._changed = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        replay = iter(messages)

        async def replayed() -> Any:
            return next(replay, {"type": "http.disconnect"})

        await self.app(scope, replayed, send)
        with contextlib.suppress(ValueError):
            payload = json.loads(body)
            for item in payload if isinstance(payload, list) else [payload]:
                self.methods.append(item.get("method", "?"))
        self._changed.set()
        self._changed = asyncio.Event()

    def count(self, method: str) -> int:
        return self.methods.count(method)

    async def wait_for_calls(self, method: str, at_least: int, *, timeout_s: float = 10.0) -> None:
        """Return once ``method`` has been served ``at_least`` times in all."""
        async with asyncio.timeout(timeout_s):
            while self.count(method) < at_least:
                await self._changed.wait()


@dataclass
class L2:
    double: StarknetL2Double
    app: RecordingApp
    url: str

    @property
    def operator_nonce(self) -> int:
        return self.double.nonce_of(OPERATOR_ACCOUNT.address)

    def operator_txs(self) -> list[Any]:
        return [t for t in self.double.transactions if t.sender_address == OPERATOR_ACCOUNT.address]

    def client(self, store: SqliteTxStore, **overrides: Any) -> StarknetSettlementClient:
        http_client = overrides.pop("http_client", None)
        config = _config(
            self.url,
            account_address=hex(OPERATOR_ACCOUNT.address),
            private_key=hex(OPERATOR_ACCOUNT.private_key),
            core_contract_address=hex(CORE_CONTRACT_ADDRESS),
            **overrides,
        )
        return _client(config, store=store, http_client=http_client)


@pytest.fixture
async def l2() -> AsyncIterator[L2]:
    double = StarknetL2Double()
    app = RecordingApp(double.app)
    server = BackgroundServer(app)
    await server.start()
    try:
        yield L2(double=double, app=app, url=server.url)
    finally:
        await server.stop()


def make_l3_batch(block: int) -> tuple[list[int], list[int]]:
    """The bootloaded SNOS output settling L3 ``block`` after ``block - 1``, and its layout bridge output."""
    snos = batch(block)
    return snos, bridge_of(snos)


def register(l2: L2, bridge: list[int]) -> None:
    """The bridge proof's fact, as the mock Atlantic server's L2 verification registers it."""
    l2.double.register_fact_directly(fact_of(bridge))


async def test_consecutive_batches_settle_with_the_exact_update_state_calldata(l2: L2, store: SqliteTxStore) -> None:
    client = l2.client(store)
    assert await client.last_settled_block() is None
    for block in (0, 1):
        snos, bridge = make_l3_batch(block)
        register(l2, bridge)
        result = await client.update_state_calldata(snos, bridge, idempotency_key=f"batch-{block}")

        assert not result.already_settled
        assert result.nonce == block
        assert [(a.attempt_no, a.status) for a in result.attempts] == [(1, "Finalized")]
        assert await client.last_settled_block() == block
        tx = l2.double.transaction(int(result.tx_hash, 16))
        assert tx.execution_status.value == "SUCCEEDED" and tx.finality_status.value == "ACCEPTED_ON_L2"
        assert [(c.to, c.selector) for c in tx.calls] == [
            (CORE_CONTRACT_ADDRESS, get_selector_from_name("update_state"))
        ]
        assert list(tx.calls[0].calldata) == update_state_calldata(snos, bridge)
        assert list(tx.calls[0].calldata) == [len(snos), *snos, len(bridge), *bridge]
        assert result.fee_paid_wei == tx.gas.fee_fri  # FRI, from the receipt's actual_fee
        assert await client.verify_tx_inclusion(result.tx_hash) == "Verified"
        key = await store.get_key(f"batch-{block}")
        assert key is not None and key.status is KeyStatus.FINALIZED and key.fee_paid_wei == tx.gas.fee_fri

    (attempt,) = await store.attempts("batch-1")
    assert attempt.raw is None  # dropped once final
    assert attempt.max_priority_fee_per_gas == 0  # the tip
    assert attempt.max_fee_per_gas == math.ceil(L2_GAS_PRICE_FRI * 1.5)  # l2_gas max price per unit
    assert attempt.max_fee_per_blob_gas == math.ceil(L1_DATA_GAS_PRICE_FRI * 1.5)  # l1_data_gas
    assert l2.double.update_state_count == 2 and l2.operator_nonce == 2
    assert await client.get_nonce() == 2
    await client.aclose()


async def test_the_invoke_is_signed_off_the_event_loops_thread(l2: L2, store: SqliteTxStore) -> None:
    """A Stark ECDSA signature takes about 0.25 s of CPU: signed on the loop's thread it would stop the API and
    every other job meanwhile. Two a settlement: the fee estimate's query and the invoke."""
    client = l2.client(store)
    chain = client.chain
    assert isinstance(chain, StarknetChain)
    signed_on: list[threading.Thread] = []
    sign_invoke = chain.sign_invoke

    def recording(tx: InvokeV3, chain_id: int) -> InvokeV3:
        signed_on.append(threading.current_thread())
        return sign_invoke(tx, chain_id)

    chain.sign_invoke = recording  # type: ignore[method-assign]
    snos, bridge = make_l3_batch(0)
    register(l2, bridge)
    result = await client.update_state_calldata(snos, bridge, idempotency_key="batch-0")
    assert result.nonce == 0 and await client.last_settled_block() == 0
    assert len(signed_on) == 2 and threading.main_thread() not in signed_on
    await client.aclose()


async def test_a_settled_key_is_not_sent_again(l2: L2, store: SqliteTxStore) -> None:
    client = l2.client(store)
    snos, bridge = make_l3_batch(0)
    register(l2, bridge)
    first = await client.update_state_calldata(snos, bridge, idempotency_key="batch-0")
    sends = l2.app.count("starknet_addInvokeTransaction")

    again = await l2.client(store).update_state_calldata(snos, bridge, idempotency_key="batch-0")
    assert again.already_settled is True
    assert (again.tx_hash, again.nonce, again.fee_paid_wei) == (first.tx_hash, first.nonce, first.fee_paid_wei)
    assert l2.app.count("starknet_addInvokeTransaction") == sends
    assert l2.operator_nonce == 1 and l2.double.update_state_count == 1
    await client.aclose()


async def test_an_unregistered_fact_is_refused_at_estimation_and_holds_no_nonce(l2: L2, store: SqliteTxStore) -> None:
    client = l2.client(store)
    snos, bridge = make_l3_batch(0)
    with pytest.raises(SettlementTxError, match=r"(?s)Transaction execution error: .*no fact registered") as info:
        await client.update_state_calldata(snos, bridge, idempotency_key="batch-0")
    assert info.value.retryable is True  # the fact may be registered later
    assert l2.app.count("starknet_addInvokeTransaction") == 0
    key = await store.get_key("batch-0")
    assert key is not None and key.nonce is None

    register(l2, bridge)
    result = await client.update_state_calldata(snos, bridge, idempotency_key="batch-0")
    assert result.nonce == 0 and await client.last_settled_block() == 0
    await client.aclose()


class EstimateWithoutExecuting(httpx.AsyncBaseTransport):
    """A node whose fee estimate does not run the call (the double's gas model only): a transaction that
    will revert is accepted, as one is when the state changes between estimation and execution."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(await request.aread())
        if body["method"] != "starknet_estimateFee":
            return await self._inner.handle_async_request(request)
        estimate = fee_estimate(DoubleInvokeV3.from_json(body["params"]["request"][0]))
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": [estimate]})

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_reverted_update_is_rejected_with_its_reason_and_the_key_starts_again(
    l2: L2, store: SqliteTxStore
) -> None:
    client = l2.client(store, http_client=httpx.AsyncClient(transport=EstimateWithoutExecuting()))
    snos, bridge = make_l3_batch(0)
    with pytest.raises(
        TxReverted, match=r"(?s)Transaction 0x[0-9a-f]+ has been reverted: .*no fact registered"
    ) as info:
        await client.update_state_calldata(snos, bridge, idempotency_key="batch-0")
    assert info.value.retryable is False
    assert [(a.status, a.tx_hash) for a in info.value.attempts] == [("Reverted", info.value.tx_hash)]
    assert info.value.tx_hash is not None
    verdict = await client.verify_tx_inclusion(info.value.tx_hash)
    assert verdict.startswith(f"Rejected: Transaction {info.value.tx_hash} has been reverted: ")
    assert "no fact registered" in verdict
    key = await store.get_key("batch-0")
    assert key is not None and key.status is KeyStatus.REVERTED
    assert l2.operator_nonce == 1 and l2.double.update_state_count == 0  # the nonce is spent by the revert
    assert await client.last_settled_block() is None

    # Once the fact is registered, the same key settles with a new nonce.
    register(l2, bridge)
    result = await client.update_state_calldata(snos, bridge, idempotency_key="batch-0")
    assert result.nonce == 1 and not result.already_settled
    assert [a.status for a in result.attempts] == ["Reverted", "Finalized"]
    assert await client.last_settled_block() == 0
    await client.aclose()


def _piltover_error(reason: str) -> str:
    """A Cairo short-string panic as the node reports it."""
    return f"0x{reason.encode().hex()} ('{reason}')"


REFUSED_BATCHES = {
    "snos-program-hash": (lambda: snos_output(prev_block=FELT_MAX, new_block=0, program_hash=0xBAD), None),
    "layout-bridge-program-hash": (lambda: batch(0), 0xBAD),
    "os-config-hash": (lambda: batch(0, config_hash=0xBAD), None),
    "previous-root": (lambda: batch(0, old_root=0xBAD), None),
    "block-number": (lambda: snos_output(prev_block=4, new_block=5, old_root=0), None),
}
"""A batch the double refuses, and the layout bridge program hash of its bridge output (None: the right one)."""
REFUSALS = {
    "snos-program-hash": "snos: invalid program hash",
    "layout-bridge-program-hash": "lb: invalid program hash",
    "os-config-hash": "snos: invalid config hash",
    "previous-root": "State: invalid previous root",
    "block-number": "State: invalid block number",
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_piltovers_refusal_reaches_the_caller_in_its_words(l2: L2, store: SqliteTxStore, case: str) -> None:
    """Each batch's fact is registered: what fails is the check named, before a nonce is spent (the fee
    estimate executes the call), and the node's reason is the error's message."""
    make, bridge_hash = REFUSED_BATCHES[case]
    snos = make()
    bridge = bridge_of(snos) if bridge_hash is None else bridge_of(snos, layout_bridge_program_hash=bridge_hash)
    register(l2, bridge)
    client = l2.client(store)

    with pytest.raises(SettlementTxError) as info:
        await client.update_state_calldata(snos, bridge, idempotency_key="batch-0")

    assert str(info.value).startswith("Transaction execution error: ")
    assert f"Execution failed. Failure reason: {_piltover_error(REFUSALS[case])}." in str(info.value)
    assert l2.app.count("starknet_addInvokeTransaction") == 0 and l2.operator_nonce == 0
    await client.aclose()


async def test_a_trailing_word_reverts_with_the_abi_wrappers_error(l2: L2, store: SqliteTxStore) -> None:
    """The calldata of the three on-chain data words the stored Piltover still declares is refused by the
    two-span ``update_state`` the double (and the original's Piltover) has."""
    snos, bridge = make_l3_batch(0)
    register(l2, bridge)
    client = l2.client(store, http_client=httpx.AsyncClient(transport=EstimateWithoutExecuting()))
    arguments = [*update_state_calldata(snos, bridge), 0]

    with pytest.raises(TxReverted) as info:
        await client._settle("batch-0", arguments)

    assert str(info.value).endswith(f"Failure reason: {_piltover_error('Input too long for arguments')}.")
    await client.aclose()


async def test_a_pre_confirmed_update_is_pending_until_its_block_is_sealed(l2: L2, store: SqliteTxStore) -> None:
    client = l2.client(store)
    snos, bridge = make_l3_batch(0)
    register(l2, bridge)
    l2.double.hold_blocks(True)
    receipts_before = l2.app.count("starknet_getTransactionReceipt")
    settling = asyncio.create_task(client.update_state_calldata(snos, bridge, idempotency_key="batch-0"))
    # The client polls the receipt of its pre-confirmed transaction (twice: it is waiting, not done).
    await l2.app.wait_for_calls("starknet_getTransactionReceipt", receipts_before + 2)
    (tx_hash,) = l2.double.pre_confirmed_transaction_hashes
    assert not settling.done()
    assert await client.verify_tx_inclusion(hex(tx_hash)) == "Pending"
    assert await client.last_settled_block() is None  # get_state at latest: not sealed yet
    (attempt,) = await store.attempts("batch-0")
    assert attempt.status is AttemptStatus.SENT and int(attempt.tx_hash or "0", 16) == tx_hash

    l2.double.seal_block()
    result = await asyncio.wait_for(settling, 10)
    assert int(result.tx_hash, 16) == tx_hash
    assert await client.verify_tx_inclusion(result.tx_hash) == "Verified"
    assert await client.last_settled_block() == 0
    await client.aclose()


async def test_an_unaccepted_update_times_out_retryably_and_the_retry_resumes_it(l2: L2, store: SqliteTxStore) -> None:
    client = l2.client(store, confirmation_timeout_s=0.1)
    snos, bridge = make_l3_batch(0)
    register(l2, bridge)
    l2.double.hold_blocks(True)
    with pytest.raises(SettlementTxError, match=r"executed, not yet accepted on L2 within 0\.1s") as info:
        await client.update_state_calldata(snos, bridge, idempotency_key="batch-0")
    assert info.value.retryable is True and info.value.tx_hash is not None
    assert [a.status for a in await store.attempts("batch-0")] == [AttemptStatus.TIMED_OUT]

    l2.double.seal_block()
    result = await client.update_state_calldata(snos, bridge, idempotency_key="batch-0")
    assert result.tx_hash == info.value.tx_hash and result.nonce == 0
    assert l2.operator_nonce == 1 and len(l2.operator_txs()) == 1
    await client.aclose()


# --------------------------------------------------------------------------------------------------
# Crashes: a worker process SIGKILLed at each step, then a fresh one settling the same key


async def _run_worker(l2: L2, db: Path, key: str, batch_file: Path, crash_at: str | None) -> tuple[int, str, str]:
    cmd = [
        sys.executable,
        "-m",
        "tests.integration.settlement.starknet_settle_worker",
        "--rpc-url",
        l2.url,
        "--account",
        hex(OPERATOR_ACCOUNT.address),
        "--core",
        hex(CORE_CONTRACT_ADDRESS),
        "--db",
        str(db),
        "--key",
        key,
        "--batch",
        str(batch_file),
    ]
    if crash_at:
        cmd += ["--crash-at", crash_at]
    env = {**os.environ, "STARKNET_SETTLE_WORKER_PRIVATE_KEY": hex(OPERATOR_ACCOUNT.private_key)}
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("crash_at", "hold"),
    [("signed", False), ("sent", False), ("sent", True), ("mined", False)],
    ids=["after-signing", "after-sending-accepted-at-once", "after-sending-still-pre-confirmed", "before-recording"],
)
async def test_settlement_killed_at_each_step_settles_each_batch_exactly_once(
    l2: L2, tmp_path: Path, crash_at: str, hold: bool
) -> None:
    db = tmp_path / "orchestrator.db"
    store = SqliteTxStore(db)
    for block in (0, 1):
        key = f"batch-{block}"
        snos, bridge = make_l3_batch(block)
        register(l2, bridge)
        batch_file = tmp_path / f"{key}.json"
        batch_file.write_text(json.dumps({"snos_output": snos, "program_output": bridge}))
        nonce_before = l2.operator_nonce
        l2.double.hold_blocks(hold)

        code, _, err = await _run_worker(l2, db, key, batch_file, crash_at)
        assert code == -signal.SIGKILL, err[-3000:]
        (stored,) = await store.attempts(key)
        # Stored before it was sent; recorded as Sent only once the node took it; never recorded as final.
        assert stored.status is (AttemptStatus.SENT if crash_at == "mined" else AttemptStatus.SIGNED)
        assert stored.raw is not None
        sent_by_crashed = 0 if crash_at == "signed" else 1
        assert len(l2.double.pre_confirmed_transaction_hashes) == (sent_by_crashed if hold else 0)
        assert l2.operator_nonce == nonce_before + sent_by_crashed

        restarted = asyncio.create_task(_run_worker(l2, db, key, batch_file, None))
        if hold:
            # The restarted worker finds the pre-confirmed transaction and waits for its block.
            receipts = l2.app.count("starknet_getTransactionReceipt")
            await l2.app.wait_for_calls("starknet_getTransactionReceipt", receipts + 2)
            assert not restarted.done()
            l2.double.hold_blocks(False)
        code, out, err = await restarted
        assert code == 0, err[-3000:]
        result = json.loads(out)
        assert result["tx_hash"] == stored.tx_hash  # the stored transaction, not a second one
        assert result["nonce"] == block
        assert [a[:2] for a in result["attempts"]] == [[1, "Finalized"]]
        key_record = await store.get_key(key)
        assert key_record is not None and key_record.status is KeyStatus.FINALIZED

        # The double executed update_state once for this batch; the nonce moved by the one tx sent.
        assert l2.double.update_state_count == block + 1
        assert l2.operator_nonce == nonce_before + 1
        assert len(l2.operator_txs()) == block + 1
        assert l2.double.sealed_state.last_settled_block == block

    # A third run of batch 0 sends nothing.
    code, out, err = await _run_worker(l2, db, "batch-0", tmp_path / "batch-0.json", None)
    assert code == 0, err[-3000:]
    assert json.loads(out)["already_settled"] is True
    assert [t.nonce for t in l2.operator_txs()] == [0, 1]
    assert l2.double.update_state_count == 2
    store.close()
