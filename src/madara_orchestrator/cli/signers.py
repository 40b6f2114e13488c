"""Which ``TxSigner`` signs the L1 transactions the settings ask for: the settlement account's
(``--ethereum-private-key``, ``--ethereum-signer-url`` or ``--ethereum-kms-key-id``) and the mock verifier's
(``--mock-verifier-*``). Validation has checked that exactly one way is given for each."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from madara_orchestrator.cli.owning import own
from madara_orchestrator.cli.settings import Settings
from madara_orchestrator.interfaces import TxSigner

if TYPE_CHECKING:
    from madara_orchestrator.backends.aws_client import Aws

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignerFlags:
    key: str
    url: str
    address: str
    kms: str


SETTLEMENT = SignerFlags(
    "ethereum_private_key", "ethereum_signer_url", "ethereum_signer_address", "ethereum_kms_key_id"
)
VERIFIER = SignerFlags(
    "mock_verifier_private_key", "mock_verifier_signer_url", "mock_verifier_signer_address", "mock_verifier_kms_key_id"
)


class _AwsOnce:
    """One ``Aws`` (a thread pool) for the KMS signers, made when the first is, closed with ``exits``."""

    def __init__(self, exits: contextlib.AsyncExitStack) -> None:
        self._exits = exits
        self._aws: Aws | None = None

    def get(self) -> Aws:
        if self._aws is None:
            from madara_orchestrator.backends.aws_client import Aws

            aws = Aws()
            self._exits.callback(aws.close)
            self._aws = aws
        return self._aws


async def open_signer(
    settings: Settings, flags: SignerFlags, exits: contextlib.AsyncExitStack, aws: _AwsOnce | None = None
) -> TxSigner | None:
    """The signer of one account, owned by ``exits``; None when the settings give none for it. Each way of
    signing is imported in its branch: KMS brings boto3, and only the one configured is used."""
    signer: TxSigner
    if getattr(settings, flags.kms):
        from madara_orchestrator.settlement.kms_signer import KmsSigner

        flag = "--" + flags.kms.replace("_", "-")
        signer = await KmsSigner.open((aws or _AwsOnce(exits)).get(), getattr(settings, flags.kms), flag=flag)
    elif getattr(settings, flags.url):
        from madara_orchestrator.settlement.remote_signer import RemoteSigner, RemoteSignerConfig, parse_headers

        signer = RemoteSigner(
            RemoteSignerConfig(
                url=getattr(settings, flags.url),
                address=settings.need(flags.address),
                tls_ca=settings.ethereum_signer_tls_ca,
                tls_cert=settings.ethereum_signer_tls_cert,
                tls_key=settings.ethereum_signer_tls_key,
                headers=parse_headers(settings.ethereum_signer_header),
            )
        )
    elif getattr(settings, flags.key):
        from madara_orchestrator.settlement.signing import LocalKeySigner

        signer = LocalKeySigner.from_hex(getattr(settings, flags.key))
    else:
        return None
    own(exits, signer.aclose)
    return signer


@dataclass(frozen=True, slots=True)
class Signers:
    settlement: TxSigner | None
    verifier: TxSigner | None


async def open_signers(settings: Settings, exits: contextlib.AsyncExitStack) -> Signers:
    """The settlement account's signer (with --settle-on-ethereum) and the mock verifier's (with --prover
    mock), each logged by what signs (never a secret)."""
    aws = _AwsOnce(exits)
    settlement = await open_signer(settings, SETTLEMENT, exits, aws) if settings.settle_on_ethereum else None
    verifier = await open_signer(settings, VERIFIER, exits, aws) if settings.prover == "mock" else None
    for what, signer in (("settlements", settlement), ("fact registrations", verifier)):
        if signer is not None:
            log.info("%s are signed by %s for %s", what, signer.description, signer.address)
    return Signers(settlement=settlement, verifier=verifier)
