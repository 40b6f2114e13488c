"""A fact registry in memory: the verifier double of unit tests and of a devnet without an L1."""

from __future__ import annotations

from eth_hash.auto import keccak

from madara_orchestrator.starknet.facts import fact_hex


class InMemoryFactRegistry:
    """A verifier in a dict (a ``FactRegistry``): for unit tests and the devnet without an L1."""

    def __init__(self) -> None:
        self.facts: set[str] = set()
        self.registrations: list[str] = []

    async def is_valid(self, fact: str) -> bool:
        return fact_hex(fact) in self.facts

    async def register(self, fact: str) -> str:
        normalised = fact_hex(fact)
        self.facts.add(normalised)
        self.registrations.append(normalised)
        return "0x" + keccak(f"{normalised}:{len(self.registrations)}".encode()).hex()
