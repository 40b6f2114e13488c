"""A devnet sequencer: produces Starknet blocks with realistic state diffs and serves them over JSON-RPC.

It stands in for Madara (which cannot run here) and speaks the real wire protocol, so the orchestrator
reads it with the same client it uses against Madara. Each block has ``tx_per_block`` transactions:
token transfers (balance writes, a fee to the sequencer, nonce bumps) that also call an app contract
writing fresh storage slots with random values (mints, new positions), plus now and then an account
deployment or a class declaration. So the state diff keeps growing across blocks, as on a busy chain.
Like the Starknet OS from 0.13.4, every block gives an alias (contract 0x2) to each new address and
storage key ≥ 0x80 it touches. Blocks carry bouncer weights, served as Madara's feeder gateway does.
Roots and hashes are keccak-derived felts, not Patricia-tree roots: the orchestrator never recomputes them.
Headers record the L1 prices the sequencer saw (``l1_gas_price``, ``l1_data_gas_price``, as Madara's do from
its L1 gas price oracle): a deterministic walk, one EIP-1559 step (at most ±12.5 %) every ``L1_BLOCK_EVERY``
blocks (12 s of L1 at the devnet's one second a block), bounded to ``L1_BASE_FEE_RANGE`` and
``L1_BLOB_BASE_FEE_RANGE``.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
from dataclasses import dataclass, field
from typing import Any

from Crypto.Hash import keccak
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from madara_orchestrator.devnet.jsonrpc import accepted_block_header, jsonrpc_response
from madara_orchestrator.devnet.tasks import cancel_and_wait
from madara_orchestrator.domain.batches import BouncerWeights
from madara_orchestrator.starknet.compression import ALIAS_CONTRACT_ADDRESS as ALIAS_CONTRACT
from madara_orchestrator.starknet.compression import MIN_VALUE_FOR_ALIAS
from madara_orchestrator.starknet.felt import STARKNET_PRIME as FELT_PRIME

STRK_TOKEN = 0x04718F5A0FC34CC1AF16A1CDEE98FFB20C31F5CD61D6AB07201858F4287C938D
ETH_TOKEN = 0x049D36570D4E46F48E99674BD3FCC84644DDD6B96F7C741B1562B82F9E004DC7
ACCOUNT_CLASS = 0x05B4B537EAA2399E3AA99C4E2E0208EBD6C71BC1467938CD52C798C601E43564
STARKNET_VERSION = "0.14.0"
CHAIN_ID = "MADARA_DEVNET"

ALIAS_COUNTER_KEY = 0
FIRST_ALIAS = 0x80

DEFAULT_TX_PER_BLOCK = 100
"""With the default limits (6 blobs), an aggregator batch fills by compressed size after ~60 blocks."""
N_APPS = 3
APP_SLOTS_PER_CALL = (1, 2)
DEPLOY_CHANCE = 0.15
DECLARE_CHANCE = 0.1
NEW_HOLDER_CHANCE = 0.3
"""How often a transfer goes to an address that never held tokens (a new balance slot)."""

L1_BLOCK_EVERY = 12
"""Blocks between two moves of the recorded L1 prices: an L1 block (12 s) at one second a block."""
L1_BASE_FEE_WEI = 8 * 10**9
"""The L1 base fee the first block records (8 gwei)."""
L1_BASE_FEE_RANGE = (5 * 10**8, 200 * 10**9)
L1_BLOB_BASE_FEE_WEI = 5 * 10**8
"""The L1 blob base fee the first block records (0.5 gwei)."""
L1_BLOB_BASE_FEE_RANGE = (1, 100 * 10**9)
"""EIP-4844's minimum blob base fee is 1 wei."""
STRK_PER_ETH = 20_000
"""Converts the L1 prices to their ``price_in_fri`` (STRK)."""
L2_GAS_PRICE_FRI = 8 * 10**9


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


