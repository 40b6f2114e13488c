"""``orchestrator setup --aws``: provision S3, SQS, SNS and EventBridge for a layer (SPEC §18).

Idempotent: each resource is read first and created only when missing, or brought to the wanted settings
when it differs; a second run changes nothing and reports every resource "already present", and a run
that stopped half-way is finished by the next. Unlike the original, the IAM role and policy EventBridge
Scheduler uses have fixed names (``<prefix>-mo-wt-role`` with the inline policy ``<prefix>-mo-wt-policy``)
instead of a new randomly-named pair on every run. Resources given by ARN are checked, never changed
(except the bucket's lifecycle rule, as in the original).

After creating, every resource is polled until it answers (``poll_interval_s``, up to ``timeout_s``);
queues are ready before the EventBridge targets that point at them are made.

Deliberate differences from the original:
- the lifecycle rule ``expire-settled-artifacts`` is added to or replaced in the bucket's lifecycle
  configuration; other rules are kept (the original replaces the whole configuration);
- with ``--event-bridge-type rule`` the worker-trigger queue (when setup manages it) gets a queue policy
  letting EventBridge rules ``<prefix>-mo-wt-rule-*`` send to it (without one AWS drops the events); the
  role is made only for ``schedule``, the only type that uses it;
- readiness of a ``schedule`` is checked with ``GetSchedule`` (the original polls ``DescribeRule``);
- rates are whole minutes (``rate(N seconds)`` is refused by AWS);
- the 15 s wait for IAM propagation happens only when the role or its policy changed, and not against a
  custom endpoint (``AWS_ENDPOINT_URL``: moto, LocalStack).
"""

from __future__ import annotations

import enum
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from madara_orchestrator.backends.aws_client import (
    Aws,
    BotoClient,
    aws_errors,
    custom_endpoint,
    error_code,
    raise_translated,
)
from madara_orchestrator.backends.aws_names import (
    Arn,
    EventBridgeType,
    QueueAddressing,
    TopicRef,
    bucket_is_given,
    bucket_name,
    rate_expression,
    trigger_policy_name,
    trigger_role_name,
    trigger_rule_name,
)
from madara_orchestrator.backends.aws_s3 import EXPIRY_TAG_KEY, EXPIRY_TAG_VALUE, LIFECYCLE_RULE_ID
from madara_orchestrator.domain.errors import ConfigError, OrchestratorError
from madara_orchestrator.domain.queues import QueueConfig, QueueType

log = logging.getLogger("madara_orchestrator.setup")

IAM_PROPAGATION_WAIT_S = 15.0
TARGET_ID = "mo-worker-trigger-queue"
"""The id of the worker-trigger queue among a rule's targets (fixed, so a second run finds it)."""
POLICY_VERSION = "2012-10-17"


class Outcome(enum.StrEnum):
    CREATED = "created"
    PRESENT = "already present"
    UPDATED = "updated"
    GIVEN = "given by ARN (checked, not changed)"


