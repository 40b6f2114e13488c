"""A devnet sequencer: produces Starknet blocks with realistic state diffs and serves them over JSON-RPC.

It stands in for Madara (which cannot run here) and speaks the real wire protocol, so the orchestrator
reads it with the same client it uses against Madara. Blocks carry token transfers (fee-token balance
storage writes and nonce bumps), account deployments and class declarations. Roots and hashes are
keccak-derived felts, not Patricia-tree roots: the orchestrator never recomputes them.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

from Crypto.Hash import keccak
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FELT_PRIME = 2**251 + 17 * 2**192 + 1
STRK_TOKEN = 0x04718F5A0FC34CC1AF16A1CDEE98FFB20C31F5CD61D6AB07201858F4287C938D
ETH_TOKEN = 0x049D36570D4E46F48E99674BD3FCC84644DDD6B96F7C741B1562B82F9E004DC7
ACCOUNT_CLASS = 0x05B4B537EAA2399E3AA99C4E2E0208EBD6C71BC1467938CD52C798C601E43564
STARKNET_VERSION = "0.14.0"
CHAIN_ID = "MADARA_DEVNET"


def felt_hash(*parts: int | str | bytes) -> int:
    h = keccak.new(digest_bits=256)
    for part in parts:
        if isinstance(part, int):
            h.update(part.to_bytes(32, "big"))
        elif isinstance(part, str):
            h.update(part.encode())
        else:
            h.update(part)
    return int.from_bytes(h.digest(), "big") % FELT_PRIME


def balance_key(owner: int) -> int:
    return felt_hash("ERC20_balances", owner) % 2**250


@dataclass(slots=True)
class Block:
    number: int
    block_hash: int
    parent_hash: int
    old_root: int
    new_root: int
    timestamp: int
    tx_hashes: list[int]
    state_diff: dict[str, Any]


@dataclass(slots=True)
class History:
    """Values over blocks: ``at(b)`` is the value after block b."""

    blocks: list[int] = field(default_factory=list)
    values: list[int] = field(default_factory=list)

    def set(self, block: int, value: int) -> None:
        self.blocks.append(block)
        self.values.append(value)

    def at(self, block: int) -> int | None:
        i = bisect.bisect_right(self.blocks, block)
        return self.values[i - 1] if i else None


class DevnetChain:
    def __init__(self, *, seed: int = 7, accounts: int = 8, timestamp: int = 1_700_000_000) -> None:
        self._rng = random.Random(seed)
        self.blocks: list[Block] = []
        self.storage: dict[tuple[int, int], History] = {}
        self.nonces: dict[int, History] = {}
        self.class_hashes: dict[int, History] = {}
        self._timestamp = timestamp
        self._accounts = [felt_hash("account", i) % 2**250 for i in range(accounts)]
        self._balances: dict[int, int] = {}
        self._genesis()

    @property
    def head(self) -> int:
        return len(self.blocks) - 1

    def _genesis(self) -> None:
        storage = {STRK_TOKEN: {}, ETH_TOKEN: {}}  # type: dict[int, dict[int, int]]
        for account in self._accounts:
            self._balances[account] = 10**24
            storage[STRK_TOKEN][balance_key(account)] = 10**24
        deployed = {STRK_TOKEN: felt_hash("erc20 class"), ETH_TOKEN: felt_hash("erc20 class")}
        deployed.update({a: ACCOUNT_CLASS for a in self._accounts})
        declared = {ACCOUNT_CLASS: felt_hash("compiled", ACCOUNT_CLASS), felt_hash("erc20 class"): felt_hash("c20")}
        self._append(storage, {}, deployed, declared, tx_count=len(self._accounts) + 2)

    def produce_block(self) -> Block:
        rng = self._rng
        storage: dict[int, dict[int, int]] = {}
        nonces: dict[int, int] = {}
        deployed: dict[int, int] = {}
        declared: dict[int, int] = {}
        n_tx = rng.randint(1, 6)
        for _ in range(n_tx):
            funded = [a for a in self._accounts if self._balances.get(a, 0) > 0]
            sender = rng.choice(funded)
            receiver = rng.choice([a for a in self._accounts if a != sender])
            amount = rng.randint(1, min(10**18, self._balances[sender]))
            self._balances[sender] -= amount
            self._balances[receiver] = self._balances.get(receiver, 0) + amount
            token = storage.setdefault(STRK_TOKEN, {})
            token[balance_key(sender)] = self._balances[sender]
            token[balance_key(receiver)] = self._balances[receiver]
            current = nonces.get(sender)
            if current is None:
                history = self.nonces.get(sender)
                current = (history.at(self.head) if history else None) or 0
            nonces[sender] = current + 1
        number = len(self.blocks)
        if rng.random() < 0.15:
            account = felt_hash("account", number, rng.random().hex()) % 2**250
            deployed[account] = ACCOUNT_CLASS
            storage.setdefault(account, {})[felt_hash("Account_public_key") % 2**250] = felt_hash("pk", account)
            self._accounts.append(account)
            self._balances[account] = 0
        if rng.random() < 0.1:
            class_hash = felt_hash("class", number)
            declared[class_hash] = felt_hash("compiled", class_hash)
        return self._append(storage, nonces, deployed, declared, tx_count=n_tx)

    def _append(
        self,
        storage: dict[int, dict[int, int]],
        nonces: dict[int, int],
        deployed: dict[int, int],
        declared: dict[int, int],
        *,
        tx_count: int,
    ) -> Block:
        number = len(self.blocks)
        parent = self.blocks[-1] if self.blocks else None
        old_root = parent.new_root if parent else 0
        for address, entries in storage.items():
            for key, value in entries.items():
                self.storage.setdefault((address, key), History()).set(number, value)
        for address, nonce in nonces.items():
            self.nonces.setdefault(address, History()).set(number, nonce)
        for address, class_hash in deployed.items():
            self.class_hashes.setdefault(address, History()).set(number, class_hash)
        state_diff = {
            "storage_diffs": [
                {
                    "address": hex(address),
                    "storage_entries": [{"key": hex(k), "value": hex(v)} for k, v in sorted(entries.items())],
                }
                for address, entries in sorted(storage.items())
            ],
            "deprecated_declared_classes": [],
            "declared_classes": [
                {"class_hash": hex(c), "compiled_class_hash": hex(cc)} for c, cc in sorted(declared.items())
            ],
            "deployed_contracts": [{"address": hex(a), "class_hash": hex(c)} for a, c in sorted(deployed.items())],
            "replaced_classes": [],
            "nonces": [{"contract_address": hex(a), "nonce": hex(n)} for a, n in sorted(nonces.items())],
        }
        new_root = felt_hash(old_root, json.dumps(state_diff, sort_keys=True))
        parent_hash = parent.block_hash if parent else 0
        block = Block(
            number=number,
            block_hash=felt_hash("block", number, parent_hash, new_root),
            parent_hash=parent_hash,
            old_root=old_root,
            new_root=new_root,
            timestamp=self._timestamp + number,
            tx_hashes=[felt_hash("tx", number, i) for i in range(tx_count)],
            state_diff=state_diff,
        )
        self.blocks.append(block)
        return block


class RpcFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


BLOCK_NOT_FOUND = RpcFailure(24, "Block not found")


class DevnetSequencer:
    """The chain plus its JSON-RPC endpoint and a block producer task."""

    def __init__(self, chain: DevnetChain | None = None, *, block_time_s: float = 1.0) -> None:
        self.chain = chain or DevnetChain()
        self.block_time_s = block_time_s
        self._producer: asyncio.Task[None] | None = None
        self.app = Starlette(routes=[Route("/", self._endpoint, methods=["POST"])])
        self.requests = 0

    def start_producing(self, *, max_blocks: int | None = None) -> None:
        async def produce() -> None:
            while max_blocks is None or self.chain.head + 1 < max_blocks:
                await asyncio.sleep(self.block_time_s)
                self.chain.produce_block()

        self._producer = asyncio.create_task(produce(), name="devnet-block-producer")

    async def stop_producing(self) -> None:
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer

    async def _endpoint(self, request: Request) -> Response:
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
        if isinstance(payload, list):
            return JSONResponse([self._dispatch(item) for item in payload])
        return JSONResponse(self._dispatch(payload))

    def _dispatch(self, request: Any) -> dict[str, Any]:
        self.requests += 1
        request_id = request.get("id") if isinstance(request, dict) else None
        try:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise RpcFailure(-32600, "Invalid request")
            result = self.call(request["method"], request.get("params", []))
            return {"jsonrpc": "2.0", "id": request_id, "result": result}
        except RpcFailure as failure:
            return {"jsonrpc": "2.0", "id": request_id, "error": {"code": failure.code, "message": failure.message}}

    # -- methods ----------------------------------------------------------------------------------

    def _block_number(self, block_id: Any) -> int:
        chain = self.chain
        if block_id in ("latest", "l1_accepted"):
            return chain.head
        if block_id in ("pending", "pre_confirmed"):
            raise BLOCK_NOT_FOUND
        if isinstance(block_id, dict):
            if "block_number" in block_id:
                number = int(block_id["block_number"])
                if 0 <= number <= chain.head:
                    return number
                raise BLOCK_NOT_FOUND
            if "block_hash" in block_id:
                wanted = int(str(block_id["block_hash"]), 16)
                for block in chain.blocks:
                    if block.block_hash == wanted:
                        return block.number
                raise BLOCK_NOT_FOUND
        raise RpcFailure(-32602, f"Invalid block id {block_id!r}")

    @staticmethod
    def _param(params: Any, name: str, position: int) -> Any:
        if isinstance(params, dict):
            if name in params:
                return params[name]
        elif isinstance(params, list) and len(params) > position:
            return params[position]
        raise RpcFailure(-32602, f"Invalid params: missing {name}")

    def call(self, method: str, params: Any) -> Any:
        chain = self.chain
        if method == "starknet_blockNumber":
            return chain.head
        if method == "starknet_chainId":
            return "0x" + CHAIN_ID.encode().hex()
        if method == "starknet_specVersion":
            return "0.8.1"
        if method == "starknet_getBlockWithTxHashes":
            block = chain.blocks[self._block_number(self._param(params, "block_id", 0))]
            return {
                "status": "ACCEPTED_ON_L2",
                "block_hash": hex(block.block_hash),
                "parent_hash": hex(block.parent_hash),
                "block_number": block.number,
                "new_root": hex(block.new_root),
                "timestamp": block.timestamp,
                "sequencer_address": "0x1",
                "l1_da_mode": "BLOB",
                "starknet_version": STARKNET_VERSION,
                "transactions": [hex(t) for t in block.tx_hashes],
            }
        if method == "starknet_getStateUpdate":
            block = chain.blocks[self._block_number(self._param(params, "block_id", 0))]
            return {
                "block_hash": hex(block.block_hash),
                "old_root": hex(block.old_root),
                "new_root": hex(block.new_root),
                "state_diff": block.state_diff,
            }
        if method == "starknet_getNonce":
            number = self._block_number(self._param(params, "block_id", 0))
            address = int(str(self._param(params, "contract_address", 1)), 16)
            if chain.class_hashes.get(address) is None or chain.class_hashes[address].at(number) is None:
                raise RpcFailure(20, "Contract not found")
            history = chain.nonces.get(address)
            return hex((history.at(number) if history else None) or 0)
        if method == "starknet_getStorageAt":
            address = int(str(self._param(params, "contract_address", 0)), 16)
            key = int(str(self._param(params, "key", 1)), 16)
            number = self._block_number(self._param(params, "block_id", 2))
            history = chain.storage.get((address, key))
            return hex((history.at(number) if history else None) or 0)
        if method == "starknet_getClassHashAt":
            number = self._block_number(self._param(params, "block_id", 0))
            address = int(str(self._param(params, "contract_address", 1)), 16)
            history = chain.class_hashes.get(address)
            value = history.at(number) if history else None
            if value is None:
                raise RpcFailure(20, "Contract not found")
            return hex(value)
        raise RpcFailure(-32601, f"Method not found: {method}")
