"""The Starknet settlement-layer double over real HTTP, driven by starknet-py's FullNodeClient and Account.

Its core contract checks what Piltover's ``update_state`` checks, with Piltover's error strings; its fact
registry is Integrity's."""

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

from madara_orchestrator.devnet.layout_bridge import BRIDGE_VERIFIER_CONFIG, DEVNET_CAIRO_VERIFIER_PROGRAM_HASH
from madara_orchestrator.devnet.program_output import DEVNET_OS_PROGRAM_HASH, devnet_config_hash
from madara_orchestrator.devnet.starknet_l2 import (
    CORE_CONTRACT_ADDRESS,
    DEFAULT_CHAIN_ID,
    DEV_ACCOUNTS,
    DEVNET_PROGRAM_INFO,
    FACT_REGISTRY_ADDRESS,
    L1_DATA_GAS_PRICE_FRI,
    L2_GAS_PRICE_FRI,
    OPERATOR_ACCOUNT,
    VERIFIER_ACCOUNT,
    DevAccount,
    MessageStatus,
    StarknetL2Double,
    decode_execute_calldata,
    message_hash_to_appchain,
    message_hash_to_starknet,
    verification_hash,
)
from madara_orchestrator.server.background import BackgroundServer
from tests.helpers.piltover import (
    BEFORE_GENESIS,
    FINAL_ROOT,
    MESSAGES,
    NEW_BLOCK,
    NEW_HASH,
    ToL1,
    ToL2,
    batch,
    bridge_of,
    fact_of,
    root,
    snos_output,
    update_state_calldata,
)

BYSTANDER = DEV_ACCOUNTS[2]
BOUNDS = ResourceBoundsMapping(
    l1_gas=ResourceBounds(max_amount=0, max_price_per_unit=0),
    l2_gas=ResourceBounds(max_amount=10**7, max_price_per_unit=2 * L2_GAS_PRICE_FRI),
    l1_data_gas=ResourceBounds(max_amount=10**4, max_price_per_unit=2 * L1_DATA_GAS_PRICE_FRI),
)
"""Generous explicit bounds: sending with them skips fee estimation (which refuses reverting calls)."""
SECURITY_BITS = 78
"""What Integrity computes for the mock's bridge proofs: 16 queries × 3 + 30 proof-of-work bits."""


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


def register(l2: L2, snos: list[int]) -> None:
    """Register the fact of ``snos``'s layout bridge output, as the mock Atlantic server's verification does."""
    l2.double.register_fact_directly(fact_of(bridge_of(snos)))


def update_state_call(snos: list[int], bridge: list[int] | None = None) -> Call:
    bridge = bridge_of(snos) if bridge is None else bridge
    return core_call("update_state", update_state_calldata(snos, bridge))


def core_call(name: str, calldata: list[int]) -> Call:
    return Call(to_addr=CORE_CONTRACT_ADDRESS, selector=get_selector_from_name(name), calldata=calldata)


def register_fact_call(fact: int, security_bits: int = SECURITY_BITS) -> Call:
    return Call(
        to_addr=FACT_REGISTRY_ADDRESS,
        selector=get_selector_from_name("register_fact"),
        calldata=[*BRIDGE_VERIFIER_CONFIG.to_felts(), fact, security_bits],
    )


def get_state_call() -> Call:
    return core_call("get_state", [])


async def get_state(l2: L2, block: Literal["latest", "pre_confirmed"] = "latest") -> list[int]:
    return await l2.client.call_contract(get_state_call(), block_number=block)


async def verifications(l2: L2, fact: int) -> list[int]:
    """``get_all_verifications_for_fact_hash(fact)`` at latest, as returned (serialized)."""
    call = Call(
        to_addr=FACT_REGISTRY_ADDRESS,
        selector=get_selector_from_name("get_all_verifications_for_fact_hash"),
        calldata=[fact],
    )
    return await l2.client.call_contract(call, block_number="latest")


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


def panic(reason: str) -> str:
    """How Starknet reports a Cairo panic with a short string."""
    return f"0x{reason.encode().hex()} ('{reason}')"


async def reverted(l2: L2, call: Call, account: DevAccount = OPERATOR_ACCOUNT) -> str:
    """Send ``call`` (no estimate) and return the revert reason of the transaction (it must revert)."""
    sent = await l2.account(account).execute_v3(calls=call, resource_bounds=BOUNDS)
    tx = l2.double.transaction(sent.transaction_hash)
    assert tx.is_reverted, "the transaction should have reverted"
    assert tx.revert_reason is not None
    return tx.revert_reason


# -- settlement ------------------------------------------------------------------------------------


