"""An L2 (Integrity) fact registry double for the mock Atlantic server's L2 verification queries."""

from __future__ import annotations

from madara_orchestrator.devnet.layout_bridge import VerifierConfiguration


class RecordingL2Registry:
    """An L2 fact registry that keeps what it was given (``facts``; ``verifications``: security bits and verifier
    configuration of each), or refuses with ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.facts: list[int] = []
        self.verifications: list[tuple[int, VerifierConfiguration]] = []
        self.error = error

    async def register(self, fact: int, *, security_bits: int, verifier_config: VerifierConfiguration) -> str:
        if self.error is not None:
            raise self.error
        self.facts.append(fact)
        self.verifications.append((security_bits, verifier_config))
        return f"0x{len(self.facts):064x}"
