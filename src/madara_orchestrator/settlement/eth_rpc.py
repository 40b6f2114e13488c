"""The settlement path's JSON-RPC over httpx (``JsonRpc``: one attempt per call, each with its own
timeout; the Starknet settlement client uses it too) and the few Ethereum calls it makes (``EthRpc``).

Like op-service txmgr's ``ETHBackend``: only the calls the transaction manager and the client need, so a
fake backend can stand in for it in unit tests.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import httpx

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, OrchestratorError
from madara_orchestrator.domain.posting import FeeHistory
from madara_orchestrator.domain.redaction import cut_urls
from madara_orchestrator.settlement.durable import redact_url
from madara_orchestrator.tls import default_tls

log = logging.getLogger(__name__)


class JsonRpcError(OrchestratorError):
    """The node answered with a JSON-RPC error (the request reached it and was refused)."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data
        super().__init__(self._text())

    def _text(self) -> str:
        return f"{self.method} failed: error code {self.code}: {self.rpc_message}"


class EthRpcError(JsonRpcError):
    """An Ethereum node's JSON-RPC error."""


class RateLimited(BackendUnavailable):
    """The node refused the request for its rate limit: a condition to wait out."""


RATE_LIMITED_CODES = (-32005, 429)


def _hex_int(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise BackendUnavailable(f"unexpected {what} from the Ethereum node: {value!r:.80}")
    return int(value, 16)


def parse_fee_history(result: Any) -> FeeHistory:
    """An ``eth_feeHistory`` answer. Blob fields are required: a settlement deadline needs a post-Cancun L1."""
    if not isinstance(result, dict):
        raise BackendUnavailable(f"unexpected eth_feeHistory answer from the Ethereum node: {result!r:.80}")
    if result.get("baseFeePerBlobGas") is None or result.get("blobGasUsedRatio") is None:
        raise BackendUnavailable(
            "the Ethereum node's eth_feeHistory has no blob fees (baseFeePerBlobGas): the L1 must be post-Cancun; "
            "or set --settlement-deadline-seconds 0 to send settlements at once"
        )
    try:
        return FeeHistory(
            oldest_block=_hex_int(result.get("oldestBlock"), "eth_feeHistory oldestBlock"),
            base_fees=tuple(_hex_int(v, "eth_feeHistory base fee") for v in result.get("baseFeePerGas") or ()),
            blob_base_fees=tuple(_hex_int(v, "eth_feeHistory blob base fee") for v in result["baseFeePerBlobGas"]),
            gas_used_ratio=tuple(float(r) for r in result.get("gasUsedRatio") or ()),
            blob_gas_used_ratio=tuple(float(r) for r in result["blobGasUsedRatio"]),
        )
    except (InvalidInput, TypeError, ValueError) as exc:
        raise BackendUnavailable(f"unexpected eth_feeHistory answer from the Ethereum node: {exc}") from exc


class JsonRpc:
    """JSON-RPC over HTTP, one attempt per call, each in its own timeout. Transport failures →
    ``BackendUnavailable``; node errors → ``error`` (``EthRpcError``). With ``rate_limits``, HTTP 429 and
    the nodes' rate-limit errors → ``RateLimited`` (an outage to wait out)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        client: httpx.AsyncClient | None = None,
        label: str = "Ethereum",
        error: type[JsonRpcError] = EthRpcError,
        rate_limits: bool = False,
    ) -> None:
        self.url = url
        self.where = redact_url(url)
        self.timeout_s = timeout_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s, verify=default_tls())
        self._owns_client = client is None
        self._ids = itertools.count(1)
        self._label = label
        self._error = error
        self._rate_limits = rate_limits

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def request(self, method: str, params: Any = None) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        rpc = f"{self._label} RPC {method}"
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self._client.post(self.url, json=payload)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"{rpc} to {self.where} failed: {type(exc).__name__}: {cut_urls(str(exc))}"
            ) from exc
        if resp.status_code == 429 and self._rate_limits:
            raise RateLimited(
                f"Request rate limited: the {self._label} node at {self.where} refused {method} (HTTP 429)"
            )
        if resp.status_code != 200:
            raise BackendUnavailable(f"{rpc} to {self.where} answered HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise BackendUnavailable(f"{rpc} at {self.where} answered non-JSON: {resp.text[:200]}") from exc
        if not isinstance(body, dict):
            raise BackendUnavailable(f"{rpc} at {self.where} answered {body!r:.200}")
        err = body.get("error")
        if err is not None:
            raise self._node_error(method, err)
        if "result" not in body:
            raise BackendUnavailable(f"{rpc} at {self.where} answered without a result: {body!r:.200}")
        return body["result"]

    def _node_error(self, method: str, err: Any) -> Exception:
        if not isinstance(err, dict):
            return BackendUnavailable(f"{self._label} RPC {method} at {self.where} answered error {err!r:.200}")
        code = err.get("code", 0)
        code = code if isinstance(code, int) and not isinstance(code, bool) else 0
        message = str(err.get("message", ""))
        lowered = message.lower()
        if self._rate_limits and (
            code in RATE_LIMITED_CODES or "rate limit" in lowered or "too many requests" in lowered
        ):
            return RateLimited(
                f"Request rate limited: the {self._label} node at {self.where} refused {method}: {message}"
            )
        return self._error(method, code, message, err.get("data"))


class EthRpc(JsonRpc):
    """The Ethereum calls over ``JsonRpc``."""

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

    async def fee_history(self, block_count: int, newest_block: int | str = "latest") -> FeeHistory:
        """``eth_feeHistory`` (no reward percentiles): base fees and blob base fees per block, then the next
        block's; a node may answer fewer blocks than asked (most cap a call at 1024)."""
        newest = hex(newest_block) if isinstance(newest_block, int) else newest_block
        return parse_fee_history(await self.request("eth_feeHistory", [hex(block_count), newest, []]))

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
