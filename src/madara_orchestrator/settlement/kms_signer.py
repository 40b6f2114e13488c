"""AWS KMS holds the L1 key (``--ethereum-kms-key-id``): an asymmetric ``ECC_SECG_P256K1`` key with usage
``SIGN_VERIFY``. The key never leaves KMS; the orchestrator asks it to sign each transaction's signing hash.

- The address comes from ``GetPublicKey`` (DER SubjectPublicKeyInfo → the uncompressed point → keccak);
  a key of another spec or usage is refused at startup, saying so.
- ``Sign`` with ``MessageType=DIGEST`` and ``ECDSA_SHA_256`` over the 32-byte keccak signing hash (KMS does
  not hash a digest again) returns a DER ``(r, s)``; ``s`` is made low (EIP-2: ``s > n/2`` → ``n − s``), and
  the recovery id ``v`` is the one of 0 and 1 whose recovered address is the key's.

Credentials and region come from the standard AWS sources (``backends.aws_client``); the role needs
``kms:GetPublicKey`` and ``kms:Sign`` on the key.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from eth_keys import keys

from madara_orchestrator.backends.aws_client import Aws
from madara_orchestrator.domain.errors import ConfigError, InvalidInput
from madara_orchestrator.domain.eth_tx import SignedBody, UnsignedTx
from madara_orchestrator.settlement.signing import (
    SECP256K1_N,
    check_signed,
    encode_signed,
    recover_address,
    signing_hash,
)

KEY_SPEC = "ECC_SECG_P256K1"


def address_of_public_key(der: bytes, *, flag: str, key_id: str) -> str:
    """The checksummed address of a DER SubjectPublicKeyInfo secp256k1 key."""
    try:
        public = load_der_public_key(der)
    except ValueError as exc:
        raise ConfigError([f"{flag} {key_id}: KMS returned a public key that is not DER ({exc})"]) from exc
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256K1):
        raise ConfigError([f"{flag} {key_id} is not a secp256k1 key: create an {KEY_SPEC} SIGN_VERIFY key"])
    numbers = public.public_numbers()
    point = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    return str(keys.PublicKey(point).to_checksum_address())


def signature_from_der(der: bytes, msg_hash: bytes, address: str) -> tuple[int, int, int]:
    """``(v, r, s)`` of a DER ECDSA signature of ``msg_hash`` by ``address``'s key: low-s, and the recovery id
    that gives back ``address``. ``InvalidInput`` when neither does (another key signed, or another hash)."""
    r, s = decode_dss_signature(der)
    if s > SECP256K1_N // 2:
        s = SECP256K1_N - s
    for v in (0, 1):
        recovered = recover_address(msg_hash, v, r, s)
        if recovered is not None and recovered.lower() == address.lower():
            return v, r, s
    raise InvalidInput(
        f"the KMS signature does not recover to the key's address {address}: KMS signed something other than "
        "the 32-byte digest (MessageType DIGEST)"
    )


class KmsSigner:
    """``TxSigner`` with an AWS KMS key: ``await KmsSigner.open(aws, key_id)`` reads and checks the key."""

    def __init__(self, aws: Aws, key_id: str, address: str, *, flag: str = "--ethereum-kms-key-id") -> None:
        self._aws = aws
        self.key_id = key_id
        self._address = address
        self._flag = flag

    @classmethod
    async def open(cls, aws: Aws, key_id: str, *, flag: str = "--ethereum-kms-key-id") -> KmsSigner:
        """The signer of ``key_id``, once ``GetPublicKey`` shows a ``ECC_SECG_P256K1`` ``SIGN_VERIFY`` key;
        ``ConfigError`` (one line, naming ``flag``) otherwise."""
        kms = aws.client("kms")
        resource = f"KMS key {key_id!r} ({flag})"
        answer = await aws.call("GetPublicKey", resource, lambda: kms.get_public_key(KeyId=key_id))
        spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")
        if spec != KEY_SPEC:
            raise ConfigError(
                [f"{flag} {key_id} has key spec {spec}; L1 transactions need an {KEY_SPEC} (secp256k1) key: create one"]
            )
        if answer.get("KeyUsage") not in (None, "SIGN_VERIFY"):
            raise ConfigError([f"{flag} {key_id} has usage {answer.get('KeyUsage')}; it needs SIGN_VERIFY"])
        address = address_of_public_key(bytes(answer["PublicKey"]), flag=flag, key_id=key_id)
        return cls(aws, key_id, address, flag=flag)

    def __repr__(self) -> str:
        return f"KmsSigner(key_id={self.key_id}, address={self._address})"

    @property
    def address(self) -> str:
        return self._address

    @property
    def description(self) -> str:
        return f"AWS KMS key {self.key_id}"

    async def sign(self, tx: UnsignedTx) -> SignedBody:
        digest = signing_hash(tx)
        kms = self._aws.client("kms")
        answer = await self._aws.call(
            "Sign",
            f"KMS key {self.key_id!r} ({self._flag})",
            lambda: kms.sign(KeyId=self.key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"),
        )
        v, r, s = signature_from_der(bytes(answer["Signature"]), digest, self._address)
        body = encode_signed(tx, v, r, s)
        return check_signed(tx, body.raw, address=self._address, who=self.description)

    async def aclose(self) -> None:
        return None