@dataclass(frozen=True, slots=True)
class ResourceReport:
    kind: str
    name: str
    outcome: Outcome

    def line(self) -> str:
        return f"{self.kind} {self.name}: {self.outcome}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AwsSetupConfig:
    """What to provision. ``queues`` and ``triggers`` come from the engine's tables for the layer
    (``RuntimeConfig.queue_configs()``, ``engine.triggers.LAYER_TRIGGERS``)."""

    queues: Mapping[QueueType, QueueConfig]
    triggers: Sequence[str]
    prefix: str | None = None
    queue_identifier: str = "mo_{}_queue"
    bucket_identifier: str = "mo-bucket"
    topic_identifier: str = "alerts"
    storage_expiration_days: int = 14
    s3: bool = True
    sqs: bool = True
    sns: bool = True
    event_bridge: bool = True
    event_bridge_type: EventBridgeType = EventBridgeType.RULE
    interval_s: float = 60.0
    timeout_s: float = 300.0
    poll_interval_s: float = 5.0
    iam_propagation_wait_s: float | None = None
    """None: 15 s on AWS, none against a custom endpoint (``AWS_ENDPOINT_URL``)."""

    def problems(self) -> list[str]:
        """Every problem with the names and numbers, before any call (raises nothing)."""
        problems: list[str] = []
        checks: list[Callable[[], object]] = [
            lambda: QueueAddressing.parse(self.queue_identifier, self.prefix),
            lambda: bucket_name(self.bucket_identifier, self.prefix) if self.s3 else None,
            lambda: TopicRef.parse(self.topic_identifier, self.prefix) if self.sns else None,
            lambda: rate_expression(self.interval_s) if self.event_bridge else None,
            lambda: [trigger_rule_name(t, self.prefix) for t in self.triggers] if self.event_bridge else None,
            lambda: trigger_role_name(self.prefix) if self.event_bridge else None,
        ]
        for check in checks:
            try:
                check()
            except ConfigError as exc:
                problems.extend(exc.problems)
        if self.storage_expiration_days <= 0:
            problems.append(f"--storage-expiration-days must be a positive integer, got {self.storage_expiration_days}")
        if self.timeout_s <= 0:
            problems.append(f"--timeout must be positive, got {self.timeout_s:g}")
        if self.poll_interval_s <= 0:
            problems.append(f"--poll-interval must be positive, got {self.poll_interval_s:g}")
        if QueueType.JOB_HANDLE_FAILURE not in self.queues or QueueType.WORKER_TRIGGER not in self.queues:
            problems.append("the queue table has no job_handle_failure or worker_trigger queue")
        if not (self.s3 or self.sqs or self.sns or self.event_bridge):
            problems.append("nothing to provision: choose --aws-s3, --aws-sqs, --aws-sns and/or --aws-event-bridge")
        return problems


