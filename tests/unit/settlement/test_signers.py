"""The signers' common ground: the local key signs the same bytes as before, a signer's answer is checked
(fields, type, low-s, sender), a KMS DER signature becomes (v, r, s) with low s, and the remote signer's
request and error lines."""

from __future__ import annotations

import json

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_account import Account
from eth_keys.datatypes import PrivateKey
from eth_utils import to_checksum_address

from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.eth_tx import UnsignedTx
from madara_orchestrator.settlement.blob_tx import (
    Fees,
    Sidecar,
    SidecarForm,
    pooled_blob_tx,
    sign_blob_tx,
    sign_dynamic_fee_tx,
)
from madara_orchestrator.settlement.kms_signer import address_of_public_key, signature_from_der
from madara_orchestrator.settlement.remote_signer import RemoteSigner, RemoteSignerConfig, parse_headers
from madara_orchestrator.settlement.signing import (
    SECP256K1_N,
    LocalKeySigner,
    check_signed,
    encode_signed,
    signing_hash,
)

KEY = "0x" + "4c" * 32
OTHER = "0x" + "7d" * 32
TO = "0x" + "ab" * 20
HASHES = (b"\x01" + b"\x11" * 31, b"\x01" + b"\x22" * 31)


def blob_tx(**changes: object) -> UnsignedTx:
    fields: dict[str, object] = {
        "chain_id": 31337,
        "nonce": 7,
        "max_priority_fee_per_gas": 2,
        "max_fee_per_gas": 30,
        "gas_limit": 1_500_000,
        "to": TO,
        "data": b"\x50\x7e\xe5\x28",
        "max_fee_per_blob_gas": 5,
        "blob_versioned_hashes": HASHES,
    }
    return UnsignedTx(**{**fields, **changes})  # type: ignore[arg-type]


async def test_the_local_key_signs_the_bytes_it_always_signed() -> None:
    signer = LocalKeySigner.from_hex(KEY)
    sidecar = Sidecar(
        form=SidecarForm.EIP4844,
        blobs=(b"b1", b"b2"),
        commitments=(b"c1", b"c2"),
        proofs=(b"p1", b"p2"),
        versioned_hashes=HASHES,
    )
    tx = blob_tx()
    body = await signer.sign(tx)
    before = sign_blob_tx(
        private_key=PrivateKey(bytes.fromhex(KEY[2:])),
        chain_id=31337,
        nonce=7,
        to=TO,
        data=tx.data,
        gas_limit=1_500_000,
        fees=Fees(max_fee_per_gas=30, max_priority_fee_per_gas=2, max_fee_per_blob_gas=5),
        sidecar=sidecar,
    )
    assert (pooled_blob_tx(body.raw, sidecar), body.tx_hash) == (before.raw, before.tx_hash)
    plain = await signer.sign(blob_tx(max_fee_per_blob_gas=None, blob_versioned_hashes=()))
    old = sign_dynamic_fee_tx(
        private_key=PrivateKey(bytes.fromhex(KEY[2:])),
        chain_id=31337,
        nonce=7,
        to=TO,
        data=tx.data,
        gas_limit=1_500_000,
        max_fee_per_gas=30,
        max_priority_fee_per_gas=2,
    )
    assert (plain.raw, plain.tx_hash) == (old.raw, old.tx_hash)
    # And an independent implementation agrees on the signed body.
    theirs = Account.sign_transaction(
        {
            "type": 3,
            "chainId": 31337,
            "nonce": 7,
            "maxPriorityFeePerGas": 2,
            "maxFeePerGas": 30,
            "gas": 1_500_000,
            "to": to_checksum_address(TO),
            "value": 0,
            "data": tx.data,
            "accessList": [],
            "maxFeePerBlobGas": 5,
            "blobVersionedHashes": list(HASHES),
        },
        KEY,
    )
    assert body.raw == bytes(theirs.raw_transaction)


