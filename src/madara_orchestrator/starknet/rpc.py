"""Starknet JSON-RPC client over HTTP: the same client talks to Madara and to the devnet sequencer.

Single calls and JSON-RPC batches (≤100 calls per HTTP POST, bounded concurrency, retries with a
limit: SPEC §5.5). Transport failures become ``BackendUnavailable``; JSON-RPC errors ``RpcError``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import httpx

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, RpcError
from madara_orchestrator.domain.redaction import url_origin
from madara_orchestrator.interfaces import RpcCall
from madara_orchestrator.starknet.retried_http import RetriedHttpClient
from madara_orchestrator.starknet.rpc_types import block_id

log = logging.getLogger(__name__)


class UnexpectedRpcResult(InvalidInput, BackendUnavailable):
    """The node answered, but not with what the method returns: a wrong URL or an incompatible node.

    An ``InvalidInput`` for a user at start-up (one line, exit 2); a ``BackendUnavailable`` for the engine,
    which waits and tries again rather than failing a job for what a node said."""

    def __init__(self, url: str, method: str, result: Any, expected: str) -> None:
        """``url`` as shown: ``scheme://host[:port]`` (``StarknetRpcClient.shown_url``)."""
        shown = json.dumps(result, default=repr)
        if len(shown) > 200:
            shown = shown[:200] + "…"
        super().__init__(f"{method} at {url} answered {shown}; expected {expected}. Is this a Starknet node?")
        self.method = method
        self.result = result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_felt(value: Any, what: str = "felt") -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            pass
    raise InvalidInput(f"{what} is not a felt: {value!r}")


_HEX = re.compile(r"^0x[0-9a-fA-F]{1,64}$")


def _is_block(value: Any) -> bool:
    """A block header as every Starknet RPC version returns it (confirmed or pre-confirmed)."""
    return (
        isinstance(value, dict)
        and _is_int(value.get("timestamp"))
        and isinstance(value.get("transactions"), list)
        and ("block_number" not in value or _is_int(value["block_number"]))
        and ("block_hash" not in value or isinstance(value["block_hash"], str))
    )


def _error_code(err: dict[str, Any]) -> int:
    code = err.get("code", 0)
    return code if _is_int(code) else 0


def _is_retryable(exc: BaseException) -> bool:
    """Transport failures, answers that are not JSON, and HTTP 429 or 5xx; not another refusal."""
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError | ValueError)