SEQUENCER_ADDRESS = felt_hash("devnet sequencer") % 2**250
"""Where transaction fees go (the blocks' ``sequencer_address``)."""
APP_CLASS = felt_hash("devnet app class")
APP_CONTRACTS = tuple(felt_hash("devnet app", i) % 2**250 for i in range(N_APPS))
APP_COUNTER_KEY = felt_hash("app_next_id") % 2**250
ERC20_CLASS = felt_hash("erc20 class")
PUBLIC_KEY_KEY = felt_hash("Account_public_key") % 2**250


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
    weights: BouncerWeights = field(default_factory=BouncerWeights)
    l1_gas_price_wei: int = L1_BASE_FEE_WEI
    """The L1 base fee the header records (``l1_gas_price.price_in_wei``)."""
    l1_data_gas_price_wei: int = L1_BLOB_BASE_FEE_WEI
    """The L1 blob base fee the header records (``l1_data_gas_price.price_in_wei``)."""


def _l1_step(price: int, seed: int, name: str, number: int, bounds: tuple[int, int]) -> int:
    """One EIP-1559 move of an L1 price: by at most ±12.5 %, drawn from the block number (not the chain's
    random stream, so the blocks' contents are those of a chain without prices), within ``bounds``."""
    move = felt_hash("devnet l1 price", seed, name, number) % 2001 - 1000  # -1000..1000
    moved = price + price * move // 8000
    return min(max(moved, bounds[0]), bounds[1])


def resource_price(wei: int) -> dict[str, str]:
    """A header's price of one resource, in wei and in fri (STRK)."""
    return {"price_in_fri": hex(wei * STRK_PER_ETH), "price_in_wei": hex(wei)}


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


@dataclass(slots=True)
class _BlockContent:
    """What one block writes, and what its transactions cost (for its bouncer weights)."""

    storage: dict[int, dict[int, int]] = field(default_factory=dict)
    nonces: dict[int, int] = field(default_factory=dict)
    deployed: dict[int, int] = field(default_factory=dict)
    declared: dict[int, int] = field(default_factory=dict)
    n_txs: int = 0
    n_events: int = 0
    sierra_gas: int = 0
    proving_gas: int = 0
    receipt_l2_gas: int = 0

    def write(self, address: int, key: int, value: int) -> None:
        self.storage.setdefault(address, {})[key] = value

    def weights(self) -> BouncerWeights:
        """Blockifier's weights of the block; ``state_diff_size`` counts the transactions' writes
        (storage, nonces, deployments, declarations), not the OS's alias writes."""
        state_diff_size = (
            sum(len(entries) for entries in self.storage.values())
            + len(self.nonces)
            + len(self.deployed)
            + len(self.declared)
        )
        return BouncerWeights(
            n_txs=self.n_txs,
            n_events=self.n_events,
            state_diff_size=state_diff_size,
            sierra_gas=self.sierra_gas,
            proving_gas=self.proving_gas,
            receipt_l2_gas=self.receipt_l2_gas,
        )


