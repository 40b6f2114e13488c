"""The Starknet settlement-layer double over real HTTP, driven by starknet-py's FullNodeClient and Account."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import httpx
import pytest
from starknet_py.constants import EXPECTED_RPC_VERSION
from starknet_py.hash.selector import get_selector_from_name
from starknet_py.net.account.account import Account
from starknet_py.net.client_errors import ClientError
from starknet_py.net.client_models import (
    Call,
    EstimatedFee,
    PriceUnit,
    ResourceBounds,
    ResourceBoundsMapping,
    TransactionExecutionStatus,
    TransactionFinalityStatus,
    TransactionStatus,
)
from starknet_py.net.full_node_client import FullNodeClient
from starknet_py.net.models.transaction import InvokeV3
from starknet_py.net.signer.key_pair import KeyPair
from starknet_py.net.signer.stark_curve_signer import StarkCurveSigner

from madara_orchestrator.devnet.layout_bridge import (
    BRIDGE_PROGRAM_HASH,
    DEVNET_CAIRO_VERIFIER_PROGRAM_HASH,
    FELT_PRIME,
    bridge_output,
    l2_fact,
)
from madara_orchestrator.devnet.starknet_l2 import (
    CORE_CONTRACT_ADDRESS,
    DEFAULT_CHAIN_ID,
    DEV_ACCOUNTS,
    FACT_REGISTRY_ADDRESS,
    L1_DATA_GAS_PRICE_FRI,
    L2_GAS_PRICE_FRI,
    OPERATOR_ACCOUNT,
    VERIFIER_ACCOUNT,
    DevAccount,
    StarknetL2Double,
    decode_execute_calldata,
)
from madara_orchestrator.server.background import BackgroundServer

BYSTANDER = DEV_ACCOUNTS[2]
BEFORE_GENESIS = FELT_PRIME - 1
OS_PROGRAM_HASH = 0x1234
CONFIG_HASH = 0x5678
BOUNDS = ResourceBoundsMapping(
    l1_gas=ResourceBounds(max_amount=0, max_price_per_unit=0),
    l2_gas=ResourceBounds(max_amount=10**7, max_price_per_unit=2 * L2_GAS_PRICE_FRI),
    l1_data_gas=ResourceBounds(max_amount=10**4, max_price_per_unit=2 * L1_DATA_GAS_PRICE_FRI),
)
"""Generous explicit bounds: sending with them skips fee estimation (which refuses reverting calls)."""
Mangle = Callable[[list[int], list[int]], tuple[list[int], list[int]]]


@dataclass
class L2:
    double: StarknetL2Double
    client: FullNodeClient
    url: str

    def account(self, dev: DevAccount, *, signing_key: DevAccount | None = None) -> Account:
        key = signing_key or dev
        return Account(
            address=dev.address,
            client=self.client,
            key_pair=KeyPair(private_key=key.private_key, public_key=key.public_key),
            chain=DEFAULT_CHAIN_ID,
        )


async def serve(double: StarknetL2Double) -> AsyncIterator[L2]:
    server = BackgroundServer(double.app)
    url = await server.start()
    try:
        yield L2(double=double, client=FullNodeClient(node_url=url), url=url)
    finally:
        await double.stop()
        await server.stop()


@pytest.fixture
async def l2() -> AsyncIterator[L2]:
    async for running in serve(StarknetL2Double()):
        yield running


def snos_output(*, prev_block: int, new_block: int, old_root: int = 0, new_root: int | None = None) -> list[int]:
    new_root = 0x1000 + new_block if new_root is None else new_root
    prev_hash = 0 if prev_block == BEFORE_GENESIS else 0x2000 + prev_block
    return [
        old_root,
        new_root,
        prev_block,
        new_block,
        prev_hash,
        0x2000 + new_block,
        OS_PROGRAM_HASH,
        CONFIG_HASH,
        0,
        1,
        0,
        0,
    ]


def bridge_of(snos: list[int]) -> list[int]:
    return bridge_output(snos, verifier_program_hash=DEVNET_CAIRO_VERIFIER_PROGRAM_HASH)


def fact_of(snos: list[int]) -> int:
    return l2_fact(BRIDGE_PROGRAM_HASH, bridge_of(snos))


def update_state_call(snos: list[int], bridge: list[int] | None = None) -> Call:
    bridge = bridge_of(snos) if bridge is None else bridge
    return Call(
        to_addr=CORE_CONTRACT_ADDRESS,
        selector=get_selector_from_name("update_state"),
        calldata=[len(snos), *snos, len(bridge), *bridge, 0, 0],
    )


def register_fact_call(fact: int) -> Call:
    return Call(to_addr=FACT_REGISTRY_ADDRESS, selector=get_selector_from_name("register_fact"), calldata=[fact])


def get_state_call() -> Call:
    return Call(to_addr=CORE_CONTRACT_ADDRESS, selector=get_selector_from_name("get_state"), calldata=[])


async def get_state(l2: L2, block: Literal["latest", "pre_confirmed"] = "latest") -> list[int]:
    return await l2.client.call_contract(get_state_call(), block_number=block)


async def is_valid(l2: L2, fact: int) -> bool:
    call = Call(to_addr=FACT_REGISTRY_ADDRESS, selector=get_selector_from_name("is_valid"), calldata=[fact])
    (answer,) = await l2.client.call_contract(call, block_number="latest")
    return answer == 1


@dataclass
class Rejection:
    code: int
    message: str
    data: object


async def rpc_error(awaitable: Awaitable[object]) -> Rejection:
    """The JSON-RPC error the awaited starknet-py call fails with."""
    with pytest.raises(ClientError) as caught:
        await awaitable
    code: object = caught.value.code  # typed str by starknet-py, an int on the wire
    assert isinstance(code, int)
    return Rejection(code=code, message=caught.value.message, data=caught.value.data)


# -- settlement ------------------------------------------------------------------------------------


async def test_a_proven_update_state_settles_and_get_state_shows_the_new_block(l2: L2) -> None:
    first = snos_output(prev_block=BEFORE_GENESIS, new_block=0)
    second = snos_output(prev_block=0, new_block=5, old_root=first[1])
    verifier = l2.account(VERIFIER_ACCOUNT)
    operator = l2.account(OPERATOR_ACCOUNT)
    assert await get_state(l2) == [0, BEFORE_GENESIS, 0]

    for snos in (first, second):
        registered = await verifier.execute_v3(calls=register_fact_call(fact_of(snos)), auto_estimate=True)
        assert (await l2.client.get_transaction_receipt(registered.transaction_hash)).execution_status is (
            TransactionExecutionStatus.SUCCEEDED
        )
        sent = await operator.execute_v3(calls=update_state_call(snos), auto_estimate=True)
        receipt = await l2.client.get_transaction_receipt(sent.transaction_hash)
        assert receipt.execution_status is TransactionExecutionStatus.SUCCEEDED
        assert receipt.finality_status is TransactionFinalityStatus.ACCEPTED_ON_L2
        assert receipt.block_hash is not None
        assert receipt.revert_reason is None
        assert receipt.actual_fee.amount > 0
        assert [e.data for e in receipt.events] == [[snos[1], snos[3], snos[5]]]

    assert await get_state(l2) == [second[1], 5, second[5]]
    assert l2.double.state == l2.double.sealed_state
    assert l2.double.state.last_settled_block == 5
    assert l2.double.update_state_count == 2
    assert await operator.get_nonce() == 2
    assert await l2.client.get_block_number() == 4  # genesis, then one block per transaction


async def test_an_unregistered_fact_reverts_the_transaction_and_still_consumes_the_nonce(l2: L2) -> None:
    snos = snos_output(prev_block=BEFORE_GENESIS, new_block=0)
    operator = l2.account(OPERATOR_ACCOUNT)

    sent = await operator.execute_v3(calls=update_state_call(snos), resource_bounds=BOUNDS)

    receipt = await l2.client.get_transaction_receipt(sent.transaction_hash)
    assert receipt.execution_status is TransactionExecutionStatus.REVERTED
    assert receipt.finality_status is TransactionFinalityStatus.ACCEPTED_ON_L2
    assert receipt.revert_reason is not None
    assert "unregistered fact" in receipt.revert_reason
    assert hex(fact_of(snos)) in receipt.revert_reason
    status = await l2.client.get_transaction_status(sent.transaction_hash)
    assert status.execution_status is TransactionExecutionStatus.REVERTED
    assert status.failure_reason == receipt.revert_reason
    assert await operator.get_nonce() == 1
    assert await get_state(l2) == [0, BEFORE_GENESIS, 0]
    assert l2.double.update_state_count == 0
    assert [tx.is_reverted for tx in l2.double.transactions] == [True]


async def test_an_output_that_skips_blocks_reverts_as_not_contiguous(l2: L2) -> None:
    first = snos_output(prev_block=BEFORE_GENESIS, new_block=3)
    gap = snos_output(prev_block=7, new_block=9, old_root=first[1])
    for snos in (first, gap):
        l2.double.register_fact_directly(fact_of(snos))
    operator = l2.account(OPERATOR_ACCOUNT)
    assert (
        await l2.client.get_transaction_receipt(
            (await operator.execute_v3(calls=update_state_call(first), resource_bounds=BOUNDS)).transaction_hash
        )
    ).execution_status is TransactionExecutionStatus.SUCCEEDED

    sent = await operator.execute_v3(calls=update_state_call(gap), resource_bounds=BOUNDS)

    receipt = await l2.client.get_transaction_receipt(sent.transaction_hash)
    assert receipt.execution_status is TransactionExecutionStatus.REVERTED
    assert receipt.revert_reason is not None and "not contiguous" in receipt.revert_reason
    assert await get_state(l2) == [first[1], 3, first[5]]


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda snos, bridge: (snos, [*bridge[:-1], bridge[-1] + 1]), "invalid output hash"),
        (lambda snos, bridge: (snos[:9], bridge_of(snos[:9])), "invalid output size"),
        (lambda snos, bridge: ([*snos[:8], 2, *snos[9:]], bridge_of([*snos[:8], 2, *snos[9:]])), "use_kzg_da"),
        (lambda snos, bridge: ([7, *snos[1:]], bridge_of([7, *snos[1:]])), "invalid previous root"),
        (lambda snos, bridge: ([*snos[:3], 1, *snos[4:]], bridge_of([*snos[:3], 1, *snos[4:]])), "is not after"),
    ],
    ids=["bridge-does-not-commit", "short-header", "bad-kzg-flag", "root-discontinuity", "block-not-after"],
)
async def test_update_state_checks_the_output_and_continuity(l2: L2, mangle: Mangle, reason: str) -> None:
    first = snos_output(prev_block=BEFORE_GENESIS, new_block=1, new_root=0xAAA)
    next_ok = snos_output(prev_block=1, new_block=2, old_root=0xAAA)
    snos, bridge = mangle(next_ok, bridge_of(next_ok))
    for output in (first, snos):
        l2.double.register_fact_directly(fact_of(output))
    l2.double.register_fact_directly(l2_fact(BRIDGE_PROGRAM_HASH, bridge))
    operator = l2.account(OPERATOR_ACCOUNT)
    await operator.execute_v3(calls=update_state_call(first), resource_bounds=BOUNDS)
    assert l2.double.update_state_count == 1

    sent = await operator.execute_v3(calls=update_state_call(snos, bridge), resource_bounds=BOUNDS)

    tx = l2.double.transaction(sent.transaction_hash)
    assert tx.is_reverted
    assert tx.revert_reason is not None and reason in tx.revert_reason
    assert l2.double.state.block_number == 1


async def test_update_state_accepts_the_calldata_with_or_without_the_onchain_data_words(l2: L2) -> None:
    operator = l2.account(OPERATOR_ACCOUNT)
    previous = BEFORE_GENESIS
    root = 0
    for block, tail in ((0, []), (1, [0, 0]), (2, [0, 0, 0]), (3, [0])):
        snos = snos_output(prev_block=previous, new_block=block, old_root=root)
        bridge = bridge_of(snos)
        l2.double.register_fact_directly(fact_of(snos))
        call = Call(
            to_addr=CORE_CONTRACT_ADDRESS,
            selector=get_selector_from_name("update_state"),
            calldata=[len(snos), *snos, len(bridge), *bridge, *tail],
        )
        sent = await operator.execute_v3(calls=call, resource_bounds=BOUNDS)
        tx = l2.double.transaction(sent.transaction_hash)
        if len(tail) == 1:
            assert tx.revert_reason is not None and "Input too long" in tx.revert_reason
        else:
            assert not tx.is_reverted, tx.revert_reason
            previous, root = block, snos[1]
    assert l2.double.state.block_number == 2


async def test_only_the_operator_may_update_the_state(l2: L2) -> None:
    snos = snos_output(prev_block=BEFORE_GENESIS, new_block=0)
    l2.double.register_fact_directly(fact_of(snos))

    sent = await l2.account(BYSTANDER).execute_v3(calls=update_state_call(snos), resource_bounds=BOUNDS)

    tx = l2.double.transaction(sent.transaction_hash)
    assert tx.revert_reason is not None and "not owner or operator" in tx.revert_reason
    assert l2.double.update_state_count == 0


# -- the fact registry --------------------------------------------------------------------------------


async def test_register_fact_from_a_non_verifier_reverts_and_from_the_verifier_succeeds(l2: L2) -> None:
    fact = 0xFAC7

    for outsider in (OPERATOR_ACCOUNT, BYSTANDER):
        sent = await l2.account(outsider).execute_v3(calls=register_fact_call(fact), resource_bounds=BOUNDS)
        receipt = await l2.client.get_transaction_receipt(sent.transaction_hash)
        assert receipt.execution_status is TransactionExecutionStatus.REVERTED
        assert receipt.revert_reason is not None and "not a verifier" in receipt.revert_reason
    assert not await is_valid(l2, fact)

    sent = await l2.account(VERIFIER_ACCOUNT).execute_v3(calls=register_fact_call(fact), resource_bounds=BOUNDS)
    assert (await l2.client.get_transaction_receipt(sent.transaction_hash)).execution_status is (
        TransactionExecutionStatus.SUCCEEDED
    )
    assert await is_valid(l2, fact)
    assert l2.double.is_fact_registered(fact)


async def test_a_failing_call_rolls_back_the_earlier_calls_of_the_same_transaction(l2: L2) -> None:
    fact = 0xB0B
    unknown = Call(to_addr=FACT_REGISTRY_ADDRESS, selector=get_selector_from_name("no_such_entrypoint"), calldata=[])

    sent = await l2.account(VERIFIER_ACCOUNT).execute_v3(
        calls=[register_fact_call(fact), unknown], resource_bounds=BOUNDS
    )

    tx = l2.double.transaction(sent.transaction_hash)
    assert tx.revert_reason is not None and "not found in contract" in tx.revert_reason
    assert [call.selector for call in tx.calls] == [get_selector_from_name("register_fact"), unknown.selector]
    assert not await is_valid(l2, fact)
    assert tx.events == ()


# -- admission: errors from addInvokeTransaction ---------------------------------------------------


async def test_a_transaction_signed_with_another_key_is_rejected_with_error_55(l2: L2) -> None:
    impostor = l2.account(OPERATOR_ACCOUNT, signing_key=VERIFIER_ACCOUNT)

    error = await rpc_error(impostor.execute_v3(calls=register_fact_call(1), resource_bounds=BOUNDS))

    assert error.code == 55
    assert "Account validation failed" in error.message
    assert await impostor.get_nonce() == 0
    assert l2.double.transactions == ()


async def test_a_sender_without_an_account_is_rejected_with_error_55(l2: L2) -> None:
    stranger = 0x5757
    unsigned = InvokeV3(
        version=3,
        signature=[],
        nonce=0,
        resource_bounds=BOUNDS,
        tip=0,
        calldata=[1, FACT_REGISTRY_ADDRESS, get_selector_from_name("register_fact"), 1, 1],
        sender_address=stranger,
    )
    key = KeyPair(private_key=BYSTANDER.private_key, public_key=BYSTANDER.public_key)
    signer = StarkCurveSigner(account_address=stranger, key_pair=key, chain_id=l2.double.chain_id_felt)
    signed = dataclasses.replace(unsigned, signature=signer.sign_transaction(unsigned))

    error = await rpc_error(l2.client.send_transaction(signed))

    assert error.code == 55
    assert error.data is not None and "no account" in str(error.data)


async def test_a_wrong_nonce_is_rejected_with_error_52(l2: L2) -> None:
    operator = l2.account(OPERATOR_ACCOUNT)

    error = await rpc_error(operator.execute_v3(calls=register_fact_call(1), resource_bounds=BOUNDS, nonce=5))

    assert error.code == 52
    assert "Invalid transaction nonce" in error.message
    assert await operator.get_nonce() == 0
    assert l2.double.transactions == ()


async def test_the_same_transaction_twice_is_rejected_with_error_59(l2: L2) -> None:
    operator = l2.account(OPERATOR_ACCOUNT)
    signed = await operator.sign_invoke_v3(calls=register_fact_call(1), resource_bounds=BOUNDS)
    first = await l2.client.send_transaction(signed)
    assert first.transaction_hash == signed.calculate_hash(l2.double.chain_id_felt)

    error = await rpc_error(l2.client.send_transaction(signed))

    assert error.code == 59
    assert len(l2.double.transactions) == 1


async def test_resource_bounds_below_the_gas_used_are_rejected_with_error_53(l2: L2) -> None:
    operator = l2.account(OPERATOR_ACCOUNT)
    too_little = ResourceBoundsMapping(
        l1_gas=BOUNDS.l1_gas,
        l2_gas=ResourceBounds(max_amount=1000, max_price_per_unit=BOUNDS.l2_gas.max_price_per_unit),
        l1_data_gas=BOUNDS.l1_data_gas,
    )

    error = await rpc_error(operator.execute_v3(calls=register_fact_call(1), resource_bounds=too_little))

    assert error.code == 53
    assert error.data is not None and "l2_gas max_amount 1000" in str(error.data)
    assert await operator.get_nonce() == 0


async def test_only_version_3_is_executed_and_a_query_version_is_error_61(l2: L2) -> None:
    operator = l2.account(OPERATOR_ACCOUNT)
    query_signed = await operator.sign_for_fee_estimate(
        await operator.sign_invoke_v3(calls=register_fact_call(1), resource_bounds=BOUNDS)
    )

    error = await rpc_error(l2.client.send_transaction(query_signed))

    assert error.code == 61
    assert l2.double.transactions == ()


# -- fees, blocks, reads ----------------------------------------------------------------------------


async def test_estimate_fee_reports_a_fri_estimate_that_grows_with_the_calldata(l2: L2) -> None:
    operator = l2.account(OPERATOR_ACCOUNT)
    snos = snos_output(prev_block=BEFORE_GENESIS, new_block=0)
    l2.double.register_fact_directly(fact_of(snos))
    small = await operator.sign_invoke_v3(calls=update_state_call(snos), resource_bounds=BOUNDS)
    large = await operator.sign_invoke_v3(
        calls=[update_state_call(snos), *[get_state_call()] * 3], resource_bounds=BOUNDS
    )

    small_fee = await operator.estimate_fee(small)
    large_fee = await operator.estimate_fee(large)

    assert isinstance(small_fee, EstimatedFee) and isinstance(large_fee, EstimatedFee)
    for fee in (small_fee, large_fee):
        assert fee.unit is PriceUnit.FRI
        spent = fee.l1_gas_consumed * fee.l1_gas_price + fee.l2_gas_consumed * fee.l2_gas_price
        assert fee.overall_fee == spent + fee.l1_data_gas_consumed * fee.l1_data_gas_price > 0
        assert fee.l2_gas_price == L2_GAS_PRICE_FRI
    assert large_fee.l2_gas_consumed > small_fee.l2_gas_consumed
    assert await operator.get_nonce() == 0  # estimating applies nothing
    assert l2.double.transactions == ()


async def test_estimate_fee_of_a_reverting_call_is_a_transaction_execution_error(l2: L2) -> None:
    operator = l2.account(OPERATOR_ACCOUNT)
    snos = snos_output(prev_block=BEFORE_GENESIS, new_block=0)

    error = await rpc_error(operator.execute_v3(calls=update_state_call(snos), auto_estimate=True))

    assert error.code == 41
    assert "unregistered fact" in str(error.data)
    assert l2.double.transactions == ()


async def test_held_blocks_keep_transactions_pre_confirmed_until_seal_block(l2: L2) -> None:
    snos = snos_output(prev_block=BEFORE_GENESIS, new_block=0)
    l2.double.register_fact_directly(fact_of(snos))
    l2.double.hold_blocks(True)

    sent = await l2.account(OPERATOR_ACCOUNT).execute_v3(calls=update_state_call(snos), auto_estimate=True)

    pending = await l2.client.get_transaction_receipt(sent.transaction_hash)
    assert pending.finality_status is TransactionFinalityStatus.PRE_CONFIRMED
    assert pending.block_hash is None and pending.block_number == 1
    status = await l2.client.get_transaction_status(sent.transaction_hash)
    assert status.finality_status is TransactionStatus.PRE_CONFIRMED
    assert await get_state(l2, "latest") == [0, BEFORE_GENESIS, 0]
    assert (await get_state(l2, "pre_confirmed"))[1] == 0
    pre_confirmed = await l2.client.get_block_with_tx_hashes(block_number="pre_confirmed")
    assert pre_confirmed.transactions == [sent.transaction_hash]
    assert await l2.client.get_block_number() == 0

    assert l2.double.seal_block() == 1

    sealed = await l2.client.get_transaction_receipt(sent.transaction_hash)
    assert sealed.finality_status is TransactionFinalityStatus.ACCEPTED_ON_L2
    block = await l2.client.get_block_with_tx_hashes(block_number="latest")
    assert sealed.block_hash == block.block_hash  # type: ignore[union-attr]
    assert block.transactions == [sent.transaction_hash]
    assert await get_state(l2, "latest") == [snos[1], 0, snos[5]]
    by_number = await l2.client.get_block(block_number=1)
    assert [tx.hash for tx in by_number.transactions] == [sent.transaction_hash]


async def test_releasing_held_blocks_seals_what_is_pre_confirmed(l2: L2) -> None:
    l2.double.hold_blocks(True)
    sent = await l2.account(VERIFIER_ACCOUNT).execute_v3(calls=register_fact_call(0xF1), resource_bounds=BOUNDS)
    assert l2.double.pre_confirmed_transaction_hashes == (sent.transaction_hash,)

    l2.double.hold_blocks(False)

    assert not l2.double.pre_confirmed_transaction_hashes
    status = await l2.client.get_transaction_status(sent.transaction_hash)
    assert status.finality_status is TransactionStatus.ACCEPTED_ON_L2
    assert await is_valid(l2, 0xF1)


async def test_a_positive_block_time_seals_blocks_in_the_background() -> None:
    async for l2 in serve(StarknetL2Double(block_time_s=0.02)):
        await l2.double.start()
        snos = snos_output(prev_block=BEFORE_GENESIS, new_block=4)
        l2.double.register_fact_directly(fact_of(snos))

        sent = await l2.account(OPERATOR_ACCOUNT).execute_v3(calls=update_state_call(snos), auto_estimate=True)

        settled = await l2.double.wait_for_settlement(4, timeout_s=5)  # no seal_block(): the producer sealed it
        assert settled.block_hash == snos[5]
        receipt = await l2.client.get_transaction_receipt(sent.transaction_hash)
        assert receipt.finality_status is TransactionFinalityStatus.ACCEPTED_ON_L2


async def test_the_node_reports_its_chain_id_and_the_spec_version_starknet_py_expects(l2: L2) -> None:
    assert await l2.client.spec_version() == EXPECTED_RPC_VERSION
    assert await l2.client.get_chain_id() == "0x" + DEFAULT_CHAIN_ID.encode().hex()
    class_hash = await l2.client.get_class_hash_at(OPERATOR_ACCOUNT.address)
    assert class_hash == await l2.client.get_class_hash_at(VERIFIER_ACCOUNT.address)
    assert await l2.account(OPERATOR_ACCOUNT).cairo_version == 1


async def test_a_versioned_rpc_path_is_served_too(l2: L2) -> None:
    client = FullNodeClient(node_url=l2.url + "/rpc/v0_10")
    assert await client.get_contract_nonce(OPERATOR_ACCOUNT.address) == 0


async def test_json_rpc_errors_for_unknown_methods_hashes_and_contracts(l2: L2) -> None:
    assert (await rpc_error(l2.client.get_transaction_receipt(0xDEAD))).code == 29
    assert (await rpc_error(l2.client.get_contract_nonce(0xBEEF))).code == 20
    assert (await rpc_error(l2.client.get_block(block_number=7))).code == 24
    async with httpx.AsyncClient(base_url=l2.url) as http:
        unknown = (
            await http.post("/", json={"jsonrpc": "2.0", "id": 3, "method": "starknet_nope", "params": []})
        ).json()
        positional = (
            await http.post(
                "/",
                json={
                    "jsonrpc": "2.0",
                    "id": 4,
                    "method": "starknet_getNonce",
                    "params": ["latest", hex(OPERATOR_ACCOUNT.address)],
                },
            )
        ).json()
        not_json = (await http.post("/", content=b"{")).json()
    assert unknown["error"]["code"] == -32601 and unknown["id"] == 3
    assert positional == {"jsonrpc": "2.0", "id": 4, "result": "0x0"}
    assert not_json["error"]["code"] == -32700


async def test_starknet_call_reverts_are_contract_errors(l2: L2) -> None:
    call = Call(to_addr=FACT_REGISTRY_ADDRESS, selector=get_selector_from_name("is_valid"), calldata=[1, 2])
    error = await rpc_error(l2.client.call_contract(call, block_number="latest"))
    assert error.code == 40
    assert "Input too long" in str(error.data)


def test_execute_calldata_decodes_the_cairo_1_multicall_encoding() -> None:
    assert [(c.to, c.selector, c.calldata) for c in decode_execute_calldata([2, 10, 11, 1, 7, 20, 21, 0])] == [
        (10, 11, (7,)),
        (20, 21, ()),
    ]
    for malformed in ([], [1, 10, 11], [1, 10, 11, 2, 7], [1, 10, 11, 0, 9]):
        with pytest.raises(ValueError):
            decode_execute_calldata(malformed)


def test_dev_accounts_have_distinct_fixed_keys_matching_their_public_keys() -> None:
    from starknet_py.hash.utils import private_to_stark_key

    assert len({a.address for a in DEV_ACCOUNTS}) == len({a.private_key for a in DEV_ACCOUNTS}) == len(DEV_ACCOUNTS)
    assert all(private_to_stark_key(a.private_key) == a.public_key for a in DEV_ACCOUNTS)
    assert DEV_ACCOUNTS == StarknetL2Double().accounts


async def test_waiting_for_a_settlement_that_never_comes_times_out(l2: L2) -> None:
    with pytest.raises(TimeoutError):
        await l2.double.wait_for_settlement(0, timeout_s=0.05)
