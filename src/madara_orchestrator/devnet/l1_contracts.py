"""The devnet's mock L1 contracts (``settlement/contracts/``): the fact registry and the core contract."""

from __future__ import annotations

from dataclasses import dataclass

from eth_keys.datatypes import PrivateKey

from madara_orchestrator.settlement.contracts import deploy_contract
from madara_orchestrator.settlement.eth_rpc import EthRpc


@dataclass(frozen=True, slots=True, kw_only=True)
class DevnetContracts:
    fact_registry: str
    core_contract: str
    program_hash: int
    config_hash: int


async def deploy_devnet_contracts(
    rpc: EthRpc, private_key: str | PrivateKey, *, program_hash: int, config_hash: int = 0
) -> DevnetContracts:
    """Deploy the fact registry and the core contract (at genesis: stateBlockNumber -1).

    ``program_hash`` is the hash the facts are computed with; ``config_hash`` 0 accepts any OS config hash.
    """
    from eth_abi import encode as abi_encode  # here: eth-abi takes 0.1 s to import, and only deploying uses it

    registry = await deploy_contract(rpc, private_key, "FactRegistry")
    core = await deploy_contract(
        rpc,
        private_key,
        "StarknetCore",
        abi_encode(["address", "uint256", "uint256"], [registry, program_hash, config_hash]),
    )
    return DevnetContracts(
        fact_registry=registry, core_contract=core, program_hash=program_hash, config_hash=config_hash
    )
