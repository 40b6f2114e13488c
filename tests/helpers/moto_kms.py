"""moto's server with KMS ``Sign`` honouring ``MessageType=DIGEST``, for the KMS signer's tests.

moto (5.2.6, the newest) ignores ``MessageType``: it hashes a DIGEST message again with SHA-256 and signs
that, where AWS KMS signs the 32-byte digest as it is (that is what an Ethereum signature needs: the digest
is the transaction's keccak signing hash). This launcher patches exactly that and otherwise runs moto's own
server (``python -m tests.helpers.moto_kms -H 127.0.0.1 -p PORT``); the fixture ``moto_kms`` runs it for the
session and points the AWS SDK at it. Without the patch the KMS signer refuses each signature (it does not
recover to the key's address), which ``test_kms_signer`` shows against plain moto.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

_digest = threading.local()


def patch_moto_digest_signing() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from moto.kms import responses, utils
    from moto.kms.exceptions import ValidationException

    original_response = responses.KmsResponse.sign
    original_key = utils.ECDSAPrivateKey.sign

    def response_sign(self: Any) -> Any:
        _digest.on = self._get_param("MessageType") == "DIGEST"
        try:
            return original_response(self)
        finally:
            _digest.on = False

    def key_sign(self: Any, message: bytes, signing_algorithm: str) -> bytes:
        if not getattr(_digest, "on", False):
            return bytes(original_key(self, message, signing_algorithm))
        algorithm = self._ECDSAPrivateKey__hash_algorithm(signing_algorithm)
        if len(message) != algorithm.digest_size:
            raise ValidationException(f"Digest is invalid length for algorithm {signing_algorithm}.")
        return bytes(self.private_key.sign(message, ec.ECDSA(Prehashed(algorithm))))

    responses.KmsResponse.sign = response_sign
    utils.ECDSAPrivateKey.sign = key_sign


@pytest.fixture(scope="session")
def moto_kms_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a moto server (DIGEST signing patched) running for the session."""
    from tests.helpers.moto import served_moto

    command = [sys.executable, "-m", "tests.helpers.moto_kms"]
    with served_moto(command, tmp_path_factory.mktemp("moto_kms")) as url:
        yield url


@pytest.fixture
def moto_kms(moto_kms_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the AWS SDK at the DIGEST-honouring moto (for this test); returns its URL."""
    from tests.helpers.moto import aws_environment

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    for name, value in aws_environment(moto_kms_server).items():
        monkeypatch.setenv(name, value)
    return moto_kms_server


if __name__ == "__main__":
    patch_moto_digest_signing()
    from moto.server import main

    main(sys.argv[1:])
