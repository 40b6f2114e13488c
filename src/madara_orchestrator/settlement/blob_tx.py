"""EIP-4844 (type 3) blob transactions built and signed here, with the process's cached trusted setup.

eth-account can sign blob transactions too, but it reloads the trusted setup for every blob (seconds per
transaction); here the sidecar is computed once per settlement with ``starknet.kzg`` and reused by every
fee attempt. Two network forms (the "pooled" transaction that ``eth_sendRawTransaction`` takes):

- EIP-4844: ``0x03 || rlp([tx_payload_body, blobs, commitments, blob_proofs])`` (one proof per blob);
- EIP-7594 (PeerDAS, Osaka): ``0x03 || rlp([tx_payload_body, 1, blobs, commitments, cell_proofs])``
  (128 cell proofs per blob, flattened).

The transaction hash is ``keccak(0x03 || rlp(tx_payload_body))``: the same for both forms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import rlp
from eth_hash.auto import keccak
from eth_keys.datatypes import PrivateKey

from madara_orchestrator.domain.chain import BYTES_PER_BLOB
from madara_orchestrator.domain.errors import InvalidInput

BLOB_TX_TYPE = 3
DYNAMIC_FEE_TX_TYPE = 2
CELL_PROOFS_PER_BLOB = 128
WRAPPER_VERSION_EIP7594 = 1


class SidecarForm(StrEnum):
    EIP4844 = "eip4844"
    """One blob proof per blob (``--disable-peerdas``; what a Prague node takes)."""
    EIP7594 = "eip7594"
    """128 cell proofs per blob (PeerDAS, the default; what an Osaka node takes)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Sidecar:
    form: SidecarForm
    blobs: tuple[bytes, ...]
    commitments: tuple[bytes, ...]
    proofs: tuple[bytes, ...]
    """One per blob (EIP-4844) or 128 per blob, flattened (EIP-7594)."""
    versioned_hashes: tuple[bytes, ...]


