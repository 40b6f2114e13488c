"""Alerts to Amazon SNS (SPEC §13): ``AlertSink`` publishing to one topic. Never raises: a failed alert is
logged."""

from __future__ import annotations

import logging

from madara_orchestrator.backends.aws_client import Aws
from madara_orchestrator.backends.aws_names import TopicRef
from madara_orchestrator.domain.errors import ConfigError

log = logging.getLogger("madara_orchestrator.alerts")

MAX_SUBJECT_CHARS = 100
MAX_MESSAGE_BYTES = 256 * 1024


def sns_subject(subject: str) -> str:
    """SNS subjects are at most 100 printable ASCII characters on one line; others become ``?``."""
    text = " ".join(subject.split())
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:MAX_SUBJECT_CHARS]


def _within_limit(message: str) -> str:
    data = message.encode()
    if len(data) <= MAX_MESSAGE_BYTES:
        return message
    return data[: MAX_MESSAGE_BYTES - 16].decode(errors="ignore") + "\n[truncated]"


class SnsAlerts:
    def __init__(self, aws: Aws, topic: TopicRef) -> None:
        """``topic`` from ``TopicRef.parse(identifier, prefix)``: by ARN (its region wins) or by name."""
        self._aws = aws
        self._client = aws.client("sns", region=topic.region)
        self.topic = topic
        self._arn = topic.arn

    @property
    def _resource(self) -> str:
        return f"SNS topic {self.topic.arn or self.topic.name!r}"

    async def topic_arn(self) -> str:
        """The topic's ARN: as given, or found by name with ``ListTopics`` (all pages) and cached."""
        if self._arn is not None:
            return self._arn
        name = self.topic.name

        def find() -> str | None:
            for page in self._client.get_paginator("list_topics").paginate():
                for item in page.get("Topics") or []:
                    arn = str(item["TopicArn"])
                    if arn.split(":")[-1] == name:
                        return arn
            return None

        found = await self._aws.call("ListTopics", self._resource, find)
        if found is None:
            raise ConfigError([f"{self._resource} does not exist: run `orchestrator setup --aws --aws-sns` first"])
        self._arn = found
        return found

    async def send(self, subject: str, message: str) -> None:
        try:
            arn = await self.topic_arn()
            title = sns_subject(subject)
            body = _within_limit(message) or title or "(empty alert)"
            await self._aws.call(
                "Publish",
                self._resource,
                lambda: self._client.publish(TopicArn=arn, Message=body, **({"Subject": title} if title else {})),
            )
        except Exception as exc:  # an alert must never break the engine
            log.warning("SNS alert failed (%s): %s; alert was: %s", type(exc).__name__, exc, subject)

    async def check(self) -> None:
        """Pre-flight (SPEC §17): ``GetTopicAttributes``; ``ConfigError`` naming the topic when missing."""
        arn = await self.topic_arn()
        await self._aws.call(
            "GetTopicAttributes", self._resource, lambda: self._client.get_topic_attributes(TopicArn=arn)
        )