def test_an_answer_for_another_transaction_or_account_is_refused() -> None:
    address = LocalKeySigner.from_hex(KEY).address
    key = PrivateKey(bytes.fromhex(KEY[2:]))

    def signed(tx: UnsignedTx, by: PrivateKey = key) -> bytes:
        sig = by.sign_msg_hash(signing_hash(tx))
        return encode_signed(tx, sig.v, sig.r, sig.s).raw

    asked = blob_tx()
    assert check_signed(asked, signed(asked), address=address, who="the signer").raw == signed(asked)
    with pytest.raises(InvalidInput, match="differs in nonce, max_fee_per_gas"):
        check_signed(asked, signed(blob_tx(nonce=8, max_fee_per_gas=31)), address=address, who="the signer")
    with pytest.raises(InvalidInput, match=r"type-2 transaction for a type-3 request.*EIP-4844"):
        check_signed(
            asked,
            signed(blob_tx(max_fee_per_blob_gas=None, blob_versioned_hashes=())),
            address=address,
            who="the signer",
        )
    with pytest.raises(InvalidInput, match=rf"signed with 0x.*not the configured account {address}"):
        check_signed(asked, signed(asked, PrivateKey(bytes.fromhex(OTHER[2:]))), address=address, who="the signer")
    sig = key.sign_msg_hash(signing_hash(asked))
    high = encode_signed(asked, 1 - sig.v, sig.r, SECP256K1_N - sig.s).raw
    with pytest.raises(InvalidInput, match="non-canonical signature"):
        check_signed(asked, high, address=address, who="the signer")
    with pytest.raises(InvalidInput, match="returned a legacy transaction"):
        check_signed(asked, b"\xf8\x01\x02", address=address, who="the signer")


def test_a_der_signature_becomes_low_s_with_the_recovery_id_of_the_key() -> None:
    private = ec.generate_private_key(ec.SECP256K1())
    der_public = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    address = address_of_public_key(der_public, flag="--ethereum-kms-key-id", key_id="k")
    tx = blob_tx()
    digest = signing_hash(tx)
    seen_high: set[bool] = set()
    seen_v: set[int] = set()
    for _ in range(24):
        r, s = decode_dss_signature(private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
        for candidate in (s, SECP256K1_N - s):  # KMS returns either; both must come out low
            v, r2, s2 = signature_from_der(encode_dss_signature(r, candidate), digest, address)
            assert s2 <= SECP256K1_N // 2 and r2 == r
            assert check_signed(tx, encode_signed(tx, v, r2, s2).raw, address=address, who="KMS")
            seen_high.add(candidate > SECP256K1_N // 2)
            seen_v.add(v)
    assert seen_high == {True, False} and seen_v == {0, 1}
    other = ec.generate_private_key(ec.SECP256K1())
    r, s = decode_dss_signature(other.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
    with pytest.raises(InvalidInput, match="does not recover to the key's address"):
        signature_from_der(encode_dss_signature(r, s), digest, address)


def test_a_public_key_of_another_curve_is_refused_saying_so() -> None:
    nist = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(Exception, match="--ethereum-kms-key-id k is not a secp256k1 key"):
        address_of_public_key(nist, flag="--ethereum-kms-key-id", key_id="k")


async def test_the_remote_signer_asks_with_the_blob_fields_and_headers_and_names_refusals() -> None:
    seen: list[httpx.Request] = []
    key = PrivateKey(bytes.fromhex(KEY[2:]))
    address = key.public_key.to_checksum_address()
    answer: dict[str, object] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": 1, **answer})

    client = httpx.AsyncClient(
        transport=httpx.MockTransport(handler), headers=dict(parse_headers("X-Api: k1\nAuthorization: Bearer t"))
    )
    signer = RemoteSigner(
        RemoteSignerConfig(url="https://signer.example:9000/rpc?token=s3cr3t", address=address), client=client
    )
    tx = blob_tx()
    sig = key.sign_msg_hash(signing_hash(tx))
    answer["result"] = "0x" + encode_signed(tx, sig.v, sig.r, sig.s).raw.hex()
    assert (await signer.sign(tx)).raw.hex() == answer["result"][2:]  # type: ignore[index]
    body = json.loads(seen[0].content)
    assert body["method"] == "eth_signTransaction"
    sent = body["params"][0]
    assert sent["from"] == address and sent["nonce"] == "0x7" and sent["maxFeePerBlobGas"] == "0x5"
    assert sent["blobVersionedHashes"] == ["0x" + h.hex() for h in HASHES] and "blobs" not in sent
    assert seen[0].headers["x-api"] == "k1" and seen[0].headers["authorization"] == "Bearer t"
    answer.pop("result")
    answer["error"] = {"code": -32000, "message": "Signing from is not an unlocked account"}
    with pytest.raises(InvalidInput) as refused:
        await signer.sign(tx)
    assert str(refused.value) == (
        "the remote signer at https://signer.example:9000 refused eth_signTransaction: -32000 Signing from is not "
        "an unlocked account"
    )
    await signer.aclose()


def test_a_header_without_a_colon_is_named_by_position_not_value() -> None:
    with pytest.raises(InvalidInput) as bad:
        parse_headers("X-Api: k1\nsecret-token-value")
    assert str(bad.value) == "--ethereum-signer-header #2 is not 'Name: value'"