async def test_a_proven_update_state_settles_and_get_state_shows_the_new_block(l2: L2) -> None:
    first = batch(0)
    second = snos_output(prev_block=0, new_block=5)
    verifier = l2.account(VERIFIER_ACCOUNT)
    operator = l2.account(OPERATOR_ACCOUNT)
    assert await get_state(l2) == [0, BEFORE_GENESIS, 0]

    for snos in (first, second):
        registered = await verifier.execute_v3(calls=register_fact_call(fact_of(bridge_of(snos))), auto_estimate=True)
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
        assert [e.data for e in receipt.events] == [[snos[FINAL_ROOT], snos[NEW_BLOCK], snos[NEW_HASH]]]

    assert await get_state(l2) == [second[FINAL_ROOT], 5, second[NEW_HASH]]
    assert l2.double.state == l2.double.sealed_state
    assert l2.double.state.last_settled_block == 5
    assert l2.double.update_state_count == 2
    assert await operator.get_nonce() == 2
    assert await l2.client.get_block_number() == 4  # genesis, then one block per transaction
    assert list(l2.double.transactions[-1].calls[0].calldata) == update_state_calldata(second, bridge_of(second))


async def test_an_unregistered_fact_reverts_the_transaction_and_still_consumes_the_nonce(l2: L2) -> None:
    snos = batch(0)
    operator = l2.account(OPERATOR_ACCOUNT)

    sent = await operator.execute_v3(calls=update_state_call(snos), resource_bounds=BOUNDS)

    receipt = await l2.client.get_transaction_receipt(sent.transaction_hash)
    assert receipt.execution_status is TransactionExecutionStatus.REVERTED
    assert receipt.finality_status is TransactionFinalityStatus.ACCEPTED_ON_L2
    assert receipt.revert_reason is not None
    assert receipt.revert_reason.endswith(f"Execution failed. Failure reason: {panic('no fact registered')}.")
    status = await l2.client.get_transaction_status(sent.transaction_hash)
    assert status.execution_status is TransactionExecutionStatus.REVERTED
    assert status.failure_reason == receipt.revert_reason
    assert await operator.get_nonce() == 1
    assert await get_state(l2) == [0, BEFORE_GENESIS, 0]
    assert l2.double.update_state_count == 0
    assert [tx.is_reverted for tx in l2.double.transactions] == [True]


# One test per Piltover check: the mangled SNOS output / bridge output (with the fact of what is sent
# registered, unless the case is about the fact) and Piltover's error.
Mangle = Callable[[list[int]], tuple[list[int], list[int], int]]
"""Given the next correct SNOS output: ``(snos_output, layout_bridge_output, fact registered)``."""


def _registered(snos: list[int], bridge: list[int]) -> tuple[list[int], list[int], int]:
    return snos, bridge, fact_of(bridge)


def _set(words: list[int], index: int, value: int) -> list[int]:
    return [*words[:index], value, *words[index + 1 :]]


NEXT = {"prev_block": 1, "new_block": 2}
CHECKS: dict[str, tuple[Mangle, str]] = {
    "layout-bridge-program-hash": (
        lambda snos: _registered(snos, bridge_of(snos, layout_bridge_program_hash=0xBAD)),
        "lb: invalid program hash",
    ),
    "bootloader-program-hash": (
        # The fact was registered for a proof of another bootloader: Piltover's fact is then not found.
        lambda snos: (snos, bridge_of(snos), fact_of(bridge_of(snos), bootloader_program_hash=0xB007)),
        "no fact registered",
    ),
    "snos-program-hash": (
        lambda snos: _registered(s := snos_output(program_hash=0xBAD, **NEXT), bridge_of(s)),
        "snos: invalid program hash",
    ),
    "snos-output-hash": (
        lambda snos: _registered(snos, _set(bridge_of(snos), 4, 0xBAD)),
        "snos: invalid output hash",
    ),
    "fact-not-registered": (lambda snos: (snos, bridge_of(snos), 0x404), "no fact registered"),
    "os-config-hash": (
        lambda snos: _registered(s := snos_output(config_hash=0xBAD, **NEXT), bridge_of(s)),
        "snos: invalid config hash",
    ),
    "previous-root": (
        lambda snos: _registered(s := snos_output(old_root=0xBAD, **NEXT), bridge_of(s)),
        "State: invalid previous root",
    ),
    "previous-block-number": (
        lambda snos: _registered(s := snos_output(prev_block=0, new_block=2, old_root=root(1)), bridge_of(s)),
        "State: invalid block number",
    ),
    "messages-segment-count": (
        # The L1 messages segment claims more words than the output has: the L2 messages count is missing.
        lambda snos: _registered(s := _set(snos, MESSAGES, len(snos)), bridge_of(s)),
        "Option::unwrap failed.",
    ),
    "message-payload-size": (
        lambda snos: _registered(
            s := _set(snos_output(to_l1=[ToL1(0xA, 0xB)], **NEXT), MESSAGES + 3, 2**32), bridge_of(s)
        ),
        "Invalid payload size",
    ),
    "message-from-address": (
        lambda snos: _registered(s := snos_output(to_l1=[ToL1(2**251, 0xB, (1,))], **NEXT), bridge_of(s)),
        "Invalid from address",
    ),
    "message-to-l2-not-sent": (
        lambda snos: _registered(s := snos_output(to_l2=[ToL2(0xA, 0xB, 0, 0x5E1, (1,))], **NEXT), bridge_of(s)),
        "INVALID_MESSAGE_TO_SEAL",
    ),
    "short-snos-output": (lambda snos: _registered(snos[:2], bridge_of(snos[:2])), "Index out of bounds"),
}


