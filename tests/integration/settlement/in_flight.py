"""Several settlements in flight on anvil, shared by the tests and their kill -9 worker: three batches sent at
once (each after the one before it), a miner that mines while they are pending, and the checks that each
batch settled once, in order, with no nonce gap."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.settlement.eth_rpc import EthRpc
from madara_orchestrator.settlement.ethereum import (
    EthereumSettlementClient,
    EthereumSettlementConfig,
    EthereumSettlementResult,
)
from tests.helpers.settlement_clients import ethereum_client
from tests.integration.settlement.helpers import operator_transactions, state_updates

BATCHES = 3


def key(index: int) -> str:
    return f"StateTransition-{index + 1}"


def after(index: int) -> str | None:
    return key(index - 1) if index else None


def in_flight_client(
    url: str,
    core: str,
    db: Path,
    private_key: str,
    *,
    confirmations: int = 0,
    timeout_s: float = 30.0,
    crash_hook: Callable[[str], None] | None = None,
    monotonic: Callable[[], float] | None = None,
) -> EthereumSettlementClient:
    config = EthereumSettlementConfig(
        rpc_url=url,
        private_key=private_key,
        core_contract_address=core,
        disable_peerdas=True,
        confirmations=confirmations,
        tx_confirmation_timeout_s=timeout_s,
        finality_retry_wait_s=0.05,
        l2_state_update_max_fee_wei=10**18,
    )
    extra: dict[str, Any] = {} if monotonic is None else {"monotonic": monotonic}
    return ethereum_client(config, SqliteTxStore(db), crash_hook=crash_hook, **extra)


async def settle(
    client: EthereumSettlementClient, program_output: Sequence[int], blobs: Sequence[bytes], index: int
) -> EthereumSettlementResult:
    return await client.update_state_with_blobs(
        program_output, blobs, idempotency_key=key(index), after_key=after(index)
    )


async def settle_all(
    client: EthereumSettlementClient, batches: Sequence[tuple[Sequence[int], Sequence[bytes]]]
) -> list[EthereumSettlementResult]:
    """The batches sent at once, each as its own task (as the StateTransition jobs are); the first error
    (a crash) cancels the others, like the end of a process."""
    tasks = [asyncio.create_task(settle(client, po, blobs, i)) for i, (po, blobs) in enumerate(batches)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [t.result() for t in tasks]


@contextlib.asynccontextmanager
async def mining(rpc: EthRpc, every_s: float = 0.3) -> AsyncIterator[None]:
    """Mine a block every ``every_s`` (automine off: several transactions wait in the pool together)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(every_s)
            await rpc.request("evm_mine")

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def check_settled_once_in_order(rpc: EthRpc, core: str, sender: str, first_nonce: int) -> list[dict[str, Any]]:
    """Each batch settled once, in order (one LogStateUpdate per block 0, 1, 2); the operator's
    transactions since ``first_nonce`` have consecutive nonces (no gap). Returns them."""
    assert [u[1] for u in await state_updates(rpc, core)] == list(range(BATCHES))
    sent = [t for t in await operator_transactions(rpc, sender) if int(t["nonce"], 16) >= first_nonce]
    nonces = [int(t["nonce"], 16) for t in sent]
    assert nonces == list(range(first_nonce, first_nonce + len(sent))), f"nonce gap or disorder: {nonces}"
    assert await rpc.transaction_count(sender, "latest") == first_nonce + len(sent)
    return sent
