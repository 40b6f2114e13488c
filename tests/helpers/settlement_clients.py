"""Settlement clients as the composition root builds them (cli/compose.py ``_settlement``): the client and
its durable sender made from one config over one rpc and store, with the tests' options for the sender
(``monotonic``, ``sleep``, ``crash_hook``, ``key_guard``)."""

from __future__ import annotations

from typing import Any

from madara_orchestrator.interfaces import TxSigner, TxStore
from madara_orchestrator.settlement.eth_rpc import EthRpc, JsonRpc
from madara_orchestrator.settlement.ethereum import (
    EthereumSettlementClient,
    EthereumSettlementConfig,
    ethereum_tx_manager,
)
from madara_orchestrator.settlement.starknet import (
    StarknetChain,
    StarknetSettlementClient,
    StarknetSettlementConfig,
    starknet_sender,
)


def ethereum_client(
    config: EthereumSettlementConfig, store: TxStore, *, signer: TxSigner | None = None, **sender: Any
) -> EthereumSettlementClient:
    """An Ethereum settlement client over a new ``EthRpc`` to ``config.rpc_url`` (closed by its ``aclose``)."""
    rpc = EthRpc(config.rpc_url)
    txmgr = ethereum_tx_manager(config, rpc=rpc, store=store, signer=signer, **sender)
    return EthereumSettlementClient(config, rpc=rpc, txmgr=txmgr)


def starknet_client(
    config: StarknetSettlementConfig, rpc: JsonRpc, store: TxStore, **sender: Any
) -> StarknetSettlementClient:
    """A Starknet settlement client over ``rpc`` (``starknet_json_rpc``; closed by the client's ``aclose``)."""
    chain = StarknetChain(config, rpc)
    return StarknetSettlementClient(chain=chain, txmgr=starknet_sender(chain, store, **sender))
