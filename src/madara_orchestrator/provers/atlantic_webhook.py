"""Atlantic's completion webhook as the HTTP API takes it (``interfaces.ProverWebhook``)."""

from __future__ import annotations

from dataclasses import dataclass

from madara_orchestrator.interfaces import ProverNotice
from madara_orchestrator.provers.atlantic import (
    AtlanticQueryStatus,
    atlantic_webhook_signature,
    parse_atlantic_webhook,
)


@dataclass(frozen=True, slots=True)
class AtlanticWebhookReceiver:
    """Signed with ``secret`` (an HMAC-SHA256 of the body), or the secret in the path."""

    secret: str
    statuses: tuple[str, ...] = tuple(AtlanticQueryStatus)

    def sign(self, body: bytes) -> str:
        return atlantic_webhook_signature(self.secret, body)

    def parse(self, body: bytes) -> ProverNotice:
        hook = parse_atlantic_webhook(body)
        return ProverNotice(hook.id, str(hook.status), hook.is_final, hook.bucket_id)


def atlantic_webhook(secret: str | None) -> AtlanticWebhookReceiver | None:
    """The webhook for ``create_app``: None (webhooks off, answered 404) without a secret."""
    return AtlanticWebhookReceiver(secret) if secret else None
