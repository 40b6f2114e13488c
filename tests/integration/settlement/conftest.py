"""Fixtures for settlement on a real local L1: anvil started per test (127.0.0.1, free port), the devnet
contracts deployed, and devnet batches (blobs + program output in the OS layout, fact registered)."""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from madara_orchestrator.devnet.anvil import DEV_PRIVATE_KEYS, Anvil, AnvilConfig, find_anvil_binary
from madara_orchestrator.devnet.l1_contracts import DevnetContracts, deploy_devnet_contracts
from madara_orchestrator.devnet.program_output import (
    DEVNET_OS_PROGRAM_HASH,
    build_program_output,
    devnet_config_hash,
    felt_from_int,
)
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.settlement.contracts import FactRegistryClient
from madara_orchestrator.settlement.encoding import program_output_fact
from madara_orchestrator.settlement.eth_rpc import EthRpc
from madara_orchestrator.starknet.blob import felts_to_blobs
from madara_orchestrator.starknet.os_output import OsOutputHeader
from tests.conftest import require_tool
from tests.helpers import anvil_pool

OPERATOR_KEY = DEV_PRIVATE_KEYS[0]
"""Signs the state updates (the TxManager's account)."""
DEPLOYER_KEY = DEV_PRIVATE_KEYS[1]
"""Deploys the contracts and registers facts (the mock prover's account): never the operator's nonces."""
STUFFER_KEY = DEV_PRIVATE_KEYS[2]


def anvil_binary() -> str:
    try:
        return str(find_anvil_binary())
    except ConfigError:
        return require_tool("anvil")  # skips locally, fails under CI=true


def start_anvil(tmp_path: Path, config: AnvilConfig) -> Anvil:
    return Anvil(config, binary=anvil_binary(), log_path=tmp_path / "anvil.log").start()


@pytest.fixture
def anvil_factory(tmp_path: Path) -> Iterator[Callable[[AnvilConfig], Anvil]]:
    """anvil nodes for the test, plain ones leased from tests/helpers/anvil_pool.py (reset to genesis), the
    others started; at teardown each is given back (reset and kept, or stopped)."""
    started: list[Anvil] = []

    def make(config: AnvilConfig) -> Anvil:
        node = anvil_pool.lease(config, tmp_path / "anvil.log", binary=anvil_binary())
        started.append(node)
        return node

    yield make
    for node in started:
        anvil_pool.give_back(node)


@dataclass
class Batch:
    index: int
    block: int
    program_output: list[int]
    blobs: list[bytes]


def make_batch(block: int, *, n_blobs: int = 1, prev_root: int | None = None, seed: int = 0) -> Batch:
    """A one-block batch settling ``block`` (prev = block - 1) with ``n_blobs`` blobs of random felts.

    The same arguments give the same batch: built once per process (its program output's KZG commitments and
    evaluations take a third of a second a blob), a fresh ``Batch`` with its own lists each call."""
    output, blobs = _batch_parts(block, n_blobs, prev_root, seed)
    return Batch(index=block, block=block, program_output=list(output), blobs=list(blobs))


@functools.cache
def _batch_parts(
    block: int, n_blobs: int, prev_root: int | None, seed: int
) -> tuple[tuple[int, ...], tuple[bytes, ...]]:
    rng = random.Random(seed * 1000 + block)
    felts = [rng.randrange(2**251) for _ in range(4096 * (n_blobs - 1) + 700)]
    blobs = felts_to_blobs(felts)
    assert len(blobs) == n_blobs
    header = OsOutputHeader(
        initial_root=prev_root if prev_root is not None else (block_root(block - 1) if block > 0 else 0),
        final_root=block_root(block),
        prev_block_number=felt_from_int(block - 1),
        new_block_number=block,
        prev_block_hash=block_hash(block - 1) if block > 0 else 0,
        new_block_hash=block_hash(block),
        os_program_hash=DEVNET_OS_PROGRAM_HASH,
        starknet_os_config_hash=devnet_config_hash(),
        use_kzg_da=True,
        full_output=False,
    )
    return tuple(build_program_output(header, blobs)), tuple(blobs)


def block_root(block: int) -> int:
    return 0x1000 + block


def block_hash(block: int) -> int:
    return 0xB000 + block


@dataclass
class Devnet:
    anvil: Anvil
    rpc: EthRpc
    contracts: DevnetContracts
    registry: FactRegistryClient

    async def register(self, batch: Batch) -> bytes:
        fact = program_output_fact(DEVNET_OS_PROGRAM_HASH, batch.program_output)
        await self.registry.register_fact(fact)
        return fact


async def deploy(anvil: Anvil) -> Devnet:
    rpc = EthRpc(anvil.url, timeout_s=30)
    contracts = await deploy_devnet_contracts(
        rpc, DEPLOYER_KEY, program_hash=DEVNET_OS_PROGRAM_HASH, config_hash=devnet_config_hash()
    )
    return Devnet(
        anvil=anvil,
        rpc=rpc,
        contracts=contracts,
        registry=FactRegistryClient(rpc, contracts.fact_registry, DEPLOYER_KEY),
    )


def write_genesis(path: Path, *, hardfork: str, excess_blob_gas: int, chain_id: int = 31337) -> Path:
    """A genesis with the dev accounts funded and a given excess blob gas (a non-trivial blob base fee)."""
    from eth_keys.datatypes import PrivateKey

    forks = {
        "homesteadBlock": 0,
        "eip150Block": 0,
        "eip155Block": 0,
        "eip158Block": 0,
        "byzantiumBlock": 0,
        "constantinopleBlock": 0,
        "petersburgBlock": 0,
        "istanbulBlock": 0,
        "berlinBlock": 0,
        "londonBlock": 0,
        "shanghaiTime": 0,
        "cancunTime": 0,
        "pragueTime": 0,
    }
    if hardfork == "osaka":
        forks["osakaTime"] = 0
    alloc = {
        PrivateKey(bytes.fromhex(k[2:])).public_key.to_checksum_address(): {"balance": hex(10**22)}
        for k in DEV_PRIVATE_KEYS
    }
    genesis = {
        "config": {"chainId": chain_id, **forks, "terminalTotalDifficulty": 0, "terminalTotalDifficultyPassed": True},
        "nonce": "0x0",
        "timestamp": "0x0",
        "extraData": "0x",
        "gasLimit": hex(30_000_000),
        "difficulty": "0x0",
        "mixHash": "0x" + "00" * 32,
        "coinbase": "0x" + "00" * 20,
        "baseFeePerGas": hex(10**9),
        "excessBlobGas": hex(excess_blob_gas),
        "blobGasUsed": "0x0",
        "alloc": alloc,
    }
    path.write_text(json.dumps(genesis))
    return path