def build_sidecar(blobs: Sequence[bytes], form: SidecarForm) -> Sidecar:
    """Commitments, versioned hashes and proofs of the blobs, with the cached trusted setup."""
    from madara_orchestrator.starknet import kzg

    commitments: list[bytes] = []
    proofs: list[bytes] = []
    for index, blob in enumerate(blobs):
        if len(blob) != BYTES_PER_BLOB:
            raise InvalidInput(f"blob #{index} is {len(blob)} bytes; a blob is exactly {BYTES_PER_BLOB} bytes")
        commitment = kzg.blob_to_commitment(blob)
        commitments.append(commitment)
        if form is SidecarForm.EIP4844:
            proofs.append(kzg.compute_blob_proof(blob, commitment))
        else:
            cell_proofs = kzg.compute_cell_proofs(blob)
            if len(cell_proofs) != CELL_PROOFS_PER_BLOB:
                raise InvalidInput(f"expected {CELL_PROOFS_PER_BLOB} cell proofs, got {len(cell_proofs)}")
            proofs.extend(cell_proofs)
    return Sidecar(
        form=form,
        blobs=tuple(bytes(b) for b in blobs),
        commitments=tuple(commitments),
        proofs=tuple(proofs),
        versioned_hashes=tuple(kzg.versioned_hash(c) for c in commitments),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    max_fee_per_blob_gas: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedTx:
    tx_hash: str
    """``0x`` + 64 hex."""
    raw: bytes
    """What ``eth_sendRawTransaction`` takes (the pooled form for a blob transaction)."""
    nonce: int
    fees: Fees


def _address_bytes(address: str) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise InvalidInput(f"{address!r} is not a 20-byte address")
    return raw


def _sign(private_key: PrivateKey, tx_type: int, fields: list[object]) -> list[object]:
    signature = private_key.sign_msg_hash(keccak(bytes([tx_type]) + rlp.encode(fields)))
    return [*fields, signature.v, signature.r, signature.s]


def sign_blob_tx(
    *,
    private_key: PrivateKey,
    chain_id: int,
    nonce: int,
    to: str,
    data: bytes,
    gas_limit: int,
    fees: Fees,
    sidecar: Sidecar,
) -> SignedTx:
    """Sign a type-3 transaction and wrap it with its sidecar in the network form."""
    fields: list[object] = [
        chain_id,
        nonce,
        fees.max_priority_fee_per_gas,
        fees.max_fee_per_gas,
        gas_limit,
        _address_bytes(to),
        0,
        data,
        [],
        fees.max_fee_per_blob_gas,
        list(sidecar.versioned_hashes),
    ]
    body = _sign(private_key, BLOB_TX_TYPE, fields)
    tx_hash = "0x" + keccak(bytes([BLOB_TX_TYPE]) + rlp.encode(body)).hex()
    if sidecar.form is SidecarForm.EIP4844:
        wrapper: list[object] = [body, list(sidecar.blobs), list(sidecar.commitments), list(sidecar.proofs)]
    else:
        wrapper = [
            body,
            WRAPPER_VERSION_EIP7594,
            list(sidecar.blobs),
            list(sidecar.commitments),
            list(sidecar.proofs),
        ]
    raw = bytes([BLOB_TX_TYPE]) + rlp.encode(wrapper)
    return SignedTx(tx_hash=tx_hash, raw=raw, nonce=nonce, fees=fees)


def pooled_blob_tx(signed_body: bytes, sidecar: Sidecar) -> bytes:
    """The network form of a signed type-3 transaction (``0x03 || rlp(body)``, as a signer returns it) with
    ``sidecar``: the bytes ``sign_blob_tx`` makes for the same transaction and signature."""
    if not signed_body or signed_body[0] != BLOB_TX_TYPE:
        raise InvalidInput("not a signed type-3 transaction")
    body: object = rlp.decode(signed_body[1:])
    if sidecar.form is SidecarForm.EIP4844:
        wrapper: list[object] = [body, list(sidecar.blobs), list(sidecar.commitments), list(sidecar.proofs)]
    else:
        wrapper = [body, WRAPPER_VERSION_EIP7594, list(sidecar.blobs), list(sidecar.commitments), list(sidecar.proofs)]
    encoded: bytes = rlp.encode(wrapper)
    return bytes([BLOB_TX_TYPE]) + encoded


def sign_dynamic_fee_tx(
    *,
    private_key: PrivateKey,
    chain_id: int,
    nonce: int,
    to: str | None,
    data: bytes,
    gas_limit: int,
    max_fee_per_gas: int,
    max_priority_fee_per_gas: int,
    value: int = 0,
) -> SignedTx:
    """Sign a type-2 (EIP-1559) transaction; ``to=None`` deploys a contract."""
    fields: list[object] = [
        chain_id,
        nonce,
        max_priority_fee_per_gas,
        max_fee_per_gas,
        gas_limit,
        _address_bytes(to) if to else b"",
        value,
        data,
        [],
    ]
    body = _sign(private_key, DYNAMIC_FEE_TX_TYPE, fields)
    raw = bytes([DYNAMIC_FEE_TX_TYPE]) + rlp.encode(body)
    return SignedTx(
        tx_hash="0x" + keccak(raw).hex(),
        raw=raw,
        nonce=nonce,
        fees=Fees(
            max_fee_per_gas=max_fee_per_gas,
            max_priority_fee_per_gas=max_priority_fee_per_gas,
            max_fee_per_blob_gas=0,
        ),
    )


def decode_pooled_blob_tx(raw: bytes) -> dict[str, object]:
    """Decode a pooled type-3 transaction (both forms); used by tests and by crash recovery checks."""
    if not raw or raw[0] != BLOB_TX_TYPE:
        raise InvalidInput("not a type-3 transaction")
    items = rlp.decode(raw[1:])
    if not isinstance(items, list) or not items:
        raise InvalidInput("malformed pooled blob transaction")
    body = items[0]
    if len(items) == 5:
        form, blobs, commitments, proofs = SidecarForm.EIP7594, items[2], items[3], items[4]
    elif len(items) == 4:
        form, blobs, commitments, proofs = SidecarForm.EIP4844, items[1], items[2], items[3]
    else:
        raise InvalidInput(f"pooled blob transaction with {len(items)} items")
    as_int = rlp.sedes.big_endian_int.deserialize
    return {
        "form": form,
        "chain_id": as_int(body[0]),
        "nonce": as_int(body[1]),
        "max_priority_fee_per_gas": as_int(body[2]),
        "max_fee_per_gas": as_int(body[3]),
        "gas": as_int(body[4]),
        "to": "0x" + bytes(body[5]).hex(),
        "data": bytes(body[7]),
        "max_fee_per_blob_gas": as_int(body[9]),
        "blob_versioned_hashes": [bytes(h) for h in body[10]],
        "tx_hash": "0x" + keccak(bytes([BLOB_TX_TYPE]) + rlp.encode(body)).hex(),
        "blobs": [bytes(b) for b in blobs],
        "commitments": [bytes(c) for c in commitments],
        "proofs": [bytes(p) for p in proofs],
    }