@pytest.mark.parametrize("case", list(CHECKS))
async def test_update_state_makes_each_piltover_check_with_its_error(l2: L2, case: str) -> None:
    first = snos_output(prev_block=BEFORE_GENESIS, new_block=1)
    register(l2, first)
    await l2.account(OPERATOR_ACCOUNT).execute_v3(calls=update_state_call(first), resource_bounds=BOUNDS)
    assert l2.double.update_state_count == 1
    mangle, error = CHECKS[case]
    snos, bridge, fact = mangle(snos_output(**NEXT))
    l2.double.register_fact_directly(fact)

    reason = await reverted(l2, update_state_call(snos, bridge))

    assert reason.endswith(f"Execution failed. Failure reason: {panic(error)}."), reason
    assert l2.double.state.block_number == 1 and l2.double.update_state_count == 1
    # The correct output still settles: nothing of the failed call stayed.
    good = snos_output(**NEXT)
    register(l2, good)
    sent = await l2.account(OPERATOR_ACCOUNT).execute_v3(calls=update_state_call(good), resource_bounds=BOUNDS)
    assert not l2.double.transaction(sent.transaction_hash).is_reverted
    assert l2.double.state.block_number == 2


async def test_a_fact_verified_with_too_few_security_bits_fails_piltovers_assertion(l2: L2) -> None:
    snos = batch(0)
    l2.double.register_fact_directly(fact_of(bridge_of(snos)), security_bits=50)
    reason = await reverted(l2, update_state_call(snos))
    assert reason.endswith('Failure reason: "assertion failed: `*verifications.at(0).security_bits > 50`.".')
    # A second verification does not help: Piltover reads the first.
    l2.double.register_fact_directly(fact_of(bridge_of(snos)), security_bits=96)
    assert "security_bits > 50" in await reverted(l2, update_state_call(snos))


async def test_the_first_settlement_starts_from_the_genesis_state(l2: L2) -> None:
    """Piltover checks the root and block number against its initial state too (root 0, block -1)."""
    for snos, error in (
        (snos_output(prev_block=BEFORE_GENESIS, new_block=0, old_root=0x1), "State: invalid previous root"),
        (snos_output(prev_block=0, new_block=1, old_root=0), "State: invalid block number"),
    ):
        register(l2, snos)
        assert panic(error) in await reverted(l2, update_state_call(snos))
    assert l2.double.update_state_count == 0


async def test_update_state_takes_exactly_the_two_spans(l2: L2) -> None:
    snos = batch(0)
    bridge = bridge_of(snos)
    register(l2, snos)
    exact = update_state_calldata(snos, bridge)
    for tail in ([0], [0, 0], [0, 0, 0]):
        reason = await reverted(l2, core_call("update_state", [*exact, *tail]))
        assert reason.endswith(f"Failure reason: {panic('Input too long for arguments')}."), reason
    assert panic("Failed to deserialize param #2") in await reverted(
        l2, core_call("update_state", exact[: len(snos) + 1])
    )
    cut = [*exact[: len(snos) + 1], len(bridge) + 1, *bridge]
    assert panic("Failed to deserialize param #2") in await reverted(l2, core_call("update_state", cut))
    assert l2.double.update_state_count == 0

    sent = await l2.account(OPERATOR_ACCOUNT).execute_v3(calls=core_call("update_state", exact), resource_bounds=BOUNDS)

    assert not l2.double.transaction(sent.transaction_hash).is_reverted
    assert l2.double.state.block_number == 0


