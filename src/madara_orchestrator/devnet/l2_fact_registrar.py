"""Registers L2 facts the way Atlantic's L2 verification ends: an invoke of Integrity's
``register_fact(verifier_config, fact_hash, security_bits)`` on the L2's fact registry, from the verifier's
account (the mock Atlantic server's ``L2FactRegistry``).

A plain starknet-py account: it is the mock prover's side, not the orchestrator's, so it is not durable
(a lost registration fails the mock's query, and the orchestrator retries the ProofRegistration job).
"""

from __future__ import annotations

import asyncio

from starknet_py.hash.selector import get_selector_from_name
from starknet_py.net.account.account import Account
from starknet_py.net.client_models import Call
from starknet_py.net.full_node_client import FullNodeClient
from starknet_py.net.signer.key_pair import KeyPair

from madara_orchestrator.devnet.layout_bridge import VerifierConfiguration


class StarknetFactRegistrar:
    def __init__(self, *, rpc_url: str, account_address: int, private_key: int, registry_address: int) -> None:
        self.rpc_url = rpc_url
        self.account_address = account_address
        self.registry_address = registry_address
        self._key = private_key
        self._lock = asyncio.Lock()
        """One registration at a time: the account's nonce orders them."""

    def __repr__(self) -> str:
        return f"StarknetFactRegistrar(account={hex(self.account_address)}, registry={hex(self.registry_address)})"

    async def register(self, fact: int, *, security_bits: int, verifier_config: VerifierConfiguration) -> str:
        """Invoke ``register_fact(verifier_config, fact, security_bits)`` and wait until it is accepted; the
        transaction hash."""
        async with self._lock:
            client = FullNodeClient(node_url=self.rpc_url)
            chain_id = await client.get_chain_id()
            account = Account(
                address=self.account_address,
                client=client,
                key_pair=KeyPair.from_private_key(self._key),
                chain=int(chain_id, 16),
            )
            call = Call(
                to_addr=self.registry_address,
                selector=get_selector_from_name("register_fact"),
                calldata=[*verifier_config.to_felts(), fact, security_bits],
            )
            sent = await account.execute_v3(calls=[call], auto_estimate=True)
            await client.wait_for_tx(sent.transaction_hash, check_interval=0.05, retries=2000)
            return hex(sent.transaction_hash)
