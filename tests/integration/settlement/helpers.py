"""Helpers shared by the settlement integration tests (kept out of conftest so the worker can import them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_hash.auto import keccak

from madara_orchestrator.backends.tx_store import SqliteTxStore
from madara_orchestrator.settlement.eth_rpc import EthRpc, EthRpcError
from madara_orchestrator.settlement.ethereum import EthereumSettlementClient, EthereumSettlementConfig
from tests.helpers.settlement_clients import ethereum_client

LOG_STATE_UPDATE_TOPIC = "0x" + keccak(b"LogStateUpdate(uint256,int256,uint256)").hex()


def make_client(
    url: str,
    core_contract: str,
    db_path: Path,
    private_key: str,
    *,
    disable_peerdas: bool = True,
    confirmations: int = 0,
    timeout_s: float = 20.0,
    poll_s: float = 0.05,
    max_fee_bumps: int = 2,
    max_fee_wei: int = 10**18,
    monotonic: Callable[[], float] | None = None,
) -> EthereumSettlementClient:
    """A client with test timings; ``monotonic`` replaces the transaction manager's clock."""
    config = EthereumSettlementConfig(
        rpc_url=url,
        private_key=private_key,
        core_contract_address=core_contract,
        disable_peerdas=disable_peerdas,
        confirmations=confirmations,
        tx_confirmation_timeout_s=timeout_s,
        finality_retry_wait_s=poll_s,
        max_fee_bumps=max_fee_bumps,
        l2_state_update_max_fee_wei=max_fee_wei,
    )
    sender: dict[str, Any] = {} if monotonic is None else {"monotonic": monotonic}
    return ethereum_client(config, SqliteTxStore(db_path), **sender)


class SteppedClock:
    """Monotonic time that a test can move forward, to end a confirmation window exactly when it wants."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def state_updates(rpc: EthRpc, core_contract: str) -> list[tuple[int, int, int, str]]:
    """Every LogStateUpdate of the core contract: (globalRoot, blockNumber, blockHash, tx hash)."""
    logs = await rpc.request(
        "eth_getLogs",
        [{"address": core_contract, "fromBlock": "0x0", "toBlock": "latest", "topics": [LOG_STATE_UPDATE_TOPIC]}],
    )
    out = []
    for entry in logs:
        root, number, bhash = abi_decode(["uint256", "int256", "uint256"], bytes.fromhex(entry["data"][2:]))
        out.append((root, number, bhash, entry["transactionHash"]))
    return out


async def transaction(rpc: EthRpc, tx_hash: str) -> dict[str, Any]:
    """A mined transaction as the node returns it. anvil looks in its pool first, and removes a mined
    transaction from it just after storing the block: for a moment after its receipt exists, it may still
    answer with the pending form (no ``blockNumber``); asked again, with the mined one."""
    deadline = time.monotonic() + 10
    while True:
        tx = await rpc.request("eth_getTransactionByHash", [tx_hash])
        assert isinstance(tx, dict), f"no transaction {tx_hash}"
        if tx.get("blockNumber") is not None:
            return tx
        assert time.monotonic() < deadline, f"transaction {tx_hash} still pending 10 s after its receipt"
        await asyncio.sleep(0.02)  # anvil's HTTP API has nothing to wait on


async def operator_transactions(rpc: EthRpc, sender: str) -> list[dict[str, Any]]:
    """All mined transactions sent by ``sender``, in block order."""
    latest = await rpc.block_number()
    out = []
    for number in range(latest + 1):
        block = await rpc.request("eth_getBlockByNumber", [hex(number), True])
        for tx in block["transactions"]:
            if tx["from"].lower() == sender.lower():
                out.append(tx)
    return out


async def revert_reason(rpc: EthRpc, tx: dict[str, Any]) -> str:
    """Replay a mined transaction with eth_call (blob hashes included) and return its revert string."""
    call = {
        "from": tx["from"],
        "to": tx["to"],
        "data": tx["input"],
        "gas": tx["gas"],
    }
    if tx.get("blobVersionedHashes"):
        call["blobVersionedHashes"] = tx["blobVersionedHashes"]
        call["maxFeePerBlobGas"] = tx["maxFeePerBlobGas"]
    try:
        await rpc.request("eth_call", [call, hex(int(tx["blockNumber"], 16) - 1)])
    except EthRpcError as exc:
        data = exc.data if isinstance(exc.data, str) else ""
        if data.startswith("0x08c379a0"):
            (reason,) = abi_decode(["string"], bytes.fromhex(data[10:]))
            return str(reason)
        return exc.rpc_message
    return ""
