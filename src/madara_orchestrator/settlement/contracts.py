"""The devnet contracts (compiled artifacts in ``settlement/contracts/``): deployment and the fact registry.

Plain (type 2) transactions here are for devnet set-up and the mock prover's fact registration; state
updates go through the ``TxManager``. Use a different key for these than the settlement operator's, so
the two never compete for a nonce.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_keys.datatypes import PrivateKey

from madara_orchestrator.domain.errors import BackendUnavailable, InvalidInput, NotFound
from madara_orchestrator.domain.eth_tx import UnsignedTx
from madara_orchestrator.interfaces import TxSigner
from madara_orchestrator.settlement.encoding import IS_VALID_SELECTOR, REGISTER_FACT_SELECTOR
from madara_orchestrator.settlement.eth_rpc import EthRpc
from madara_orchestrator.settlement.signing import LocalKeySigner

log = logging.getLogger(__name__)

ARTIFACTS_DIR = Path(__file__).resolve().parent / "contracts"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractArtifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes


@cache
def load_artifact(name: str) -> ContractArtifact:
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise NotFound(f"contract artifact {path} is missing: run scripts/build_contracts.py")
    doc = json.loads(path.read_text())
    return ContractArtifact(name=name, abi=doc["abi"], bytecode=bytes.fromhex(doc["bytecode"].removeprefix("0x")))


Signing = str | PrivateKey | TxSigner
"""A private key (hex or ``PrivateKey``) or a ``TxSigner`` (remote signer, KMS)."""


def _signer(key: Signing) -> TxSigner:
    if isinstance(key, PrivateKey):
        return LocalKeySigner(key)
    if isinstance(key, str):
        raw = bytes.fromhex(key.removeprefix("0x"))
        if len(raw) != 32:
            raise InvalidInput("a private key is 32 bytes (64 hex characters)")
        return LocalKeySigner(PrivateKey(raw))
    return key


async def wait_for_receipt(
    rpc: EthRpc, tx_hash: str, *, timeout_s: float = 60.0, poll_s: float = 0.1
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        receipt = await rpc.transaction_receipt(tx_hash)
        if receipt is not None and receipt.get("blockNumber") is not None:
            return receipt
        if time.monotonic() > deadline:
            raise BackendUnavailable(f"transaction {tx_hash} was not mined within {timeout_s:g}s")
        await asyncio.sleep(poll_s)


async def send_plain_tx(
    rpc: EthRpc,
    private_key: Signing,
    *,
    to: str | None,
    data: bytes,
    gas_limit: int | None = None,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Sign, send and wait for a type-2 transaction; raises if it reverts. Returns the receipt."""
    signer = _signer(private_key)
    sender = signer.address
    nonce = await rpc.transaction_count(sender, "pending")
    block = await rpc.latest_block()
    base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
    priority = 1_000_000_000
    if gas_limit is None:
        call: dict[str, Any] = {"from": sender, "data": "0x" + data.hex()}
        if to:
            call["to"] = to
        gas_limit = int(await rpc.estimate_gas(call) * 1.2) + 10_000
    signed = await signer.sign(
        UnsignedTx(
            chain_id=await rpc.chain_id(),
            nonce=nonce,
            max_priority_fee_per_gas=priority,
            max_fee_per_gas=2 * base_fee + priority,
            gas_limit=gas_limit,
            to=to,
            data=data,
        )
    )
    await rpc.send_raw_transaction(signed.raw)
    receipt = await wait_for_receipt(rpc, signed.tx_hash, timeout_s=timeout_s)
    if int(receipt["status"], 16) != 1:
        raise InvalidInput(f"transaction {signed.tx_hash} to {to or 'a new contract'} reverted")
    return receipt


async def deploy_contract(rpc: EthRpc, private_key: Signing, name: str, constructor_args: bytes = b"") -> str:
    artifact = load_artifact(name)
    receipt = await send_plain_tx(rpc, private_key, to=None, data=artifact.bytecode + constructor_args)
    address = receipt.get("contractAddress")
    if not address:
        raise BackendUnavailable(f"deployment of {name} returned no contract address")
    log.info("deployed %s at %s", name, address)
    return str(address)


