"""Where facts are checked and registered (SPEC §7.6): the GPS verifier or the mock verifier.

The Ethereum implementation (``isValid(bytes32)`` / ``registerFact(bytes32)``) lives with the
settlement code; provers only see these Protocols. Facts are ``0x`` + 64 lowercase hex strings.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class FactChecker(Protocol):
    async def is_valid(self, fact: str) -> bool:
        """Whether the verifier has registered ``fact``."""
        ...


@runtime_checkable
class FactRegistry(FactChecker, Protocol):
    async def register(self, fact: str) -> str:
        """Register ``fact`` and wait for it to be mined; returns the transaction hash (``0x…``).

        Raises when the transaction reverts.
        """
        ...


class AlwaysValidFactChecker:
    """``is_valid`` is always true: SPEC §7.6's checker for the ``starknet`` settlement layer."""

    async def is_valid(self, fact: str) -> bool:
        return True
