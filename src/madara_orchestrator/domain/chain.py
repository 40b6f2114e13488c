"""The Ethereum blob (EIP-4844) constants, defined here once.

The domain sizes batches, costs and fee caps with them, so they live in domain/ (which imports nothing of
ours); the blob encoder (``starknet/blob.py``), the settlement transactions and the engine import them from
here. The field moduli (Stark prime, BLS12-381) stay in ``starknet/felt.py``: only the encoders use them.
"""

from __future__ import annotations

FELTS_PER_BLOB = 4096
"""Field elements one blob carries (EIP-4844 ``FIELD_ELEMENTS_PER_BLOB``): one felt each."""
BYTES_PER_FIELD_ELEMENT = 32
BYTES_PER_BLOB = FELTS_PER_BLOB * BYTES_PER_FIELD_ELEMENT
"""131072 bytes."""
GAS_PER_BLOB = 2**17
"""Blob gas one blob uses (EIP-4844), 131072."""
MAX_BLOBS_PER_TXN = 6
"""What one Ethereum blob transaction may carry (the DA clients' ``max_blob_per_txn``)."""


def blobs_to_hold(felts: int) -> int:
    """Blobs ``felts`` felts fill: ``ceil(felts / 4096)``, none for none."""
    return -(-felts // FELTS_PER_BLOB)


def blobs_for(felts: int) -> int:
    """Blobs a state diff of ``felts`` felts takes (at least one: a settlement always carries a blob)."""
    return max(1, blobs_to_hold(felts))
