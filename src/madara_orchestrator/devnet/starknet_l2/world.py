"""The contracts' state (a world), copied per transaction so that a revert leaves nothing behind, and sealed blocks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from madara_orchestrator.devnet.layout_bridge import (
    VerifierConfiguration,
)
from madara_orchestrator.devnet.starknet_l2.constants import ProgramInfo, _poseidon, verification_hash
from madara_orchestrator.devnet.starknet_l2.model import CoreState, Event


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """One of Integrity's verifications of a fact."""

    verification_hash: int
    security_bits: int
    verifier_config: VerifierConfiguration

    def to_felts(self) -> list[int]:
        """A ``VerificationListElement``."""
        return [self.verification_hash, self.security_bits, *self.verifier_config.to_felts()]


class MessageStatus(IntEnum):
    """Piltover's ``MessageToAppchainStatus``: the value is the variant's index, its serialization."""

    NOT_SENT = 0
    SEALED = 1
    CANCELLED = 2
    PENDING = 3


@dataclass(slots=True, kw_only=True)
class _World:
    nonces: dict[int, int]
    core: CoreState
    program_info: ProgramInfo
    verifications: dict[int, tuple[Verification, ...]]
    """fact hash → its verifications, in registration order (Integrity's ``fact_verifications``)."""
    to_appchain: dict[int, tuple[MessageStatus, int]] = dataclasses.field(default_factory=dict)
    """Message hash → (status, nonce) of the messages sent from this L2 to the appchain."""
    to_appchain_nonce: int = 0
    to_starknet: dict[int, int] = dataclasses.field(default_factory=dict)
    """Message hash → how many times it can still be consumed (messages from the appchain)."""
    update_state_count: int = 0

    def copy(self) -> _World:
        return _World(
            nonces=dict(self.nonces),
            core=self.core,
            program_info=self.program_info,
            verifications=dict(self.verifications),
            to_appchain=dict(self.to_appchain),
            to_appchain_nonce=self.to_appchain_nonce,
            to_starknet=dict(self.to_starknet),
            update_state_count=self.update_state_count,
        )

    def root(self) -> int:
        nonces = [felt for address in sorted(self.nonces) for felt in (address, self.nonces[address])]
        verified = [v.verification_hash for fact in sorted(self.verifications) for v in self.verifications[fact]]
        to_appchain = [felt for h in sorted(self.to_appchain) for felt in (h, int(self.to_appchain[h][0]))]
        to_starknet = [felt for h in sorted(self.to_starknet) for felt in (h, self.to_starknet[h])]
        return _poseidon(
            [
                *self.core.to_felts(),
                *self.program_info.to_felts(),
                self.update_state_count,
                self.to_appchain_nonce,
                *nonces,
                *verified,
                *to_appchain,
                *to_starknet,
            ]
        )


class _Revert(Exception):
    """A contract call failed: the transaction reverts with this reason.

    ``panic`` is how Starknet reports it: a Cairo panic with a short string (``0x… ('reason')``), a byte-array
    panic (``"reason"``, e.g. ``assert!``), or an error of the execution itself (the text as is)."""

    def __init__(self, reason: str, *, panic: Literal["felt", "bytes", "none"] = "felt") -> None:
        super().__init__(reason)
        self.reason = reason
        self.panic = panic

    def __str__(self) -> str:
        if self.panic == "felt":
            return f"0x{self.reason.encode('ascii').hex()} ('{self.reason}')"
        if self.panic == "bytes":
            return f'"{self.reason}"'
        return self.reason


@dataclass(slots=True, kw_only=True)
class _CallContext:
    world: _World
    caller: int
    events: list[Event]


_Entrypoint = Callable[[_CallContext, tuple[int, ...]], list[int]]


@dataclass(frozen=True, slots=True, kw_only=True)
class _SealedBlock:
    number: int
    block_hash: int
    parent_hash: int
    timestamp: int
    tx_hashes: tuple[int, ...]
    new_root: int
    world: _World


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outcome:
    world: _World
    events: tuple[Event, ...]
    revert_reason: str | None


def _add_verification(world: _World, fact: int, security_bits: int, config: VerifierConfiguration) -> int:
    """Integrity's ``_register_fact``: a verification is recorded once (by its hash); its hash."""
    vhash = verification_hash(fact, config, security_bits)
    known = world.verifications.get(fact, ())
    if all(v.verification_hash != vhash for v in known):
        world.verifications[fact] = (
            *known,
            Verification(verification_hash=vhash, security_bits=security_bits, verifier_config=config),
        )
    return vhash