def _canonical(value: Any) -> Any:
    """A policy document in a form that compares equal however AWS re-orders or re-shapes it (a list of
    one element is the element; lists are unordered)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        items = [_canonical(v) for v in value]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def _document(raw: Any) -> Any:
    """A policy document as IAM or SQS returns it (a dict, JSON, or URL-encoded JSON)."""
    if isinstance(raw, str):
        text = raw if raw.lstrip().startswith("{") else urllib.parse.unquote(raw)
        return json.loads(text)
    return raw


def _same_document(current: Any, wanted: Mapping[str, Any]) -> bool:
    try:
        return bool(_canonical(_document(current)) == _canonical(wanted))
    except (ValueError, TypeError):
        return False


class AwsProvisioner:
    def __init__(
        self,
        config: AwsSetupConfig,
        aws: Aws,
        *,
        echo: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        problems = config.problems()
        if problems:
            raise ConfigError(problems)
        self.config = config
        self.aws = aws
        self.addressing = QueueAddressing.parse(config.queue_identifier, config.prefix)
        self.report: list[ResourceReport] = []
        self._echo = echo
        self._sleep = sleep
        self._ready: list[tuple[str, Callable[[], bool]]] = []

    # -- helpers ----------------------------------------------------------------------------------

    def _record(self, kind: str, name: str, outcome: Outcome) -> None:
        entry = ResourceReport(kind, name, outcome)
        self.report.append(entry)
        log.info("%s", entry.line())
        if self._echo is not None:
            self._echo(entry.line())

    def _client(self, service: str, region: str | None = None) -> BotoClient:
        return self.aws.client(service, region=region)

    @staticmethod
    def _missing(call: Callable[[], Any], codes: Sequence[str]) -> Any | None:
        """``call()``, or None when it fails with one of ``codes`` (the resource does not exist)."""
        try:
            return call()
        except ClientError as exc:
            if error_code(exc) in codes:
                return None
            raise

    def _wait_ready(self, what: str) -> None:
        """Poll the pending readiness checks until all pass or the timeout."""
        deadline = time.monotonic() + self.config.timeout_s
        pending = list(self._ready)
        self._ready.clear()
        while True:
            still: list[tuple[str, Callable[[], bool]]] = []
            for label, check in pending:
                with aws_errors("readiness check", label):
                    try:
                        ok = check()
                    except ClientError as exc:
                        if error_code(exc) not in _NOT_YET:
                            raise
                        ok = False
                if not ok:
                    still.append((label, check))
            if not still:
                return
            if time.monotonic() >= deadline:
                names = ", ".join(label for label, _ in still)
                raise OrchestratorError(
                    f"{what} not ready after {self.config.timeout_s:g} s: {names}; run setup again to finish"
                )
            pending = still
            self._sleep(self.config.poll_interval_s)

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> list[ResourceReport]:
        try:
            if self.config.s3:
                self.ensure_bucket()
            if self.config.sqs:
                self.ensure_queues()
            self._wait_ready("queues")
            if self.config.sns:
                self.ensure_topic()
            if self.config.event_bridge:
                self.ensure_event_bridge()
            self._wait_ready("resources")
        except (BotoCoreError, ClientError) as exc:  # every call is made under aws_errors; a net all the same
            raise_translated(exc, action="setup", resource="AWS resources")
        return self.report

    # -- S3 ---------------------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        c = self.config
        s3 = self._client("s3")
        name = bucket_name(c.bucket_identifier, c.prefix)
        given = bucket_is_given(c.bucket_identifier)
        resource = f"S3 bucket {name!r}"
        try:
            with aws_errors("HeadBucket", resource):
                exists = self._missing(lambda: s3.head_bucket(Bucket=name), ("404", "NoSuchBucket", "NotFound"))
        except ConfigError as exc:
            if isinstance(exc.__cause__, ClientError) and error_code(exc.__cause__) == "403":
                raise ConfigError(
                    [
                        f"{resource} exists but this AWS identity may not use it (another account's bucket, or no "
                        "s3:ListBucket permission): choose another --bucket-identifier or --aws-prefix, or grant access"
                    ]
                ) from exc
            raise
        if exists is None:
            if given:
                raise ConfigError(
                    [f"{resource} (from the --bucket-identifier ARN) does not exist: create it, or give a name"]
                )
            region = self.aws.region or "us-east-1"
            kwargs: dict[str, Any] = {"Bucket": name}
            if region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                s3.create_bucket(**kwargs)
                outcome = Outcome.CREATED
            except ClientError as exc:
                code = error_code(exc)
                if code == "BucketAlreadyOwnedByYou":
                    outcome = Outcome.PRESENT
                elif code == "BucketAlreadyExists":
                    raise ConfigError(
                        [
                            f"{resource} belongs to another AWS account: choose another --bucket-identifier or "
                            "--aws-prefix"
                        ]
                    ) from exc
                else:
                    raise_translated(exc, action="CreateBucket", resource=resource)
        else:
            outcome = Outcome.GIVEN if given else Outcome.PRESENT
        self._record("s3 bucket", name, outcome)
        self._ready.append((resource, lambda: bool(s3.head_bucket(Bucket=name) or True)))
        self._ensure_lifecycle(s3, name)

    def _ensure_lifecycle(self, s3: BotoClient, name: str) -> None:
        wanted = {
            "ID": LIFECYCLE_RULE_ID,
            "Filter": {"Tag": {"Key": EXPIRY_TAG_KEY, "Value": EXPIRY_TAG_VALUE}},
            "Status": "Enabled",
            "Expiration": {"Days": self.config.storage_expiration_days},
        }
        resource = f"lifecycle configuration of S3 bucket {name!r}"
        with aws_errors("GetBucketLifecycleConfiguration", resource):
            current = self._missing(
                lambda: s3.get_bucket_lifecycle_configuration(Bucket=name), ("NoSuchLifecycleConfiguration",)
            )
        rules: list[dict[str, Any]] = list((current or {}).get("Rules") or [])
        ours = [r for r in rules if r.get("ID") == LIFECYCLE_RULE_ID]
        if ours and all(self._same_rule(r, wanted) for r in ours) and len(ours) == 1:
            outcome = Outcome.PRESENT
        else:
            others = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]
            with aws_errors("PutBucketLifecycleConfiguration", resource):
                s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [*others, wanted]})
            outcome = Outcome.UPDATED if ours else Outcome.CREATED
        self._record("s3 lifecycle rule", f"{LIFECYCLE_RULE_ID} on {name}", outcome)

    @staticmethod
    def _same_rule(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
        return bool(
            current.get("Status") == wanted["Status"]
            and (current.get("Expiration") or {}).get("Days") == wanted["Expiration"]["Days"]
            and ((current.get("Filter") or {}).get("Tag") or {}) == wanted["Filter"]["Tag"]
        )

    # -- SQS --------------------------------------------------------------------------------------

    def _queue_order(self) -> list[QueueType]:
        """The dead-letter queue first: the others' redrive policies point at it."""
        dead_letters = {c.dead_letter for c in self.config.queues.values() if c.dead_letter is not None}
        return sorted(self.config.queues, key=lambda t: (t not in dead_letters, list(self.config.queues).index(t)))

    def _queue_url(self, sqs: BotoClient, name: str) -> str | None:
        derived = self.addressing.url_of(name)
        if derived is not None:
            return derived
        with aws_errors("GetQueueUrl", f"SQS queue {name!r}"):
            response = self._missing(
                lambda: sqs.get_queue_url(QueueName=name),
                ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"),
            )
        return None if response is None else str(response["QueueUrl"])

    def _queue_attributes(self, sqs: BotoClient, name: str, url: str) -> dict[str, str] | None:
        with aws_errors("GetQueueAttributes", f"SQS queue {name!r}"):
            response = self._missing(
                lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]),
                ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"),
            )
        if response is None:
            return None
        return {str(k): str(v) for k, v in (response.get("Attributes") or {}).items()}

    def _wanted_attributes(self, config: QueueConfig, arns: Mapping[QueueType, str]) -> dict[str, str]:
        wanted = {"VisibilityTimeout": str(max(0, min(43_200, math.ceil(config.visibility_timeout_s))))}
        if config.retention_s is not None:
            wanted["MessageRetentionPeriod"] = str(max(60, min(1_209_600, int(config.retention_s))))
        if config.dead_letter is not None:
            wanted["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arns[config.dead_letter], "maxReceiveCount": str(config.max_receive_count)}
            )
        return wanted

    @staticmethod
    def _same_attribute(key: str, current: str | None, wanted: str) -> bool:
        if current is None:
            return False
        if key == "RedrivePolicy":
            try:
                have, want = json.loads(current), json.loads(wanted)
                return bool(
                    have.get("deadLetterTargetArn") == want["deadLetterTargetArn"]
                    and int(have.get("maxReceiveCount")) == int(want["maxReceiveCount"])
                )
            except (ValueError, TypeError):
                return False
        return current == wanted

    def ensure_queues(self) -> None:
        sqs = self._client("sqs", self.addressing.region)
        arns: dict[QueueType, str] = {}
        for queue_type in self._queue_order():
            config = self.config.queues[queue_type]
            name = self.addressing.name_of(queue_type)
            resource = f"SQS queue {name!r}"
            url = self._queue_url(sqs, name)
            current = None if url is None else self._queue_attributes(sqs, name, url)
            if not self.addressing.managed:
                if current is None:
                    raise ConfigError(
                        [
                            f"{resource} (from the --queue-identifier ARN {self.addressing.arn}) does not exist: "
                            "create it, or give a name template so setup creates the queues"
                        ]
                    )
                arns[queue_type] = current.get("QueueArn") or str(self.addressing.arn_of(name))
                self._record("sqs queue", name, Outcome.GIVEN)
                self._ready.append((resource, self._queue_ready(sqs, name)))
                continue
            wanted = self._wanted_attributes(config, arns)
            if current is None:
                with aws_errors("CreateQueue", resource):
                    url = str(sqs.create_queue(QueueName=name, Attributes=wanted)["QueueUrl"])
                current = self._queue_attributes(sqs, name, url) or {}
                outcome = Outcome.CREATED
            else:
                assert url is not None
                changes = {k: v for k, v in wanted.items() if not self._same_attribute(k, current.get(k), v)}
                if changes:
                    with aws_errors("SetQueueAttributes", resource):
                        sqs.set_queue_attributes(QueueUrl=url, Attributes=changes)
                    outcome = Outcome.UPDATED
                else:
                    outcome = Outcome.PRESENT
            arn = current.get("QueueArn")
            if not arn:
                raise OrchestratorError(f"{resource} has no QueueArn attribute; run setup again")
            arns[queue_type] = arn
            self._record("sqs queue", name, outcome)
            self._ready.append((resource, self._queue_ready(sqs, name)))

    def _queue_ready(self, sqs: BotoClient, name: str) -> Callable[[], bool]:
        def ready() -> bool:
            url = self._queue_url(sqs, name)
            return url is not None and self._queue_attributes(sqs, name, url) is not None

        return ready

    def _worker_trigger_queue(self) -> tuple[str, str]:
        """The worker-trigger queue's name and ARN (it must exist)."""
        sqs = self._client("sqs", self.addressing.region)
        name = self.addressing.name_of(QueueType.WORKER_TRIGGER)
        url = self._queue_url(sqs, name)
        attributes = None if url is None else self._queue_attributes(sqs, name, url)
        if attributes is None or not attributes.get("QueueArn"):
            raise ConfigError(
                [f"SQS queue {name!r} (worker triggers) does not exist: run setup with --aws-sqs first (or too)"]
            )
        return name, attributes["QueueArn"]

    # -- SNS --------------------------------------------------------------------------------------

    def ensure_topic(self) -> None:
        topic = TopicRef.parse(self.config.topic_identifier, self.config.prefix)
        sns = self._client("sns", topic.region)
        if topic.arn is not None:
            arn = topic.arn
            resource = f"SNS topic {arn!r}"
            with aws_errors("GetTopicAttributes", resource):
                found = self._missing(lambda: sns.get_topic_attributes(TopicArn=arn), ("NotFound",))
            if found is None:
                raise ConfigError(
                    [f"{resource} (from the --topic-identifier ARN) does not exist: create it, or give a name"]
                )
            self._record("sns topic", arn, Outcome.GIVEN)
        else:
            name = topic.name
            resource = f"SNS topic {name!r}"

            def find() -> str | None:
                for page in sns.get_paginator("list_topics").paginate():
                    for item in page.get("Topics") or []:
                        if str(item["TopicArn"]).split(":")[-1] == name:
                            return str(item["TopicArn"])
                return None

            with aws_errors("ListTopics", resource):
                existing = find()
            if existing is None:
                with aws_errors("CreateTopic", resource):
                    arn = str(sns.create_topic(Name=name)["TopicArn"])
                self._record("sns topic", name, Outcome.CREATED)
            else:
                arn = existing
                self._record("sns topic", name, Outcome.PRESENT)
        self._ready.append(
            (f"SNS topic {arn!r}", lambda: bool(sns.get_topic_attributes(TopicArn=arn)["Attributes"] is not None))
        )

    # -- EventBridge ------------------------------------------------------------------------------

    def ensure_event_bridge(self) -> None:
        queue_name, queue_arn = self._worker_trigger_queue()
        expression = rate_expression(self.config.interval_s)
        if self.config.event_bridge_type == EventBridgeType.SCHEDULE:
            role_arn = self._ensure_role(queue_arn)
            for trigger in self.config.triggers:
                self._ensure_schedule(trigger, expression, queue_arn, role_arn)
        else:
            if self.addressing.managed:
                self._ensure_queue_policy(queue_name, queue_arn)
            for trigger in self.config.triggers:
                self._ensure_rule(trigger, expression, queue_arn)

    def _ensure_role(self, queue_arn: str) -> str:
        iam = self._client("iam")
        role = trigger_role_name(self.config.prefix)
        policy = trigger_policy_name(self.config.prefix)
        trust = {
            "Version": POLICY_VERSION,
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["scheduler.amazonaws.com", "events.amazonaws.com"]},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        permissions = {
            "Version": POLICY_VERSION,
            "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}],
        }
        resource = f"IAM role {role!r}"
        with aws_errors("GetRole", resource):
            current = self._missing(lambda: iam.get_role(RoleName=role), ("NoSuchEntity",))
        if current is None:
            with aws_errors("CreateRole", resource):
                created = iam.create_role(
                    RoleName=role,
                    AssumeRolePolicyDocument=json.dumps(trust),
                    Description="Lets EventBridge send the orchestrator's worker triggers to its SQS queue",
                )
            role_arn = str(created["Role"]["Arn"])
            role_outcome = Outcome.CREATED
        else:
            role_arn = str(current["Role"]["Arn"])
            if _same_document(current["Role"].get("AssumeRolePolicyDocument"), trust):
                role_outcome = Outcome.PRESENT
            else:
                with aws_errors("UpdateAssumeRolePolicy", resource):
                    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trust))
                role_outcome = Outcome.UPDATED
        self._record("iam role", role, role_outcome)

        policy_resource = f"IAM policy {policy!r} of role {role!r}"
        with aws_errors("GetRolePolicy", policy_resource):
            existing = self._missing(lambda: iam.get_role_policy(RoleName=role, PolicyName=policy), ("NoSuchEntity",))
        if existing is not None and _same_document(existing.get("PolicyDocument"), permissions):
            policy_outcome = Outcome.PRESENT
        else:
            with aws_errors("PutRolePolicy", policy_resource):
                iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(permissions))
            policy_outcome = Outcome.CREATED if existing is None else Outcome.UPDATED
        self._record("iam role policy", policy, policy_outcome)
        self._ready.append((resource, lambda: bool(iam.get_role(RoleName=role)["Role"]["Arn"])))

        changed = role_outcome != Outcome.PRESENT or policy_outcome != Outcome.PRESENT
        wait = self.config.iam_propagation_wait_s
        if wait is None:
            wait = 0.0 if custom_endpoint() else IAM_PROPAGATION_WAIT_S
        if changed and wait > 0:
            log.info("waiting %g s for IAM to propagate the role", wait)
            self._sleep(wait)
        return role_arn

    def _ensure_queue_policy(self, queue_name: str, queue_arn: str) -> None:
        """Let the triggers' EventBridge rules send to the worker-trigger queue (an SQS target needs it)."""
        arn = Arn.parse(queue_arn)
        if arn is None:
            raise OrchestratorError(f"SQS queue {queue_name!r} has an unexpected ARN {queue_arn!r}")
        rules = (
            f"arn:{arn.partition}:events:{arn.region}:{arn.account}:rule/{trigger_rule_name('', self.config.prefix)}*"
        )
        wanted = {
            "Version": POLICY_VERSION,
            "Statement": [
                {
                    "Sid": "mo-worker-triggers",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnLike": {"aws:SourceArn": rules}},
                }
            ],
        }
        sqs = self._client("sqs", self.addressing.region)
        url = self._queue_url(sqs, queue_name)
        assert url is not None  # _worker_trigger_queue found it
        current = (self._queue_attributes(sqs, queue_name, url) or {}).get("Policy")
        if current is not None and _same_document(current, wanted):
            outcome = Outcome.PRESENT
        else:
            with aws_errors("SetQueueAttributes", f"SQS queue {queue_name!r}"):
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(wanted)})
            outcome = Outcome.CREATED if current is None else Outcome.UPDATED
        self._record("sqs queue policy", queue_name, outcome)

    def _ensure_rule(self, trigger: str, expression: str, queue_arn: str) -> None:
        events = self._client("events")
        name = trigger_rule_name(trigger, self.config.prefix)
        resource = f"EventBridge rule {name!r}"
        target = {"Id": TARGET_ID, "Arn": queue_arn, "Input": json.dumps(trigger)}
        with aws_errors("DescribeRule", resource):
            current = self._missing(lambda: events.describe_rule(Name=name), ("ResourceNotFoundException",))
        changed = False
        if current is None or current.get("ScheduleExpression") != expression or current.get("State") != "ENABLED":
            with aws_errors("PutRule", resource):
                events.put_rule(
                    Name=name,
                    ScheduleExpression=expression,
                    State="ENABLED",
                    Description=f"orchestrator worker trigger {trigger}",
                )
            changed = True
        with aws_errors("ListTargetsByRule", resource):
            targets = events.list_targets_by_rule(Rule=name).get("Targets") or []
        ours = [t for t in targets if t.get("Id") == TARGET_ID]
        if not ours or any(t.get("Arn") != queue_arn or t.get("Input") != target["Input"] for t in ours):
            with aws_errors("PutTargets", resource):
                response = events.put_targets(Rule=name, Targets=[target])
            if response.get("FailedEntryCount"):
                raise OrchestratorError(f"PutTargets on {resource} failed: {response.get('FailedEntries')}")
            changed = True
        outcome = Outcome.CREATED if current is None else (Outcome.UPDATED if changed else Outcome.PRESENT)
        self._record("eventbridge rule", name, outcome)
        self._ready.append((resource, lambda: bool(events.describe_rule(Name=name)["Name"])))

    def _ensure_schedule(self, trigger: str, expression: str, queue_arn: str, role_arn: str) -> None:
        scheduler = self._client("scheduler")
        name = trigger_rule_name(trigger, self.config.prefix)
        resource = f"EventBridge schedule {name!r}"
        wanted: dict[str, Any] = {
            "Name": name,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {"Arn": queue_arn, "RoleArn": role_arn, "Input": trigger},
            "State": "ENABLED",
            "Description": f"orchestrator worker trigger {trigger}",
        }
        with aws_errors("GetSchedule", resource):
            current = self._missing(lambda: scheduler.get_schedule(Name=name), ("ResourceNotFoundException",))
        if current is None:
            self._retry_until_role_usable(resource, lambda: scheduler.create_schedule(**wanted), "CreateSchedule")
            outcome = Outcome.CREATED
        elif self._same_schedule(current, wanted):
            outcome = Outcome.PRESENT
        else:
            self._retry_until_role_usable(resource, lambda: scheduler.update_schedule(**wanted), "UpdateSchedule")
            outcome = Outcome.UPDATED
        self._record("eventbridge schedule", name, outcome)
        self._ready.append((resource, lambda: bool(scheduler.get_schedule(Name=name)["Name"])))

    @staticmethod
    def _same_schedule(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
        have_target = current.get("Target") or {}
        want_target = wanted["Target"]
        return bool(
            current.get("ScheduleExpression") == wanted["ScheduleExpression"]
            and current.get("ScheduleExpressionTimezone") == wanted["ScheduleExpressionTimezone"]
            and (current.get("FlexibleTimeWindow") or {}).get("Mode") == "OFF"
            and current.get("State") == wanted["State"]
            and all(have_target.get(k) == v for k, v in want_target.items())
        )

    def _retry_until_role_usable(self, resource: str, call: Callable[[], Any], action: str) -> None:
        """Scheduler refuses a role IAM has not propagated yet; try again until the timeout."""
        deadline = time.monotonic() + self.config.timeout_s
        while True:
            try:
                call()
                return
            except BotoCoreError as exc:
                raise_translated(exc, action=action, resource=resource)
            except ClientError as exc:
                message = str((exc.response.get("Error") or {}).get("Message") or "").lower()
                role_not_ready = error_code(exc) == "ValidationException" and "role" in message
                if not role_not_ready or time.monotonic() >= deadline:
                    raise_translated(exc, action=action, resource=resource)
                self._sleep(self.config.poll_interval_s)


_NOT_YET = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "404",
        "NoSuchBucket",
        "NotFound",
        "NoSuchEntity",
        "ResourceNotFoundException",
    }
)
"""Codes that mean "not there yet" during the readiness poll."""


def provision(config: AwsSetupConfig, aws: Aws, *, echo: Callable[[str], None] | None = None) -> list[ResourceReport]:
    """Provision what ``config`` asks for; returns a line per resource (created / already present /
    updated / given by ARN). Raises ``ConfigError`` for a bad name, a missing given resource or denied
    access, ``BackendUnavailable`` when AWS cannot be reached."""
    return AwsProvisioner(config, aws, echo=echo).run()
