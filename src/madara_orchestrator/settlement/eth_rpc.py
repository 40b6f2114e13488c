"""The few Ethereum JSON-RPC calls the settlement path makes, over httpx, each with its own timeout.

Like op-service txmgr's ``ETHBackend``: only the calls the transaction manager and the client need, so a
fake backend can stand in for it in unit tests.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import httpx

from madara_orchestrator.domain.errors import BackendUnavailable, OrchestratorError
from madara_orchestrator.domain.redaction import cut_urls
from madara_orchestrator.settlement.durable import redact_url

log = logging.getLogger(__name__)


class EthRpcError(OrchestratorError):
    """The node answered with a JSON-RPC error (the request reached it and was refused)."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data
        super().__init__(f"{method} failed: error code {code}: {message}")


def _hex_int(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise BackendUnavailable(f"unexpected {what} from the Ethereum node: {value!r:.80}")
    return int(value, 16)


class EthRpc:
    """JSON-RPC over HTTP. Transport failures → BackendUnavailable; node errors → EthRpcError."""

    def __init__(self, url: str, *, timeout_s: float = 30.0, client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s)
        self._owns_client = client is None
        self._ids = itertools.count(1)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def request(self, method: str, params: list[Any] | None = None) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self._client.post(self.url, json=payload)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"Ethereum RPC {method} to {redact_url(self.url)} failed: {type(exc).__name__}: {cut_urls(str(exc))}"
            ) from exc
        if resp.status_code != 200:
            raise BackendUnavailable(
                f"Ethereum RPC {method} to {redact_url(self.url)} answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        try:
            body = resp.json()
        except ValueError as exc:
            raise BackendUnavailable(f"Ethereum RPC {method} answered non-JSON: {resp.text[:200]}") from exc
        if body.get("error"):
            err = body["error"]
            raise EthRpcError(method, int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return body.get("result")

    async def chain_id(self) -> int:
        return _hex_int(await self.request("eth_chainId"), "chain id")

    async def block_number(self) -> int:
        return _hex_int(await self.request("eth_blockNumber"), "block number")

    async def latest_block(self) -> dict[str, Any]:
        block = await self.request("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict):
            raise BackendUnavailable("the Ethereum node has no latest block")
        return block

    async def blob_base_fee(self) -> int:
        return _hex_int(await self.request("eth_blobBaseFee"), "blob base fee")

    async def transaction_count(self, address: str, block: str = "latest") -> int:
        return _hex_int(await self.request("eth_getTransactionCount", [address, block]), "nonce")

    async def send_raw_transaction(self, raw: bytes) -> str:
        result = await self.request("eth_sendRawTransaction", ["0x" + raw.hex()])
        return str(result)

    async def transaction_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        receipt = await self.request("eth_getTransactionReceipt", [tx_hash])
        return receipt if isinstance(receipt, dict) else None

    async def call(self, to: str, data: bytes, block: str = "latest") -> bytes:
        result = await self.request("eth_call", [{"to": to, "data": "0x" + data.hex()}, block])
        return bytes.fromhex(str(result).removeprefix("0x"))

    async def code(self, address: str, block: str = "latest") -> bytes:
        """``eth_getCode``: empty when no contract is at ``address``."""
        result = await self.request("eth_getCode", [address, block])
        return bytes.fromhex(str(result or "0x").removeprefix("0x"))

    async def estimate_gas(self, tx: dict[str, Any]) -> int:
        return _hex_int(await self.request("eth_estimateGas", [tx]), "gas estimate")

    async def max_priority_fee(self) -> int:
        return _hex_int(await self.request("eth_maxPriorityFeePerGas"), "priority fee")