class StarknetRpcClient(RetriedHttpClient):
    """Implements ``SequencerRpc``; ``batch`` serves squashing and compression lookups."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        attempts: int = 3,
        retry_pause_s: float = 2.0,
        max_batch_size: int = 100,
        max_concurrent_batches: int = 10,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.shown_url = url_origin(self.url)
        """The URL as messages name it: without credentials, path or query (they may hold a key)."""
        self._timeout_s = timeout_s
        self._max_batch_size = max_batch_size
        self._batch_slots = asyncio.Semaphore(max_concurrent_batches)
        self._ids = itertools.count(1)
        super().__init__(timeout_s=timeout_s, attempts=attempts, retry_pause_s=retry_pause_s, client=client)

    async def _post(self, payload: Any) -> Any:
        async def attempt() -> Any:
            response = await self._client.post(self.url, json=payload)
            if response.status_code == 429 or response.status_code >= 500:
                raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
            response.raise_for_status()
            return response.json()

        try:
            return await self.retried(
                attempt,
                is_retryable=_is_retryable,
                service="Starknet RPC",
                subject=self.shown_url,
                log=log,
                warning="RPC %s attempt %d/%d failed: %s",
                unavailable=self._unavailable,
            )
        except (httpx.TransportError, httpx.HTTPStatusError, ValueError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, last: BaseException) -> BackendUnavailable:
        tries = f"{self._attempts} attempt{'s' if self._attempts > 1 else ''}"
        return BackendUnavailable(f"Starknet RPC {self.shown_url} failed after {tries}: {self.cause(last)}")

    async def call(self, method: str, params: Any = ()) -> Any:
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        reply = await self._post(request)
        expected = 'a JSON-RPC reply, {"jsonrpc": "2.0", "id": ..., "result": ...}'
        if not isinstance(reply, dict):
            raise UnexpectedRpcResult(self.shown_url, method, reply, expected)
        if "error" in reply and reply["error"] is not None:
            err = reply["error"]
            if not isinstance(err, dict):
                raise UnexpectedRpcResult(
                    self.shown_url, method, reply, 'an error object {"code": ..., "message": ...}'
                )
            raise RpcError(_error_code(err), str(err.get("message", "")), err.get("data"))
        if "result" not in reply:
            raise UnexpectedRpcResult(self.shown_url, method, reply, expected)
        return reply["result"]

    async def batch(self, calls: Sequence[RpcCall]) -> list[Any | RpcError]:
        """Run many calls; each result is the value or the ``RpcError`` of that call, in order."""
        chunks = [calls[i : i + self._max_batch_size] for i in range(0, len(calls), self._max_batch_size)]

        async def run_chunk(chunk: Sequence[RpcCall]) -> list[Any | RpcError]:
            payload = [{"jsonrpc": "2.0", "id": i, "method": c.method, "params": c.params} for i, c in enumerate(chunk)]
            async with self._batch_slots:
                reply = await self._post(payload)
            if not isinstance(reply, list):
                raise BackendUnavailable(f"Starknet RPC {self.shown_url}: batch reply is not a list: {reply!r:.200}")
            by_id: dict[int, Any | RpcError] = {}
            for item in reply:
                err = item.get("error") if isinstance(item, dict) else None
                if not isinstance(item, dict) or not _is_int(item.get("id")) or (err and not isinstance(err, dict)):
                    raise BackendUnavailable(f"Starknet RPC {self.shown_url}: malformed batch item {item!r:.200}")
                by_id[item["id"]] = (
                    RpcError(_error_code(err), str(err.get("message", "")), err.get("data"))
                    if err
                    else item.get("result")
                )
            missing = [i for i in range(len(chunk)) if i not in by_id]
            if missing:
                raise BackendUnavailable(f"Starknet RPC {self.shown_url}: batch reply misses ids {missing[:5]}")
            return [by_id[i] for i in range(len(chunk))]

        results = await asyncio.gather(*(run_chunk(c) for c in chunks))
        return [r for chunk in results for r in chunk]

    # -- SequencerRpc ---------------------------------------------------------------------------

    async def block_number(self) -> int:
        result = await self.call("starknet_blockNumber", [])
        if not _is_int(result) or result < 0:
            raise UnexpectedRpcResult(self.shown_url, "starknet_blockNumber", result, "a non-negative integer")
        return int(result)

    async def chain_id(self) -> str:
        result = await self.call("starknet_chainId", [])
        if not isinstance(result, str) or not _HEX.match(result):
            raise UnexpectedRpcResult(
                self.shown_url, "starknet_chainId", result, 'a hex string such as "0x534e5f5345504f4c4941" (SN_SEPOLIA)'
            )
        return result

    async def spec_version(self) -> str:
        result = await self.call("starknet_specVersion", [])
        if not isinstance(result, str):
            raise UnexpectedRpcResult(
                self.shown_url, "starknet_specVersion", result, 'a version string such as "0.8.1"'
            )
        return result

    async def get_block_with_tx_hashes(self, block_number: int) -> dict[str, Any]:
        result = await self.call("starknet_getBlockWithTxHashes", {"block_id": block_id(block_number)})
        if not _is_block(result):
            raise UnexpectedRpcResult(
                self.shown_url,
                f"starknet_getBlockWithTxHashes (block {block_number})",
                result,
                "a block: an object with an integer timestamp and a list of transactions",
            )
        assert isinstance(result, dict)
        return result

    async def get_state_update(self, block_number: int) -> dict[str, Any]:
        result = await self.call("starknet_getStateUpdate", {"block_id": block_id(block_number)})
        if not isinstance(result, dict):
            raise BackendUnavailable(f"Starknet RPC {self.shown_url}: state update {block_number} is not an object")
        return result

    async def get_nonce(self, block_number: int, address: int) -> int:
        result = await self.call(
            "starknet_getNonce", {"block_id": block_id(block_number), "contract_address": hex(address)}
        )
        return parse_felt(result, "nonce")

    async def get_storage_at(self, address: int, key: int, block_number: int) -> int:
        result = await self.call("starknet_getStorageAt", [hex(address), hex(key), block_id(block_number)])
        return parse_felt(result, "storage value")

    async def get_class_hash_at(self, block_number: int, address: int) -> int:
        result = await self.call("starknet_getClassHashAt", [block_id(block_number), hex(address)])
        return parse_felt(result, "class hash")
