"""An Ethereum transaction before and after it is signed, as a ``TxSigner`` (``interfaces.py``) sees it: the
fields of a type-2 (EIP-1559) or type-3 (EIP-4844 blob) transaction, and the signed transaction the signer
returns (for a blob transaction without its sidecar: the sender adds blobs, commitments and proofs)."""

from __future__ import annotations

from dataclasses import dataclass

DYNAMIC_FEE_TX_TYPE = 2
BLOB_TX_TYPE = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class UnsignedTx:
    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas_limit: int
    to: str | None
    """``0x`` + 40 hex; None deploys a contract (type 2 only)."""
    data: bytes
    value: int = 0
    max_fee_per_blob_gas: int | None = None
    """Set (with ``blob_versioned_hashes``) for a type-3 transaction."""
    blob_versioned_hashes: tuple[bytes, ...] = ()

    @property
    def tx_type(self) -> int:
        return BLOB_TX_TYPE if self.max_fee_per_blob_gas is not None else DYNAMIC_FEE_TX_TYPE


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedBody:
    """A signed transaction in its canonical form (``0x02 || rlp(...)`` or ``0x03 || rlp(...)``, no sidecar)."""

    raw: bytes
    tx_hash: str
    """``0x`` + 64 hex: ``keccak(raw)``."""
