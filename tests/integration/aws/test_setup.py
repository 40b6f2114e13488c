"""``orchestrator setup --aws`` against moto: everything is created once, a second run changes nothing, a
half-done run is finished by the next, resources given by ARN are never created, errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from madara_orchestrator.backends.aws_client import Aws
from madara_orchestrator.backends.aws_names import QueueAddressing, trigger_role_name, trigger_rule_name
from madara_orchestrator.backends.aws_s3 import LIFECYCLE_RULE_ID
from madara_orchestrator.cli.main import main
from madara_orchestrator.domain.queues import Layer, QueueType
from madara_orchestrator.engine.runtime import RuntimeConfig
from madara_orchestrator.engine.triggers import LAYER_TRIGGERS
from tests.helpers.moto import ACCOUNT, REGION, aws_environment, create_sqs_queues

FAST = ["--poll-interval", "0.05", "--timeout", "10"]


def _flags(prefix: str, kind: str = "rule") -> list[str]:
    return [
        "setup",
        "--aws",
        "--aws-s3",
        "--aws-sqs",
        "--aws-sns",
        "--aws-event-bridge",
        "--event-bridge-type",
        kind,
        "--aws-prefix",
        prefix,
        *FAST,
    ]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, list[str], str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def _outcomes(lines: list[str]) -> dict[str, str]:
    """``kind name`` → outcome, from the report lines (the summary line left out)."""
    report = [line for line in lines if not line.startswith("AWS setup done")]
    return {kind_name: outcome for kind_name, outcome in (line.rsplit(": ", 1) for line in report)}


def _queue_names(prefix: str) -> list[str]:
    addressing = QueueAddressing.parse("mo_{}_queue", prefix)
    return [addressing.name_of(t) for t in RuntimeConfig(layer=Layer.L2).queue_configs()]


def _expected(prefix: str, kind: str) -> set[str]:
    triggers = [t.value for t in LAYER_TRIGGERS[Layer.L2]]
    expected = {
        f"s3 bucket {prefix}-mo-bucket",
        f"s3 lifecycle rule {LIFECYCLE_RULE_ID} on {prefix}-mo-bucket",
        f"sns topic {prefix}_alerts",
        *(f"sqs queue {name}" for name in _queue_names(prefix)),
    }
    if kind == "rule":
        expected.add(f"sqs queue policy {prefix}_mo_worker_trigger_queue")
        expected |= {f"eventbridge rule {trigger_rule_name(t, prefix)}" for t in triggers}
    else:
        expected |= {f"iam role {prefix}-mo-wt-role", f"iam role policy {prefix}-mo-wt-policy"}
        expected |= {f"eventbridge schedule {trigger_rule_name(t, prefix)}" for t in triggers}
    return expected


@pytest.mark.parametrize("kind", ["rule", "schedule"])
def test_setup_creates_everything_once(
    aws_env: str, aws_prefix: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = _run(capsys, _flags(aws_prefix, kind))
    assert code == 0, err
    first = _outcomes(lines)
    assert set(first) == _expected(aws_prefix, kind)
    assert set(first.values()) == {"created"}, first

    code, lines, err = _run(capsys, _flags(aws_prefix, kind))
    assert code == 0, err
    second = _outcomes(lines)
    assert set(second) == set(first)
    assert set(second.values()) == {"already present"}, second
    assert lines[-1].endswith(f"{len(second)} already present")

    aws = Aws()
    try:
        _check_resources(aws, aws_prefix, kind)
    finally:
        aws.close()


def _check_resources(aws: Aws, prefix: str, kind: str) -> None:
    rules = aws.client("s3").get_bucket_lifecycle_configuration(Bucket=f"{prefix}-mo-bucket")["Rules"]
    assert [(r["ID"], r["Status"], r["Expiration"]["Days"]) for r in rules] == [(LIFECYCLE_RULE_ID, "Enabled", 14)]
    assert rules[0]["Filter"]["Tag"] == {"Key": "expire-after-settlement", "Value": "true"}

    sqs = aws.client("sqs")
    addressing = QueueAddressing.parse("mo_{}_queue", prefix)
    dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{addressing.name_of(QueueType.JOB_HANDLE_FAILURE)}"
    for queue_type, config in RuntimeConfig(layer=Layer.L2).queue_configs().items():
        url = sqs.get_queue_url(QueueName=addressing.name_of(queue_type))["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert int(attributes["VisibilityTimeout"]) >= config.visibility_timeout_s
        if config.dead_letter is None:
            assert "RedrivePolicy" not in attributes
        else:
            redrive = json.loads(attributes["RedrivePolicy"])
            assert redrive["deadLetterTargetArn"] == dlq_arn and int(redrive["maxReceiveCount"]) == 5
    trigger_url = sqs.get_queue_url(QueueName=addressing.name_of(QueueType.WORKER_TRIGGER))["QueueUrl"]
    trigger_attributes = sqs.get_queue_attributes(QueueUrl=trigger_url, AttributeNames=["All"])["Attributes"]
    assert trigger_attributes["MessageRetentionPeriod"] == "60"
    queue_arn = trigger_attributes["QueueArn"]

    topics = [t["TopicArn"] for t in aws.client("sns").list_topics()["Topics"]]
    assert f"arn:aws:sns:{REGION}:{ACCOUNT}:{prefix}_alerts" in topics

    for trigger in LAYER_TRIGGERS[Layer.L2]:
        name = trigger_rule_name(trigger.value, prefix)
        if kind == "rule":
            events = aws.client("events")
            assert events.describe_rule(Name=name)["ScheduleExpression"] == "rate(1 minute)"
            (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
            assert target["Arn"] == queue_arn and json.loads(target["Input"]) == trigger.value
        else:
            schedule = aws.client("scheduler").get_schedule(Name=name)
            assert schedule["ScheduleExpression"] == "rate(1 minute)"
            assert schedule["ScheduleExpressionTimezone"] == "UTC"
            assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
            assert schedule["Target"]["Arn"] == queue_arn and schedule["Target"]["Input"] == trigger.value
            assert schedule["Target"]["RoleArn"].endswith(f":role/{trigger_role_name(prefix)}")


def test_a_half_done_run_is_finished_by_the_next(
    aws_env: str, aws_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, _flags(aws_prefix))
    assert code == 0, err
    addressing = QueueAddressing.parse("mo_{}_queue", aws_prefix)
    lost = addressing.name_of(QueueType.SNOS_JOB_PROCESSING)
    drifted = addressing.name_of(QueueType.PROVING_JOB_VERIFICATION)
    rule = trigger_rule_name("Snos", aws_prefix)
    aws = Aws()
    try:
        sqs, events = aws.client("sqs"), aws.client("events")
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=lost)["QueueUrl"])
        sqs.set_queue_attributes(
            QueueUrl=sqs.get_queue_url(QueueName=drifted)["QueueUrl"], Attributes={"VisibilityTimeout": "1"}
        )
        events.remove_targets(Rule=rule, Ids=["mo-worker-trigger-queue"])

        code, lines, err = _run(capsys, _flags(aws_prefix))
        assert code == 0, err
        outcomes = _outcomes(lines)
        assert outcomes.pop(f"sqs queue {lost}") == "created"
        assert outcomes.pop(f"sqs queue {drifted}") == "updated"
        assert outcomes.pop(f"eventbridge rule {rule}") == "updated"
        assert set(outcomes.values()) == {"already present"}, outcomes
        assert len(events.list_targets_by_rule(Rule=rule)["Targets"]) == 1
    finally:
        aws.close()


def test_a_queue_identifier_arn_creates_nothing(
    aws_env: str, aws_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{aws_prefix}_{{}}_q"
    argv = ["setup", "--aws", "--aws-sqs", "--queue-identifier", arn, "--aws-prefix", "ignored", *FAST]
    aws = Aws()
    try:
        sqs = aws.client("sqs")
        code, _, err = _run(capsys, argv)
        assert code == 2
        assert f"SQS queue '{aws_prefix}_job_handle_failure_q' (from the --queue-identifier ARN" in err
        assert "does not exist" in err and "Traceback" not in err
        assert not sqs.list_queues(QueueNamePrefix=aws_prefix).get("QueueUrls")

        addressing = QueueAddressing.parse(arn)
        configs = RuntimeConfig(layer=Layer.L2).queue_configs()
        create_sqs_queues(aws, {addressing.name_of(t): c for t, c in configs.items()})
        code, lines, err = _run(capsys, argv)
        assert code == 0, err
        outcomes = _outcomes(lines)
        assert len(outcomes) == len(configs)
        assert set(outcomes.values()) == {"given by ARN (checked, not changed)"}
        url = sqs.get_queue_url(QueueName=addressing.name_of(QueueType.SNOS_JOB_PROCESSING))["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert "RedrivePolicy" not in attributes, "a queue given by ARN is not changed"
    finally:
        aws.close()


def test_the_bucket_gets_the_region_as_location_constraint(
    aws_env: str, aws_prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    argv = ["setup", "--aws", "--aws-s3", "--aws-prefix", aws_prefix, "--storage-expiration-days", "3", *FAST]
    code, lines, err = _run(capsys, argv)
    assert code == 0, err
    aws = Aws()
    try:
        s3 = aws.client("s3")
        bucket = f"{aws_prefix}-mo-bucket"
        assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert rules[0]["Expiration"]["Days"] == 3
    finally:
        aws.close()
    code, lines, err = _run(capsys, [*argv[:-4], "--storage-expiration-days", "5", *FAST])
    assert code == 0, err
    assert _outcomes(lines)[f"s3 lifecycle rule {LIFECYCLE_RULE_ID} on {aws_prefix}-mo-bucket"] == "updated"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["setup", "--aws", "--aws-event-bridge"], "--event-bridge-type (MADARA_ORCHESTRATOR_EVENT_BRIDGE_TYPE) is"),
        (["setup", "--aws-s3"], "--aws-s3 needs --aws"),
        (["setup", "--aws"], "nothing to provision"),
        (["setup", "--aws", "--aws-s3", "--aws-prefix", "Upper"], "S3 bucket name 'Upper-mo-bucket'"),
        (
            ["setup", "--aws", "--aws-event-bridge", "--event-bridge-type", "rule", "--interval-seconds", "30"],
            "--interval-seconds must be a positive multiple of 60",
        ),
        (["setup", "--aws", "--aws-sqs", "--queue-identifier", "plain"], "--queue-identifier must contain '{}'"),
    ],
)
def test_bad_setup_flags_are_exit_2(
    aws_env: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, argv)
    assert code == 2 and message in err and "Traceback" not in err


def _process_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MADARA_ORCHESTRATOR_", "AWS_"))}
    env.update(overrides)
    return env


def test_setup_as_a_process_twice(moto_server: str, aws_prefix: str) -> None:
    env = _process_env(**aws_environment(moto_server))
    command = [sys.executable, "-m", "madara_orchestrator.cli.main", *_flags(aws_prefix, "schedule")]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert set(_outcomes(first.stdout.splitlines()).values()) == {"created"}
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert set(_outcomes(second.stdout.splitlines()).values()) == {"already present"}


def test_unreachable_aws_is_one_line_without_traceback(moto_server: str) -> None:
    env = _process_env(**{**aws_environment(moto_server), "AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    command = [sys.executable, "-m", "madara_orchestrator.cli.main", *_flags("unreachable")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("error: AWS unreachable at http://127.0.0.1:1 (HeadBucket on S3 bucket")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_setup_for_an_l3_creates_its_queues_and_triggers(
    aws_env: str, aws_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = _run(capsys, [*_flags(aws_prefix), "--layer", "l3"])
    assert code == 0, err
    created = set(_outcomes(lines))
    addressing = QueueAddressing.parse("mo_{}_queue", aws_prefix)
    for queue in (QueueType.PROOF_REGISTRATION_JOB_PROCESSING, QueueType.DATA_SUBMISSION_JOB_VERIFICATION):
        assert f"sqs queue {addressing.name_of(queue)}" in created
    assert f"sqs queue {addressing.name_of(QueueType.AGGREGATOR_JOB_PROCESSING)}" not in created
    for trigger in LAYER_TRIGGERS[Layer.L3]:
        assert f"eventbridge rule {trigger_rule_name(trigger.value, aws_prefix)}" in created
