"""The queue on Amazon SQS (SPEC §3): ``QueueClient`` over standard queues.

- send: ``SendMessage`` with ``DelaySeconds`` (whole seconds, at most 900) and the message attribute
  ``OrchestratorVersion`` = ``ORCHESTRATOR_VERSION``;
- receive: ``ReceiveMessage`` of one message, long polling up to 20 s per call, with the queue's visibility
  timeout from its ``QueueConfig`` (so a queue made elsewhere still hides a message as long as the engine
  expects), the receive count and the message attributes;
- ack = ``DeleteMessage``; nack = ``ChangeMessageVisibility`` to the delay; extend =
  ``ChangeMessageVisibility``; a stale receipt does nothing;
- depth from ``GetQueueAttributes`` (visible, not visible, delayed);
- dead letters are the redrive policy's job (setup sets ``maxReceiveCount``), not this class's; a message
  carries its source queue (when SQS names it), send and first receive times as the attributes of
  ``domain/dead_letters.py``, for the dead-letter record.

Version filtering (SPEC §3.4): a message whose ``OrchestratorVersion`` differs from ours is for an instance
of that version. As the original does, it is sent again as a copy (same body and attributes) and the
original deleted, so its receive count does not grow towards the dead-letter queue; unlike the original
the copy is delayed a little (``foreign_version_delay_s``), so that with no instance of that version
running the instances of this one do not pass it around in a tight loop. Messages without the
attribute are ours.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from madara_orchestrator import ORCHESTRATOR_VERSION
from madara_orchestrator.backends.aws_client import Aws, error_code
from madara_orchestrator.backends.aws_names import QueueAddressing
from madara_orchestrator.domain import dead_letters
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.domain.queues import QueueConfig
from madara_orchestrator.interfaces import QueueDepth, QueueMessage

log = logging.getLogger("madara_orchestrator.sqs")

VERSION_ATTRIBUTE = "OrchestratorVersion"
MAX_DELAY_S = 900
"""SQS ``DelaySeconds`` limit; longer delays are shortened to it (the handler checks again anyway)."""
MAX_VISIBILITY_S = 43_200
"""SQS visibility timeout limit (12 hours)."""
MAX_WAIT_S = 20
"""SQS long-polling limit per ``ReceiveMessage``."""
FOREIGN_VERSION_DELAY_S = 5

SYSTEM_ATTRIBUTES = [
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SentTimestamp",
    "DeadLetterQueueSourceArn",
]
"""Asked with each message: its receives, and what a dead letter's record shows (``_dead_letter_view``)."""

_STALE_RECEIPT_CODES = frozenset(
    {"ReceiptHandleIsInvalid", "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight"}
)


def _whole_seconds(seconds: float, maximum: int) -> int:
    """SQS takes whole seconds: round up (a delay is never shorter than asked), within ``0..maximum``."""
    return min(maximum, max(0, math.ceil(seconds)))


def _is_stale_receipt(exc: ClientError) -> bool:
    code = error_code(exc)
    if code in _STALE_RECEIPT_CODES:
        return True
    message = str((exc.response.get("Error") or {}).get("Message") or "")
    return code == "InvalidParameterValue" and "ReceiptHandle" in message


def _dead_letter_view(system: Mapping[str, Any]) -> dict[str, str]:
    """SQS's system attributes under the names of ``domain/dead_letters.py``: the source queue (SQS names it
    on a message it moved to a dead-letter queue), the send and first receive times (epoch ms there)."""
    view: dict[str, str] = {}
    source = system.get("DeadLetterQueueSourceArn")
    if source:
        view[dead_letters.SOURCE] = str(source).rsplit(":", 1)[-1]
    for name, key in (
        ("SentTimestamp", dead_letters.SENT_AT),
        ("ApproximateFirstReceiveTimestamp", dead_letters.FIRST_RECEIVE_AT),
    ):
        value = system.get(name)
        if value:
            view[key] = repr(int(value) / 1000)
    return view