async def test_messages_in_the_output_are_sealed_and_made_consumable(l2: L2) -> None:
    """Messaging as Piltover's component does it: a message to the appchain sent on the L2 is sealed by the
    settlement that carries it (once only); a message to the L2 can be consumed as many times as it came."""
    sender = l2.account(BYSTANDER)
    send = core_call("send_message_to_appchain", [0xC0FFEE, 0x5E1, 2, 7, 8])
    sent = await sender.execute_v3(calls=send, resource_bounds=BOUNDS)
    tx = l2.double.transaction(sent.transaction_hash)
    to_appchain = ToL2(BYSTANDER.address, 0xC0FFEE, 0, 0x5E1, (7, 8))
    expected_hash = message_hash_to_appchain(BYSTANDER.address, 0xC0FFEE, 0x5E1, (7, 8), 0)
    assert [e.keys[1:] for e in tx.events] == [(expected_hash, BYSTANDER.address, 0xC0FFEE)]
    assert l2.double.message_to_appchain_status(expected_hash) is MessageStatus.PENDING
    status_call = core_call("sn_to_appchain_messages", [expected_hash])
    assert await l2.client.call_contract(status_call, block_number="latest") == [3, 0]  # Pending(nonce 0)
    to_l1 = ToL1(0xAB, BYSTANDER.address, (1, 2, 3))
    snos = batch(0, to_l1=[to_l1, to_l1], to_l2=[to_appchain])
    register(l2, snos)

    settled = await l2.account(OPERATOR_ACCOUNT).execute_v3(calls=update_state_call(snos), resource_bounds=BOUNDS)

    assert not l2.double.transaction(settled.transaction_hash).is_reverted
    assert l2.double.message_to_appchain_status(expected_hash) is MessageStatus.SEALED
    assert await l2.client.call_contract(status_call, block_number="latest") == [1]
    to_l1_hash = message_hash_to_starknet(0xAB, BYSTANDER.address, (1, 2, 3))
    assert l2.double.messages_to_starknet(to_l1_hash) == 2
    consume = core_call("consume_message_from_appchain", [0xAB, 3, 1, 2, 3])
    for _ in range(2):
        consumed = await sender.execute_v3(calls=consume, resource_bounds=BOUNDS)
        assert not l2.double.transaction(consumed.transaction_hash).is_reverted
    assert panic("INVALID_MESSAGE_TO_CONSUME") in await reverted(l2, consume, BYSTANDER)
    # The same message to the appchain cannot be sealed twice.
    again = snos_output(prev_block=0, new_block=1, to_l2=[to_appchain])
    register(l2, again)
    assert panic("INVALID_MESSAGE_TO_SEAL") in await reverted(l2, update_state_call(again))


async def test_the_program_info_is_piltovers_and_only_the_operator_sets_it(l2: L2) -> None:
    info = await l2.client.call_contract(core_call("get_program_info", []), block_number="latest")
    assert info == DEVNET_PROGRAM_INFO.to_felts()
    assert info[1:] == [devnet_config_hash(), DEVNET_OS_PROGRAM_HASH, DEVNET_CAIRO_VERIFIER_PROGRAM_HASH]
    registry = await l2.client.call_contract(core_call("get_facts_registry", []), block_number="latest")
    assert registry == [FACT_REGISTRY_ADDRESS]
    changed = [info[0], 0xC0F, info[2], info[3]]
    assert panic("Config: not owner or operator") in await reverted(
        l2, core_call("set_program_info", changed), BYSTANDER
    )

    await l2.account(OPERATOR_ACCOUNT).execute_v3(calls=core_call("set_program_info", changed), resource_bounds=BOUNDS)

    assert l2.double.program_info.snos_config_hash == 0xC0F
    snos = batch(0)
    register(l2, snos)
    assert panic("snos: invalid config hash") in await reverted(l2, update_state_call(snos))
    accepted = batch(0, config_hash=0xC0F)
    register(l2, accepted)
    sent = await l2.account(OPERATOR_ACCOUNT).execute_v3(calls=update_state_call(accepted), resource_bounds=BOUNDS)
    assert not l2.double.transaction(sent.transaction_hash).is_reverted


async def test_only_the_operator_may_update_the_state(l2: L2) -> None:
    snos = batch(0)
    register(l2, snos)

    reason = await reverted(l2, update_state_call(snos), BYSTANDER)

    assert panic("Config: not owner or operator") in reason
    assert l2.double.update_state_count == 0


# -- the fact registry --------------------------------------------------------------------------------


