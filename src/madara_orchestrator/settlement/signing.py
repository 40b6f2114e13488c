"""Transaction signing without knowing who holds the key (``interfaces.TxSigner``): the bytes a signer signs,
the signed form it returns, and the check every signer's answer passes before it is stored and broadcast
(its fields are the ones asked for, its signature low-s and from the configured account).

``LocalKeySigner`` signs with a key in the process (``--ethereum-private-key``): the same bytes as before
signers existed. ``remote_signer.RemoteSigner`` and ``kms_signer.KmsSigner`` keep the key out of it.
"""

from __future__ import annotations

import dataclasses

import rlp
from eth_hash.auto import keccak
from eth_keys import keys
from eth_keys.datatypes import PrivateKey
from eth_keys.exceptions import BadSignature, ValidationError

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.eth_tx import BLOB_TX_TYPE, DYNAMIC_FEE_TX_TYPE, SignedBody, UnsignedTx

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order of secp256k1: a signature's ``s`` must be at most half of it (EIP-2)."""


def _address_bytes(address: str | None) -> bytes:
    if address is None:
        return b""
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise InvalidInput(f"{address!r} is not a 20-byte address")
    return raw


def unsigned_fields(tx: UnsignedTx) -> list[object]:
    """The RLP fields a signature covers, in the order of EIP-1559 / EIP-4844."""
    fields: list[object] = [
        tx.chain_id,
        tx.nonce,
        tx.max_priority_fee_per_gas,
        tx.max_fee_per_gas,
        tx.gas_limit,
        _address_bytes(tx.to),
        tx.value,
        tx.data,
        [],
    ]
    if tx.tx_type == BLOB_TX_TYPE:
        if tx.to is None:
            raise InvalidInput("a blob transaction cannot create a contract")
        fields += [tx.max_fee_per_blob_gas, list(tx.blob_versioned_hashes)]
    return fields


def signing_hash(tx: UnsignedTx) -> bytes:
    """``keccak(type || rlp(fields))``: what the key signs."""
    return keccak(bytes([tx.tx_type]) + rlp.encode(unsigned_fields(tx)))


def encode_signed(tx: UnsignedTx, v: int, r: int, s: int) -> SignedBody:
    raw = bytes([tx.tx_type]) + rlp.encode([*unsigned_fields(tx), v, r, s])
    return SignedBody(raw=raw, tx_hash="0x" + keccak(raw).hex())


def _int(item: object) -> int:
    return int(rlp.sedes.big_endian_int.deserialize(item))


def decode_signed(raw: bytes) -> tuple[UnsignedTx, int, int, int]:
    """A signed type-2 or type-3 transaction (a type-3 one with or without its sidecar): its fields and
    ``(v, r, s)``. ``InvalidInput`` for anything else."""
    if not raw or raw[0] not in (DYNAMIC_FEE_TX_TYPE, BLOB_TX_TYPE):
        kind = f"type {raw[0]}" if raw and raw[0] < 0x7F else "a legacy"
        raise InvalidInput(f"{kind} transaction, not a type-2 or type-3 one")
    try:
        items = rlp.decode(raw[1:])
        if raw[0] == BLOB_TX_TYPE and items and isinstance(items[0], list):
            items = items[0]  # the network form: [body, (version,) blobs, commitments, proofs]
        expected = 12 if raw[0] == DYNAMIC_FEE_TX_TYPE else 14
        if not isinstance(items, list) or len(items) != expected:
            raise InvalidInput(f"a signed type-{raw[0]} transaction has {expected} fields")
        to = bytes(items[5])
        tx = UnsignedTx(
            chain_id=_int(items[0]),
            nonce=_int(items[1]),
            max_priority_fee_per_gas=_int(items[2]),
            max_fee_per_gas=_int(items[3]),
            gas_limit=_int(items[4]),
            to="0x" + to.hex() if to else None,
            value=_int(items[6]),
            data=bytes(items[7]),
            max_fee_per_blob_gas=_int(items[9]) if raw[0] == BLOB_TX_TYPE else None,
            blob_versioned_hashes=tuple(bytes(h) for h in items[10]) if raw[0] == BLOB_TX_TYPE else (),
        )
        v, r, s = (_int(x) for x in items[-3:])
    except (rlp.exceptions.DecodingError, rlp.exceptions.DeserializationError, TypeError, IndexError) as exc:
        raise InvalidInput(f"not a well-formed signed transaction ({exc})") from exc
    return tx, v, r, s


def recover_address(msg_hash: bytes, v: int, r: int, s: int) -> str | None:
    """The checksummed address whose key made the signature, or None when it is not a valid one."""
    try:
        public = keys.Signature(vrs=(v, r, s)).recover_public_key_from_msg_hash(msg_hash)
    except (BadSignature, ValidationError, ValueError):
        return None
    return str(public.to_checksum_address())


def _normal(tx: UnsignedTx) -> UnsignedTx:
    return dataclasses.replace(tx, to=tx.to.lower() if tx.to else None)


def check_signed(asked: UnsignedTx, raw: bytes, *, address: str, who: str) -> SignedBody:
    """``raw`` as returned by ``who`` for ``asked``: the canonical body (a sidecar is dropped: the sender adds
    its own), once its fields, low-s and sender are checked. ``InvalidInput`` names what differs."""
    try:
        got, v, r, s = decode_signed(raw)
    except InvalidInput as exc:
        raise InvalidInput(
            f"{who} returned {exc}; it must return the signed transaction (eth_signTransaction)"
        ) from exc
    if got.tx_type != asked.tx_type:
        raise InvalidInput(
            f"{who} returned a type-{got.tx_type} transaction for a type-{asked.tx_type} request: it does not sign "
            f"type-{asked.tx_type} transactions"
            + (
                " (blob fields ignored); use a signer that signs EIP-4844 transactions"
                if asked.tx_type == BLOB_TX_TYPE
                else ""
            )
        )
    if _normal(asked) != _normal(got):
        differ = [
            f.name
            for f in dataclasses.fields(asked)
            if getattr(_normal(asked), f.name) != getattr(_normal(got), f.name)
        ]
        raise InvalidInput(f"{who} signed a transaction other than the one asked for (differs in {', '.join(differ)})")
    if s > SECP256K1_N // 2 or v not in (0, 1):
        raise InvalidInput(f"{who} returned a non-canonical signature (high s or v not 0/1): nodes reject it")
    body = encode_signed(got, v, r, s)
    signer = recover_address(signing_hash(got), v, r, s)
    if signer is None or signer.lower() != address.lower():
        raise InvalidInput(
            f"{who} signed with {signer or 'an invalid signature'}, not the configured account {address}"
        )
    return body


class LocalKeySigner:
    """A key in the process (``--ethereum-private-key``): what the orchestrator always did."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self._address: str = key.public_key.to_checksum_address()

    @classmethod
    def from_hex(cls, text: str | bytes) -> LocalKeySigner:
        raw = bytes.fromhex(text.removeprefix("0x")) if isinstance(text, str) else text
        if len(raw) != 32:
            raise InvalidInput("the Ethereum private key must be 32 bytes (64 hex characters)")
        return cls(PrivateKey(raw))

    def __repr__(self) -> str:
        return f"LocalKeySigner(address={self._address})"

    @property
    def address(self) -> str:
        return self._address

    @property
    def description(self) -> str:
        return "a private key in the process"

    async def sign(self, tx: UnsignedTx) -> SignedBody:
        signature = self._key.sign_msg_hash(signing_hash(tx))
        return encode_signed(tx, signature.v, signature.r, signature.s)

    async def aclose(self) -> None:
        return None
