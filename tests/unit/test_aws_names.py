"""AWS resource names and addresses (SPEC §3.2, §10, §13, §18): pure functions."""

from __future__ import annotations

import pytest

from madara_orchestrator.backends.aws_names import (
    Arn,
    QueueAddressing,
    TopicRef,
    bucket_is_given,
    bucket_name,
    rate_expression,
    trigger_policy_name,
    trigger_role_name,
    trigger_rule_name,
)
from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.domain.queues import QueueType


def test_arn_parsing_follows_the_original_rules() -> None:
    arn = Arn.parse("arn:aws:sqs:eu-west-1:123456789012:mo_{}_queue")
    assert arn == Arn(
        partition="aws", service="sqs", region="eu-west-1", account="123456789012", resource="mo_{}_queue"
    )
    assert str(arn) == "arn:aws:sqs:eu-west-1:123456789012:mo_{}_queue"
    assert Arn.parse("arn:aws:s3:::my-bucket") is not None, "s3 needs no region nor account"
    assert Arn.parse("arn:aws:iam::123456789012:role/x") is not None
    assert Arn.parse("arn:aws:sqs:::q") is None, "sqs needs region and account"
    assert Arn.parse("arn:aws:sns:us-east-1:1:") is None, "a resource is required"
    assert Arn.parse("mo_{}_queue") is None
    assert Arn.parse("arn:aws:events:us-east-1:1:rule/a:b") is not None, "the resource may hold colons"


def test_queue_names_from_a_template_with_and_without_prefix() -> None:
    plain = QueueAddressing.parse("mo_{}_queue", None)
    assert plain.name_of(QueueType.SNOS_JOB_PROCESSING) == "mo_snos_job_processing_queue"
    assert plain.managed and plain.region is None and plain.url_of("x") is None and plain.arn_of("x") is None
    prefixed = QueueAddressing.parse("mo_{}_queue", "prod")
    assert prefixed.name_of(QueueType.WORKER_TRIGGER) == "prod_mo_worker_trigger_queue"
    assert QueueAddressing.parse("mo_{}_queue", "").name_of(QueueType.WORKER_TRIGGER) == "mo_worker_trigger_queue"


def test_queue_arn_gives_urls_without_api_calls_and_ignores_the_prefix() -> None:
    addressing = QueueAddressing.parse("arn:aws:sqs:eu-west-1:123456789012:mo_{}_queue", "ignored")
    name = addressing.name_of(QueueType.JOB_HANDLE_FAILURE)
    assert name == "mo_job_handle_failure_queue"
    assert addressing.url_of(name) == "https://sqs.eu-west-1.amazonaws.com/123456789012/mo_job_handle_failure_queue"
    assert addressing.arn_of(name) == "arn:aws:sqs:eu-west-1:123456789012:mo_job_handle_failure_queue"
    assert addressing.region == "eu-west-1" and not addressing.managed
    china = QueueAddressing.parse("arn:aws-cn:sqs:cn-north-1:1:q_{}")
    assert china.url_of("q_x") == "https://sqs.cn-north-1.amazonaws.com.cn/1/q_x"


@pytest.mark.parametrize(
    ("identifier", "message"),
    [
        ("mo_queue", "must contain '{}'"),
        ("arn:aws:sqs:eu-west-1:1:fixed", "must contain '{}'"),
        ("arn:aws:sns:eu-west-1:1:t_{}", "expected 'sqs'"),
        ("arn:aws:sqs::1:q_{}", "looks like an ARN but is not one"),
    ],
)
def test_bad_queue_identifiers_are_one_line_errors(identifier: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        QueueAddressing.parse(identifier)
    assert len(caught.value.problems) == 1


def test_bucket_names() -> None:
    assert bucket_name() == "mo-bucket"
    assert bucket_name("mo-bucket", "prod") == "prod-mo-bucket"
    assert bucket_name("arn:aws:s3:::their-bucket", "prod") == "their-bucket"
    assert bucket_is_given("arn:aws:s3:::their-bucket") and not bucket_is_given("mo-bucket")
    for bad in ("Prod", "a_b"):
        with pytest.raises(ConfigError, match="is not valid"):
            bucket_name("mo-bucket", bad)
    with pytest.raises(ConfigError, match="expected 's3'"):
        bucket_name("arn:aws:sqs:us-east-1:1:q")


def test_topic_names() -> None:
    assert TopicRef.parse() == TopicRef(name="alerts")
    assert TopicRef.parse("alerts", "prod") == TopicRef(name="prod_alerts")
    given = TopicRef.parse("arn:aws:sns:ap-south-1:123456789012:ops", "prod")
    assert given == TopicRef(name="ops", arn="arn:aws:sns:ap-south-1:123456789012:ops", region="ap-south-1")
    with pytest.raises(ConfigError, match="is not valid"):
        TopicRef.parse("alerts", "bad.prefix")


def test_event_bridge_and_iam_names() -> None:
    assert trigger_rule_name("SnosBatching") == "mo-wt-rule-snosbatching"
    assert trigger_rule_name("UpdateState", "prod") == "prod-mo-wt-rule-updatestate"
    assert trigger_role_name() == "mo-wt-role" and trigger_role_name("prod") == "prod-mo-wt-role"
    assert trigger_policy_name("prod") == "prod-mo-wt-policy"
    with pytest.raises(ConfigError, match="at most 64"):
        trigger_rule_name("AggregatorBatching", "p" * 50)


@pytest.mark.parametrize(
    ("seconds", "expression"),
    [
        (60, "rate(1 minute)"),
        (120, "rate(2 minutes)"),
        (5400, "rate(90 minutes)"),
        (3600, "rate(1 hour)"),
        (7200.0, "rate(2 hours)"),
        (86400, "rate(1 day)"),
        (172800, "rate(2 days)"),
    ],
)
def test_rate_expressions(seconds: float, expression: str) -> None:
    assert rate_expression(seconds) == expression


@pytest.mark.parametrize("seconds", [0, -60, 30, 90, 60.5])
def test_rates_are_whole_minutes(seconds: float) -> None:
    with pytest.raises(ConfigError, match="multiple of 60"):
        rate_expression(seconds)
