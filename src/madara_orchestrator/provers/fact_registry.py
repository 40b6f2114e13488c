"""Where facts are checked and registered (SPEC §7.6): the GPS verifier or the mock verifier.

The Ethereum implementation (``isValid(bytes32)`` / ``registerFact(bytes32)``) lives with the
settlement code; provers only see the Protocols (``interfaces.FactChecker``, ``FactRegistry``). Facts are
``0x`` + 64 lowercase hex strings.
"""

from __future__ import annotations

from eth_hash.auto import keccak

from madara_orchestrator.starknet.facts import fact_hex


class InMemoryFactRegistry:
    """A verifier in a dict: for unit tests and the devnet without an L1."""

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


class AlwaysValidFactChecker:
    """``is_valid`` is always true: SPEC §7.6's checker for the ``starknet`` settlement layer."""

    async def is_valid(self, fact: str) -> bool:
        return True
