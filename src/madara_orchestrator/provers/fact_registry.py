"""Where facts are checked and registered (SPEC §7.6): the GPS verifier or the mock verifier.

The Ethereum implementation (``isValid(bytes32)`` / ``registerFact(bytes32)``) lives with the
settlement code; provers only see the Protocols (``interfaces.FactChecker``, ``FactRegistry``). Facts are
``0x`` + 64 lowercase hex strings.
"""

from __future__ import annotations


class AlwaysValidFactChecker:
    """``is_valid`` is always true: SPEC §7.6's checker for the ``starknet`` settlement layer."""

    async def is_valid(self, fact: str) -> bool:
        return True
