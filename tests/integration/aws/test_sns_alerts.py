"""SnsAlerts on moto: a published alert reaches an SQS queue subscribed to the topic; failures never raise."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from madara_orchestrator.backends.aws_client import Aws
from madara_orchestrator.backends.aws_names import TopicRef
from madara_orchestrator.backends.aws_sns import SnsAlerts, sns_subject
from madara_orchestrator.domain.errors import ConfigError


@pytest.fixture
async def aws(aws_env: str) -> AsyncIterator[Aws]:
    aws = Aws()
    yield aws
    aws.close()


def _subscribed_queue(aws: Aws, topic_arn: str, name: str) -> str:
    sqs = aws.client("sqs")
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def _read_one(aws: Aws, url: str) -> dict[str, Any]:
    response = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=5)
    (message,) = response["Messages"]
    envelope: dict[str, Any] = json.loads(message["Body"])
    return envelope


@pytest.mark.parametrize("by", ["name", "arn"])
async def test_an_alert_reaches_a_queue_subscribed_to_the_topic(aws: Aws, aws_prefix: str, by: str) -> None:
    topic_arn = str(aws.client("sns").create_topic(Name=f"{aws_prefix}_alerts")["TopicArn"])
    url = _subscribed_queue(aws, topic_arn, f"{aws_prefix}_inbox")
    topic = TopicRef.parse("alerts", aws_prefix) if by == "name" else TopicRef.parse(topic_arn)
    alerts = SnsAlerts(aws, topic)
    await alerts.check()
    await alerts.send("Job Failed", "Job Failed Alert\nJob ID: 42\nType: SnosRun")
    envelope = _read_one(aws, url)
    assert envelope["Subject"] == "Job Failed"
    assert envelope["Message"] == "Job Failed Alert\nJob ID: 42\nType: SnosRun"
    assert envelope["TopicArn"] == topic_arn


async def test_a_missing_topic_is_logged_not_raised(
    aws: Aws, aws_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    alerts = SnsAlerts(aws, TopicRef.parse("alerts", aws_prefix))
    with caplog.at_level(logging.WARNING, logger="madara_orchestrator.alerts"):
        await alerts.send("Job Failed", "details")
    assert "SNS alert failed" in caplog.text and f"SNS topic '{aws_prefix}_alerts' does not exist" in caplog.text
    with pytest.raises(ConfigError, match="orchestrator setup --aws --aws-sns"):
        await alerts.check()


def test_subjects_fit_sns_rules() -> None:
    assert sns_subject("[CRITICAL] AggregatorBatching worker failed") == "[CRITICAL] AggregatorBatching worker failed"
    assert sns_subject("two\nlines\tand  spaces") == "two lines and spaces"
    assert sns_subject("café ✓") == "caf? ?"
    assert len(sns_subject("x" * 300)) == 100