INITIALIZE_CONTRACT_STATE_SELECTOR = bytes.fromhex("a67f82a3")
"""StarkWare's ``initializeContractState(bytes)``."""


def load_starkware_core(path: Path) -> bytes:
    """The creation bytecode of StarkWare's compiled core contract (``Starknet.sol``: ``bytecode.object``)."""
    try:
        doc = json.loads(path.read_text())
        code = doc["bytecode"]["object"] if isinstance(doc["bytecode"], dict) else doc["bytecode"]
        return bytes.fromhex(str(code).removeprefix("0x"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path} is not a compiled contract with bytecode.object: {exc}") from exc


async def deploy_starkware_core(
    rpc: EthRpc,
    private_key: Signing,
    artifact: Path,
    *,
    program_hash: int,
    aggregator_program_hash: int,
    verifier: str,
    config_hash: int,
    initial_root: int = 0,
    initial_block_number: int = -1,
    initial_block_hash: int = 0,
) -> str:
    """Deploy StarkWare's core contract (no constructor arguments) and initialise it once with
    ``abi.encode(programHash, aggregatorProgramHash, verifier, configHash, (globalRoot, blockNumber, blockHash))``
    (a new chain starts at block -1). It then accepts an aggregator batch whose output's ``os_program_hash`` is
    ``program_hash``, whose config hash is ``config_hash``, and whose fact
    ``keccak(aggregator_program_hash, keccak(output))`` is valid in ``verifier``."""
    from eth_abi import encode as abi_encode  # here: eth-abi takes 0.1 s to import, and only deploying uses it

    receipt = await send_plain_tx(rpc, private_key, to=None, data=load_starkware_core(artifact))
    core = receipt.get("contractAddress")
    if not core:
        raise BackendUnavailable("deployment of StarkWare's core contract returned no contract address")
    state = abi_encode(
        ["uint256", "uint256", "address", "uint256", "(uint256,int256,uint256)"],
        [
            program_hash,
            aggregator_program_hash,
            verifier,
            config_hash,
            (initial_root, initial_block_number, initial_block_hash),
        ],
    )
    await send_plain_tx(
        rpc, private_key, to=core, data=INITIALIZE_CONTRACT_STATE_SELECTOR + abi_encode(["bytes"], [state])
    )
    log.info("deployed StarkWare's core contract at %s", core)
    return str(core)


def _fact_bytes(fact: str) -> bytes:
    text = fact[2:] if fact.lower().startswith("0x") else fact
    try:
        data = bytes.fromhex(text.rjust(64, "0"))
    except ValueError:
        raise InvalidInput(f"a fact is 32 bytes of hex, got {fact!r}") from None
    if len(data) != 32:
        raise InvalidInput(f"a fact is 32 bytes, got {len(data)}")
    return data


class FactRegistryClient:
    """The devnet fact registry: the mock prover registers facts, the core contract checks them."""

    def __init__(self, rpc: EthRpc, address: str, private_key: Signing) -> None:
        self.rpc = rpc
        self.address = address
        self._key = _signer(private_key)
        # One registration at a time: each reads the account's nonce, so concurrent ones would collide.
        self._sending = asyncio.Lock()

    def __repr__(self) -> str:
        return f"FactRegistryClient(address={self.address})"

    async def register(self, fact: str) -> str:
        """``FactRegistry`` for the mock prover: the fact as ``0x`` + 64 hex."""
        return await self.register_fact(_fact_bytes(fact))

    async def register_fact(self, fact: bytes) -> str:
        """Register (idempotent on chain); returns the tx hash."""
        if len(fact) != 32:
            raise InvalidInput(f"a fact is 32 bytes, got {len(fact)}")
        async with self._sending:
            receipt = await send_plain_tx(self.rpc, self._key, to=self.address, data=REGISTER_FACT_SELECTOR + fact)
        # Not logged here: the caller logs the registration once, saying what the fact is for.
        return str(receipt["transactionHash"])

    async def is_valid(self, fact: bytes | str) -> bool:
        """Whether the fact (32 bytes, or ``0x`` + 64 hex) is registered."""
        data = _fact_bytes(fact) if isinstance(fact, str) else fact
        result = await self.rpc.call(self.address, IS_VALID_SELECTOR + data)
        return int.from_bytes(result[:32], "big") == 1