async def test_register_fact_from_a_non_verifier_reverts_and_from_the_verifier_succeeds(l2: L2) -> None:
    fact = 0xFAC7

    for outsider in (OPERATOR_ACCOUNT, BYSTANDER):
        sent = await l2.account(outsider).execute_v3(calls=register_fact_call(fact), resource_bounds=BOUNDS)
        receipt = await l2.client.get_transaction_receipt(sent.transaction_hash)
        assert receipt.execution_status is TransactionExecutionStatus.REVERTED
        assert receipt.revert_reason is not None and "not a verifier" in receipt.revert_reason
    assert await verifications(l2, fact) == [0]

    sent = await l2.account(VERIFIER_ACCOUNT).execute_v3(calls=register_fact_call(fact), resource_bounds=BOUNDS)
    receipt = await l2.client.get_transaction_receipt(sent.transaction_hash)
    assert receipt.execution_status is TransactionExecutionStatus.SUCCEEDED
    vhash = verification_hash(fact, BRIDGE_VERIFIER_CONFIG, SECURITY_BITS)
    assert await verifications(l2, fact) == [1, vhash, SECURITY_BITS, *BRIDGE_VERIFIER_CONFIG.to_felts()]
    assert [e.keys[1:] for e in receipt.events] == [[fact, 0, SECURITY_BITS, *BRIDGE_VERIFIER_CONFIG.to_felts(), vhash]]
    assert l2.double.is_fact_registered(fact)
    # The same verification again is recorded once; another one (other security bits) is added after it.
    for bits in (SECURITY_BITS, 96):
        await l2.account(VERIFIER_ACCOUNT).execute_v3(calls=register_fact_call(fact, bits), resource_bounds=BOUNDS)
    assert [v.security_bits for v in l2.double.verifications_of(fact)] == [SECURITY_BITS, 96]
    by_hash = Call(to_addr=FACT_REGISTRY_ADDRESS, selector=get_selector_from_name("get_verification"), calldata=[vhash])
    assert await l2.client.call_contract(by_hash, block_number="latest") == [
        0,
        fact,
        SECURITY_BITS,
        *BRIDGE_VERIFIER_CONFIG.to_felts(),
    ]


async def test_a_failing_call_rolls_back_the_earlier_calls_of_the_same_transaction(l2: L2) -> None:
    fact = 0xB0B
    unknown = Call(to_addr=FACT_REGISTRY_ADDRESS, selector=get_selector_from_name("no_such_entrypoint"), calldata=[])

    sent = await l2.account(VERIFIER_ACCOUNT).execute_v3(
        calls=[register_fact_call(fact), unknown], resource_bounds=BOUNDS
    )

    tx = l2.double.transaction(sent.transaction_hash)
    assert tx.revert_reason is not None and "not found in contract" in tx.revert_reason
    assert [call.selector for call in tx.calls] == [get_selector_from_name("register_fact"), unknown.selector]
    assert await verifications(l2, fact) == [0]
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
        calldata=[1, CORE_CONTRACT_ADDRESS, get_selector_from_name("get_state"), 0],
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
    snos = batch(0)
    register(l2, snos)
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
    snos = batch(0)

    error = await rpc_error(operator.execute_v3(calls=update_state_call(snos), auto_estimate=True))

    assert error.code == 41
    assert panic("no fact registered") in str(error.data)
    assert l2.double.transactions == ()


async def test_held_blocks_keep_transactions_pre_confirmed_until_seal_block(l2: L2) -> None:
    snos = batch(0)
    register(l2, snos)
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
    assert await get_state(l2, "latest") == [snos[FINAL_ROOT], 0, snos[NEW_HASH]]
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
    assert await verifications(l2, 0xF1) != [0]


async def test_a_positive_block_time_seals_blocks_in_the_background() -> None:
    async for l2 in serve(StarknetL2Double(block_time_s=0.02)):
        await l2.double.start()
        snos = snos_output(prev_block=BEFORE_GENESIS, new_block=4)
        register(l2, snos)

        sent = await l2.account(OPERATOR_ACCOUNT).execute_v3(calls=update_state_call(snos), auto_estimate=True)

        settled = await l2.double.wait_for_settlement(4, timeout_s=5)  # no seal_block(): the producer sealed it
        assert settled.block_hash == snos[NEW_HASH]
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
    call = Call(
        to_addr=FACT_REGISTRY_ADDRESS,
        selector=get_selector_from_name("get_all_verifications_for_fact_hash"),
        calldata=[1, 2],
    )
    error = await rpc_error(l2.client.call_contract(call, block_number="latest"))
    assert error.code == 40
    assert error.data == {"revert_error": f"Execution failed. Failure reason: {panic('Input too long for arguments')}."}


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