class SqsQueue:
    def __init__(
        self,
        aws: Aws,
        addressing: QueueAddressing,
        configs: Mapping[str, QueueConfig],
        *,
        version: str = ORCHESTRATOR_VERSION,
        foreign_version_delay_s: int = FOREIGN_VERSION_DELAY_S,
    ) -> None:
        """``configs`` maps each physical queue name (``addressing.names.of(queue_type)``) to its config, as
        ``RuntimeConfig.physical_queue_configs()`` gives them."""
        self._aws = aws
        self._client = aws.client("sqs", region=addressing.region)
        self._addressing = addressing
        self._configs = dict(configs)
        self.version = version
        self._foreign_delay_s = _whole_seconds(foreign_version_delay_s, MAX_DELAY_S)
        self._urls: dict[str, str] = {}

    def _config(self, queue: str) -> QueueConfig:
        try:
            return self._configs[queue]
        except KeyError:
            raise InvalidInput(f"unknown queue {queue!r}; known: {sorted(self._configs)}") from None

    @staticmethod
    def _resource(queue: str) -> str:
        return f"SQS queue {queue!r}"

    async def url(self, queue: str) -> str:
        """The queue's URL: derived from the ARN, or ``GetQueueUrl`` once and cached."""
        self._config(queue)
        cached = self._urls.get(queue)
        if cached is not None:
            return cached
        derived = self._addressing.url_of(queue)
        if derived is None:
            response = await self._aws.call(
                "GetQueueUrl", self._resource(queue), lambda: self._client.get_queue_url(QueueName=queue)
            )
            derived = str(response["QueueUrl"])
        self._urls[queue] = derived
        return derived

    async def send(self, queue: str, body: str, *, delay_s: float = 0.0) -> str:
        url = await self.url(queue)
        delay = _whole_seconds(delay_s, MAX_DELAY_S)
        attributes = {VERSION_ATTRIBUTE: {"DataType": "String", "StringValue": self.version}}
        response = await self._aws.call(
            "SendMessage",
            self._resource(queue),
            lambda: self._client.send_message(
                QueueUrl=url, MessageBody=body, DelaySeconds=delay, MessageAttributes=attributes
            ),
        )
        return str(response["MessageId"])

    async def receive(self, queue: str, *, wait_s: float = 0.0) -> QueueMessage | None:
        config = self._config(queue)
        url = await self.url(queue)
        visibility = _whole_seconds(config.visibility_timeout_s, MAX_VISIBILITY_S)
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            wait = _whole_seconds(deadline - time.monotonic(), MAX_WAIT_S)
            response = await self._aws.call(
                "ReceiveMessage",
                self._resource(queue),
                functools.partial(
                    self._client.receive_message,
                    QueueUrl=url,
                    MaxNumberOfMessages=1,
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=visibility,
                    AttributeNames=SYSTEM_ATTRIBUTES,
                    MessageAttributeNames=["All"],
                ),
            )
            for raw in response.get("Messages") or []:
                message = self._message(queue, raw, dead_letter_queue=config.dead_letter is None)
                theirs = message.attributes.get(VERSION_ATTRIBUTE)
                if theirs is None or theirs == self.version:
                    return message
                await self._pass_on(queue, url, raw, theirs)
            if time.monotonic() >= deadline:
                return None

    @staticmethod
    def _message(queue: str, raw: Mapping[str, Any], *, dead_letter_queue: bool = False) -> QueueMessage:
        """``dead_letter_queue``: from a queue that dead-letters nowhere (the dead-letter queue is one), whose
        messages show what SQS says of a dead letter."""
        system = raw.get("Attributes") or {}
        attributes = {
            str(name): str(value["StringValue"])
            for name, value in (raw.get("MessageAttributes") or {}).items()
            if "StringValue" in value
        }
        if dead_letter_queue:
            attributes.update(_dead_letter_view(system))
        return QueueMessage(
            queue=queue,
            message_id=str(raw["MessageId"]),
            body=str(raw.get("Body") or ""),
            receipt=str(raw["ReceiptHandle"]),
            receive_count=int(system.get("ApproximateReceiveCount") or 1),
            attributes=attributes,
        )

    async def _pass_on(self, queue: str, url: str, raw: Mapping[str, Any], theirs: str) -> None:
        """Leave a message of another version to its instances: send a copy, delete the original."""
        attributes = {
            str(name): {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
            for name, value in (raw.get("MessageAttributes") or {}).items()
        }
        body = str(raw.get("Body") or "")
        await self._aws.call(
            "SendMessage",
            self._resource(queue),
            lambda: self._client.send_message(
                QueueUrl=url, MessageBody=body, DelaySeconds=self._foreign_delay_s, MessageAttributes=attributes
            ),
        )
        await self._aws.call(
            "DeleteMessage",
            self._resource(queue),
            lambda: self._client.delete_message(QueueUrl=url, ReceiptHandle=str(raw["ReceiptHandle"])),
        )
        log.info(
            "message %s on %s is for orchestrator version %s (this is %s): left to an instance of that version",
            raw.get("MessageId"),
            queue,
            theirs,
            self.version,
        )

    async def ack(self, message: QueueMessage) -> None:
        url = await self.url(message.queue)

        def delete() -> None:
            try:
                self._client.delete_message(QueueUrl=url, ReceiptHandle=message.receipt)
            except ClientError as exc:
                if not _is_stale_receipt(exc):
                    raise
                log.debug("ack of %s on %s: stale receipt, nothing to do", message.message_id, message.queue)

        await self._aws.call("DeleteMessage", self._resource(message.queue), delete)

    async def _change_visibility(self, message: QueueMessage, seconds: float) -> None:
        url = await self.url(message.queue)
        timeout = _whole_seconds(seconds, MAX_VISIBILITY_S)

        def change() -> None:
            try:
                self._client.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message.receipt, VisibilityTimeout=timeout
                )
            except ClientError as exc:
                if not _is_stale_receipt(exc):
                    raise
                log.debug("visibility of %s on %s: stale receipt, nothing to do", message.message_id, message.queue)

        await self._aws.call("ChangeMessageVisibility", self._resource(message.queue), change)

    async def nack(self, message: QueueMessage, *, delay_s: float = 0.0) -> None:
        await self._change_visibility(message, delay_s)

    async def extend(self, message: QueueMessage, *, visibility_s: float) -> None:
        await self._change_visibility(message, visibility_s)

    async def depth(self, queue: str) -> QueueDepth:
        url = await self.url(queue)
        response = await self._aws.call(
            "GetQueueAttributes",
            self._resource(queue),
            lambda: self._client.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            ),
        )
        attributes = response.get("Attributes") or {}
        return QueueDepth(
            visible=int(attributes.get("ApproximateNumberOfMessages") or 0),
            in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible") or 0),
            delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed") or 0),
        )

    async def check(self, queue: str) -> None:
        """Pre-flight (SPEC §17): the queue exists and answers ``GetQueueAttributes``; ``ConfigError`` naming
        it and what to do otherwise, ``BackendUnavailable`` when SQS cannot be reached."""
        url = await self.url(queue)
        await self._aws.call(
            "GetQueueAttributes",
            self._resource(queue),
            lambda: self._client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]),
        )