class DevnetChain:
    """A deterministic chain (by ``seed``): ``produce_block`` appends a block of ``tx_per_block`` transactions."""

    def __init__(
        self,
        *,
        seed: int = 7,
        accounts: int = 8,
        timestamp: int = 1_700_000_000,
        tx_per_block: int = DEFAULT_TX_PER_BLOCK,
        fee_token: int = STRK_TOKEN,
    ) -> None:
        """``fee_token`` is the chain's (STRK) fee token, where balances and fees are written; the feeder
        gateway's ``get_contract_addresses`` names it."""
        if tx_per_block < 0:
            raise ValueError(f"tx_per_block must be 0 or more, got {tx_per_block}")
        self.tx_per_block = tx_per_block
        self.fee_token = fee_token
        self._rng = random.Random(seed)
        self._seed = seed
        self.blocks: list[Block] = []
        self.storage: dict[tuple[int, int], History] = {}
        self.nonces: dict[int, History] = {}
        self.class_hashes: dict[int, History] = {}
        self.aliases: dict[int, int] = {}
        """Every alias assigned so far (key or address → alias), as contract 0x2 holds them."""
        self._next_alias: int | None = None
        self._timestamp = timestamp
        self._accounts = [felt_hash("account", i) % 2**250 for i in range(accounts)]
        self._holders: list[int] = list(self._accounts)
        """Everyone who ever received tokens (accounts first); transfers go to one of them or a newcomer."""
        self._balances: dict[int, int] = {}
        self._nonces: dict[int, int] = {}
        self._app_next_id: dict[int, int] = {}
        self._genesis()

    @property
    def head(self) -> int:
        return len(self.blocks) - 1

    def _genesis(self) -> None:
        content = _BlockContent()
        for account in self._accounts:
            self._balances[account] = 10**24
            content.write(self.fee_token, balance_key(account), 10**24)
            content.write(account, PUBLIC_KEY_KEY, felt_hash("pk", account))
            content.deployed[account] = ACCOUNT_CLASS
        content.deployed.update({self.fee_token: ERC20_CLASS, ETH_TOKEN: ERC20_CLASS})
        content.deployed.update({app: APP_CLASS for app in APP_CONTRACTS})
        content.declared.update(
            {
                ACCOUNT_CLASS: felt_hash("compiled", ACCOUNT_CLASS),
                ERC20_CLASS: felt_hash("c20"),
                APP_CLASS: felt_hash("compiled", APP_CLASS),
            }
        )
        for _ in content.deployed:
            self._charge(content, events=1)
        self._append(content)

    def produce_block(self) -> Block:
        rng = self._rng
        number = len(self.blocks)
        content = _BlockContent()
        n_invokes = self.tx_per_block
        if n_invokes > 0 and rng.random() < DEPLOY_CHANCE:
            n_invokes -= 1
            self._deploy_account(content, number)
        if n_invokes > 0 and rng.random() < DECLARE_CHANCE:
            n_invokes -= 1
            self._declare(content, number)
        for index in range(n_invokes):
            self._invoke(content, number, index)
        return self._append(content)

    # -- transactions -------------------------------------------------------------------------------

    def _charge(self, content: _BlockContent, *, events: int) -> None:
        """Count one transaction with realistic gas: 1M–5M sierra gas, the proof's and receipt's on top."""
        sierra = self._rng.randint(1_000_000, 5_000_000)
        content.n_txs += 1
        content.n_events += events
        content.sierra_gas += sierra
        content.proving_gas += sierra + 1_500_000
        content.receipt_l2_gas += sierra + self._rng.randint(100_000, 600_000)

    def _bump_nonce(self, content: _BlockContent, account: int) -> None:
        self._nonces[account] = self._nonces.get(account, 0) + 1
        content.nonces[account] = self._nonces[account]

    def _pay(self, content: _BlockContent, sender: int, receiver: int, amount: int) -> None:
        self._balances[sender] -= amount
        self._balances[receiver] = self._balances.get(receiver, 0) + amount
        content.write(self.fee_token, balance_key(sender), self._balances[sender])
        content.write(self.fee_token, balance_key(receiver), self._balances[receiver])

    def _pay_fee(self, content: _BlockContent, sender: int) -> None:
        self._pay(content, sender, SEQUENCER_ADDRESS, min(self._rng.randint(10**12, 10**15), self._balances[sender]))

    def _sender(self) -> int:
        funded = [a for a in self._accounts if self._balances.get(a, 0) > 10**16]
        return self._rng.choice(funded or self._accounts)

    def _invoke(self, content: _BlockContent, number: int, index: int) -> None:
        """A multicall: a token transfer, then an app call that writes 1–2 fresh slots and its counter."""
        rng = self._rng
        sender = self._sender()
        if rng.random() < NEW_HOLDER_CHANCE or len(self._holders) < 2:
            receiver = felt_hash("holder", number, index) % 2**250
            self._holders.append(receiver)
        else:
            receiver = rng.choice(self._holders)
            while receiver == sender:
                receiver = rng.choice(self._holders)
        balance = self._balances.get(sender, 0)
        if balance > 0:
            self._pay(content, sender, receiver, rng.randint(1, min(10**18, balance)))
        if self._balances.get(sender, 0) > 0:
            self._pay_fee(content, sender)
        app = rng.choice(APP_CONTRACTS)
        n_slots = rng.randint(*APP_SLOTS_PER_CALL)
        for slot in range(n_slots):
            content.write(app, felt_hash("slot", app, number, index, slot) % 2**251, rng.getrandbits(251))
        self._app_next_id[app] = self._app_next_id.get(app, 0) + n_slots
        content.write(app, APP_COUNTER_KEY, self._app_next_id[app])
        self._bump_nonce(content, sender)
        self._charge(content, events=2 + n_slots)

    def _deploy_account(self, content: _BlockContent, number: int) -> None:
        account = felt_hash("account", number, self._rng.random().hex()) % 2**250
        content.deployed[account] = ACCOUNT_CLASS
        content.write(account, PUBLIC_KEY_KEY, felt_hash("pk", account))
        self._accounts.append(account)
        self._holders.append(account)
        self._balances[account] = 0
        self._bump_nonce(content, account)
        self._charge(content, events=1)

    def _declare(self, content: _BlockContent, number: int) -> None:
        class_hash = felt_hash("class", number)
        content.declared[class_hash] = felt_hash("compiled", class_hash)
        sender = self._sender()
        if self._balances.get(sender, 0) > 0:
            self._pay_fee(content, sender)
        self._bump_nonce(content, sender)
        self._charge(content, events=1)

    # -- block assembly -------------------------------------------------------------------------------

    def _allocate_aliases(self, content: _BlockContent) -> dict[int, int]:
        """The OS's writes to contract 0x2 for this block: an alias for each address, then each storage
        key (of contracts ≥ 0x80), that is ≥ 0x80 and has none yet, in ascending order; and the counter
        when it moved (or was never set)."""
        addresses = sorted({*content.storage, *content.nonces, *content.deployed})
        keys = sorted({k for a, entries in content.storage.items() if a >= MIN_VALUE_FOR_ALIAS for k in entries})
        writes: dict[int, int] = {}
        next_alias = self._next_alias if self._next_alias is not None else FIRST_ALIAS
        for key in (*addresses, *keys):
            if key >= MIN_VALUE_FOR_ALIAS and key not in self.aliases:
                self.aliases[key] = next_alias
                writes[key] = next_alias
                next_alias += 1
        if writes or self._next_alias is None:
            writes[ALIAS_COUNTER_KEY] = next_alias
            self._next_alias = next_alias
        return writes

    def _append(self, content: _BlockContent) -> Block:
        number = len(self.blocks)
        parent = self.blocks[-1] if self.blocks else None
        old_root = parent.new_root if parent else 0
        weights = content.weights()
        storage = dict(content.storage)
        alias_writes = self._allocate_aliases(content)
        if alias_writes:
            storage[ALIAS_CONTRACT] = alias_writes
        for address, entries in storage.items():
            for key, value in entries.items():
                self.storage.setdefault((address, key), History()).set(number, value)
        for address, nonce in content.nonces.items():
            self.nonces.setdefault(address, History()).set(number, nonce)
        for address, class_hash in content.deployed.items():
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
                {"class_hash": hex(c), "compiled_class_hash": hex(cc)} for c, cc in sorted(content.declared.items())
            ],
            "deployed_contracts": [
                {"address": hex(a), "class_hash": hex(c)} for a, c in sorted(content.deployed.items())
            ],
            "replaced_classes": [],
            "nonces": [{"contract_address": hex(a), "nonce": hex(n)} for a, n in sorted(content.nonces.items())],
        }
        new_root = felt_hash(old_root, json.dumps(state_diff, sort_keys=True))
        parent_hash = parent.block_hash if parent else 0
        base_fee = parent.l1_gas_price_wei if parent else L1_BASE_FEE_WEI
        blob_base_fee = parent.l1_data_gas_price_wei if parent else L1_BLOB_BASE_FEE_WEI
        if number and number % L1_BLOCK_EVERY == 0:
            base_fee = _l1_step(base_fee, self._seed, "base", number, L1_BASE_FEE_RANGE)
            blob_base_fee = _l1_step(blob_base_fee, self._seed, "blob", number, L1_BLOB_BASE_FEE_RANGE)
        block = Block(
            number=number,
            block_hash=felt_hash("block", number, parent_hash, new_root),
            parent_hash=parent_hash,
            old_root=old_root,
            new_root=new_root,
            timestamp=self._timestamp + number,
            tx_hashes=[felt_hash("tx", number, i) for i in range(content.n_txs)],
            state_diff=state_diff,
            weights=weights,
            l1_gas_price_wei=base_fee,
            l1_data_gas_price_wei=blob_base_fee,
        )
        self.blocks.append(block)
        return block


class RpcFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


BLOCK_NOT_FOUND = RpcFailure(24, "Block not found")


def _gateway_error(code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=400)


class DevnetSequencer:
    """The chain plus its JSON-RPC endpoint (``POST /``), the feeder gateway's bouncer weights
    (``GET /feeder_gateway/get_block_bouncer_weights``) and fee tokens (``get_contract_addresses``), and a
    block producer task."""

    def __init__(
        self, chain: DevnetChain | None = None, *, block_time_s: float = 1.0, tx_per_block: int | None = None
    ) -> None:
        """``tx_per_block`` sizes a new chain (default ``DEFAULT_TX_PER_BLOCK``); not with ``chain``."""
        if chain is not None and tx_per_block is not None:
            raise ValueError("give tx_per_block to the DevnetChain, not with a chain")
        self.chain = chain or DevnetChain(tx_per_block=DEFAULT_TX_PER_BLOCK if tx_per_block is None else tx_per_block)
        self.block_time_s = block_time_s
        self._producer: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/", self._endpoint, methods=["POST"]),
                Route("/feeder_gateway/get_block_bouncer_weights", self._bouncer_weights, methods=["GET"]),
                Route("/feeder_gateway/get_contract_addresses", self._contract_addresses, methods=["GET"]),
            ]
        )
        self.requests = 0
        self._versions: list[tuple[int, str]] = []
        """(first block, Starknet version) announced from that block on; ``STARKNET_VERSION`` before any."""

    def announce_version(self, version: str, *, from_block: int) -> None:
        """Blocks from ``from_block`` on announce ``version`` in their header (a chain upgrade, for tests and
        development: the blocks themselves do not change)."""
        self._versions = sorted([*(v for v in self._versions if v[0] != from_block), (from_block, version)])

    def version_of(self, block: int) -> str:
        """The Starknet version block ``block`` announces."""
        announced = STARKNET_VERSION
        for first, version in self._versions:
            if first > block:
                break
            announced = version
        return announced

    def start_producing(self, *, max_blocks: int | None = None) -> None:
        async def produce() -> None:
            while max_blocks is None or self.chain.head + 1 < max_blocks:
                await asyncio.sleep(self.block_time_s)
                self.chain.produce_block()

        self._producer = asyncio.create_task(produce(), name="devnet-block-producer")

    async def stop_producing(self) -> None:
        await cancel_and_wait(self._producer)

    async def _endpoint(self, request: Request) -> Response:
        return await jsonrpc_response(request, self._dispatch)

    async def _bouncer_weights(self, request: Request) -> Response:
        """As Madara's feeder gateway: HTTP 400 with a ``StarknetErrorCode`` for a bad or unknown block."""
        raw = request.query_params.get("blockNumber")
        if raw is None:
            return _gateway_error("StarknetErrorCode.MALFORMED_REQUEST", "Field blockNumber is required.")
        if not raw.isascii() or not raw.isdigit():
            return _gateway_error("StarknetErrorCode.MALFORMED_REQUEST", f"invalid digit found in string: {raw!r}")
        number = int(raw)
        if number > self.chain.head:
            return _gateway_error(
                "StarknetErrorCode.BLOCK_NOT_FOUND", f"Pre-confirmed block with number {number} was not found."
            )
        return JSONResponse(self.chain.blocks[number].weights.to_json())

    async def _contract_addresses(self, request: Request) -> Response:
        """As Madara's feeder gateway: the fee tokens (no L1 contracts: this chain does not know them)."""
        return JSONResponse(
            {"strk_l2_token_address": f"{self.chain.fee_token:#066x}", "eth_l2_token_address": f"{ETH_TOKEN:#066x}"}
        )

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
                **accepted_block_header(block),
                "sequencer_address": hex(SEQUENCER_ADDRESS),
                "l1_gas_price": resource_price(block.l1_gas_price_wei),
                "l2_gas_price": {
                    "price_in_fri": hex(L2_GAS_PRICE_FRI),
                    "price_in_wei": hex(L2_GAS_PRICE_FRI // STRK_PER_ETH),
                },
                "l1_data_gas_price": resource_price(block.l1_data_gas_price_wei),
                "l1_da_mode": "BLOB",
                "starknet_version": self.version_of(block.number),
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
