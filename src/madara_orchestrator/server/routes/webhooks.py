"""Atlantic's completion webhook: wake the verification of the job waiting on that query or bucket; one
that comes while its job is still being processed is kept, and wakes the job once it waits
(``JobService.wake_verification``).

It needs a shared secret (``--atlantic-webhook-secret``), in the path or as an HMAC of the body; without one
(no ``ProverWebhook`` given to the app) it is off and answers 404. ``cli/`` gives the webhook that checks
and reads the prover's notices (``interfaces.ProverWebhook``); this module knows no prover.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from madara_orchestrator.domain.jobs import Job, JobType
from madara_orchestrator.engine.service import WAKE_COALESCE_S
from madara_orchestrator.interfaces import ProverWebhook
from madara_orchestrator.server import models
from madara_orchestrator.server.http import WEBHOOK_PATH, Endpoint, Param, Unauthorized, WebhooksOff, api, envelope

SIGNATURE_HEADER = "X-Atlantic-Signature"


def check_webhook(
    webhook: ProverWebhook | None, path_secret: str | None, signature: str | None, body: bytes
) -> ProverWebhook:
    """Accept the webhook (return the one configured) when the secret is in its path or its body is signed
    with it (constant-time comparisons); otherwise ``WebhooksOff`` (no secret configured) or
    ``Unauthorized``. Never echoes what was given."""
    if webhook is None or not webhook.secret:
        raise WebhooksOff(
            "Atlantic webhooks are off: start the orchestrator with --atlantic-webhook-secret to accept them"
        )
    if path_secret is not None and hmac.compare_digest(path_secret.encode(), webhook.secret.encode()):
        return webhook
    if signature is not None and hmac.compare_digest(signature.strip().encode(), webhook.sign(body).encode()):
        return webhook
    raise Unauthorized(
        f"Atlantic webhook refused: wrong or missing secret (POST {WEBHOOK_PATH}/<secret>, or sign the body: "
        f"{SIGNATURE_HEADER}: sha256=<HMAC-SHA256 hex>)"
    )


async def atlantic_webhook(request: Request) -> Response:
    """Authenticated (``check_webhook``); a wake-up spends no verification attempt and wake-ups of one job
    are coalesced (``JobService.wake_verification``), so a flood changes nothing but the load."""
    body = await request.body()
    secret, signature = request.path_params.get("secret"), request.headers.get(SIGNATURE_HEADER)
    webhook = check_webhook(api(request).webhook, secret, signature, body)
    notice = webhook.parse(body)
    service = api(request).runtime.service
    woken: list[Job] = []
    coalesced = 0
    if notice.is_final:
        woken, coalesced = await service.wake_verification(
            notice.query_id, [JobType.PROOF_CREATION, JobType.PROOF_REGISTRATION]
        )
        if notice.bucket_id:
            jobs, skipped = await service.wake_verification(notice.bucket_id, [JobType.AGGREGATOR])
            woken, coalesced = woken + jobs, coalesced + skipped
    message = f"Woke verification of {len(woken)} job(s) for query {notice.query_id} ({notice.status})"
    if coalesced:
        message += f"; {coalesced} already woken in the last {WAKE_COALESCE_S:g} s"
    return envelope(data={"woken_job_ids": [str(j.id) for j in woken]}, message=message)


def endpoints(webhook: ProverWebhook | None) -> list[Endpoint]:
    body = models.webhook_body(webhook.statuses if webhook else None)
    errors = (400, 401, 404, 413, 503)
    return [
        Endpoint(
            WEBHOOK_PATH,
            atlantic_webhook,
            "atlanticWebhook",
            "Atlantic's completion webhook: wake the verification of the job waiting on it",
            "provers",
            method="POST",
            data=models.WokenJobs,
            errors=errors,
            params=(Param(SIGNATURE_HEADER, "header", str),),
            body=body,
            description=(
                f"Authenticated by `{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the body keyed with "
                "--atlantic-webhook-secret>` (401 otherwise); 404 when no secret is configured."
            ),
        ),
        Endpoint(
            WEBHOOK_PATH + "/{secret}",
            atlantic_webhook,
            "atlanticWebhookWithSecret",
            "Atlantic's completion webhook, the secret in the path (for a plain callback URL)",
            "provers",
            method="POST",
            data=models.WokenJobs,
            errors=errors,
            params=(Param("secret", "path", str, required=True),),
            body=body,
            description="401 when the secret is wrong; 404 when no secret is configured.",
        ),
    ]
