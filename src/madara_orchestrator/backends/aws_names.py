"""Names and addresses of the AWS resources (SPEC §3.2, §10, §13, §18): pure functions, no API calls.

Each identifier (``--queue-identifier``, ``--bucket-identifier``, ``--topic-identifier``) is either an ARN,
used as given (the prefix is ignored, the ARN's region wins over the configured one), or a name that
``--aws-prefix`` extends. The prefix joins with ``_`` for SQS queues and SNS topics and with ``-`` for the S3
bucket, EventBridge rules and schedules, and the IAM role and policy, as in the original.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from madara_orchestrator.domain.errors import ConfigError
from madara_orchestrator.domain.queues import QueueNames, QueueType


class EventBridgeType(enum.StrEnum):
    RULE = "rule"
    """EventBridge rules (``PutRule`` + ``PutTargets``): for LocalStack and moto."""
    SCHEDULE = "schedule"
    """EventBridge Scheduler (``CreateSchedule``, UTC, no flexible window, a role): for AWS."""


DEFAULT_QUEUE_IDENTIFIER = "mo_{}_queue"
DEFAULT_BUCKET_IDENTIFIER = "mo-bucket"
DEFAULT_TOPIC_IDENTIFIER = "alerts"

_REGIONLESS_SERVICES = ("s3", "iam")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_EVENT_BRIDGE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Arn:
    """``arn:<partition>:<service>:<region>:<account>:<resource>``."""

    partition: str
    service: str
    region: str
    account: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> Arn | None:
        """The ARN in ``text``, or None when it is not one (then it is a name).

        An ARN has six colon-separated parts (the resource may hold more colons), starts with ``arn``, and
        has a partition, a service and a resource; region and account are required except for s3 and iam
        (SPEC §3.2)."""
        parts = text.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn":
            return None
        _, partition, service, region, account, resource = parts
        if not partition or not service or not resource:
            return None
        if service not in _REGIONLESS_SERVICES and (not region or not account):
            return None
        return cls(partition=partition, service=service, region=region, account=account, resource=resource)

    def __str__(self) -> str:
        return f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:{self.resource}"


def _arn_of_service(identifier: str, service: str, flag: str) -> Arn | None:
    arn = Arn.parse(identifier)
    if arn is None:
        if identifier.startswith("arn:"):
            raise ConfigError(
                [f"{flag}: {identifier!r} looks like an ARN but is not one (arn:aws:{service}:region:account:name)"]
            )
        return None
    if arn.service != service:
        raise ConfigError([f"{flag}: {identifier!r} is an ARN of service {arn.service!r}, expected {service!r}"])
    return arn


def _dns_suffix(partition: str) -> str:
    return "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"


# --------------------------------------------------------------------------------------------------
# SQS


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAddressing:
    """Where the queues are (SPEC §3.2).

    - A name template: ``{}`` is replaced by the queue's token (``mo_{}_queue`` →
      ``mo_snos_job_processing_queue``), and with a prefix the template becomes ``<prefix>_<template>``.
      Queue URLs are resolved with ``GetQueueUrl`` (once per queue; ``SqsQueue`` caches them).
    - An ARN ``arn:aws:sqs:<region>:<account>:<template>``: the ARN's resource is the template (no prefix);
      URLs are ``https://sqs.<region>.amazonaws.com/<account>/<name>`` with no API call, and the SQS client
      works in the ARN's region. Setup creates nothing then.
    """

    names: QueueNames
    arn: Arn | None = None

    @classmethod
    def parse(cls, identifier: str = DEFAULT_QUEUE_IDENTIFIER, prefix: str | None = None) -> QueueAddressing:
        arn = _arn_of_service(identifier, "sqs", "--queue-identifier")
        template = arn.resource if arn is not None else identifier
        if "{}" not in template:
            raise ConfigError([f"--queue-identifier must contain '{{}}' (the queue's token), got {identifier!r}"])
        if arn is not None:
            return cls(names=QueueNames(template=template, prefix=None), arn=arn)
        return cls(names=QueueNames(template=template, prefix=prefix or None))

    @property
    def region(self) -> str | None:
        """The region the SQS client must use: the ARN's, or None for the configured one."""
        return self.arn.region if self.arn is not None else None

    @property
    def managed(self) -> bool:
        """Whether setup creates the queues (a name template) or only checks them (an ARN)."""
        return self.arn is None

    def name_of(self, queue_type: QueueType) -> str:
        return self.names.of(queue_type)

    def url_of(self, name: str) -> str | None:
        """The queue URL derived from the ARN, or None when it must be looked up (a name template)."""
        if self.arn is None:
            return None
        return f"https://sqs.{self.arn.region}.{_dns_suffix(self.arn.partition)}/{self.arn.account}/{name}"

    def arn_of(self, name: str) -> str | None:
        """The queue ARN derived from the ARN template, or None when it must be looked up."""
        if self.arn is None:
            return None
        return f"arn:{self.arn.partition}:sqs:{self.arn.region}:{self.arn.account}:{name}"


# --------------------------------------------------------------------------------------------------
# S3


def bucket_name(identifier: str = DEFAULT_BUCKET_IDENTIFIER, prefix: str | None = None) -> str:
    """The bucket (SPEC §10): an ARN's resource (``arn:aws:s3:::<bucket>``), or ``<prefix>-<identifier>``
    (``<identifier>`` without a prefix). The result must be a valid S3 bucket name (3-63 characters:
    lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit)."""
    arn = _arn_of_service(identifier, "s3", "--bucket-identifier")
    name = arn.resource if arn is not None else (f"{prefix}-{identifier}" if prefix else identifier)
    if not _BUCKET_NAME.match(name) or ".." in name:
        raise ConfigError(
            [
                f"S3 bucket name {name!r} (from --aws-prefix and --bucket-identifier) is not valid: 3-63 characters, "
                "lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
            ]
        )
    return name


def bucket_is_given(identifier: str) -> bool:
    """Whether the bucket was given by ARN (setup then creates nothing, SPEC §18)."""
    return _arn_of_service(identifier, "s3", "--bucket-identifier") is not None


# --------------------------------------------------------------------------------------------------
# SNS


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicRef:
    """The alerts topic (SPEC §13): by ARN (used as given; its region wins) or by name, resolved to its
    ARN with ``ListTopics``."""

    name: str
    arn: str | None = None
    region: str | None = None

    @classmethod
    def parse(cls, identifier: str = DEFAULT_TOPIC_IDENTIFIER, prefix: str | None = None) -> TopicRef:
        """A name becomes ``<prefix>_<identifier>`` with a prefix; it must match ``[A-Za-z0-9_-]{1,256}``."""
        arn = _arn_of_service(identifier, "sns", "--topic-identifier")
        if arn is not None:
            return cls(name=arn.resource, arn=str(arn), region=arn.region)
        name = f"{prefix}_{identifier}" if prefix else identifier
        if not _TOPIC_NAME.match(name):
            raise ConfigError(
                [
                    f"SNS topic name {name!r} (from --aws-prefix and --topic-identifier) is not valid: 1-256 letters, "
                    "digits, '_' or '-'"
                ]
            )
        return cls(name=name)


# --------------------------------------------------------------------------------------------------
# EventBridge and IAM


def _dash_prefix(prefix: str | None) -> str:
    return f"{prefix}-" if prefix else ""


def _checked_event_bridge_name(name: str, what: str) -> str:
    if not _EVENT_BRIDGE_NAME.match(name):
        raise ConfigError(
            [f"{what} name {name!r} (from --aws-prefix) is not valid: at most 64 letters, digits, '.', '_' or '-'"]
        )
    return name


def trigger_rule_name(trigger: str, prefix: str | None = None) -> str:
    """The EventBridge rule or schedule of a trigger: ``<prefix>-mo-wt-rule-<trigger lowercased>``."""
    return _checked_event_bridge_name(f"{_dash_prefix(prefix)}mo-wt-rule-{trigger.lower()}", "EventBridge rule")


def trigger_role_name(prefix: str | None = None) -> str:
    """The IAM role EventBridge Scheduler assumes to send to the worker-trigger queue: ``<prefix>-mo-wt-role``.

    One fixed name (the original adds 4 random hex digits and makes a new role on every run)."""
    return _checked_event_bridge_name(f"{_dash_prefix(prefix)}mo-wt-role", "IAM role")


def trigger_policy_name(prefix: str | None = None) -> str:
    """The role's inline policy allowing ``sqs:SendMessage`` to the worker-trigger queue:
    ``<prefix>-mo-wt-policy`` (fixed, like the role)."""
    return _checked_event_bridge_name(f"{_dash_prefix(prefix)}mo-wt-policy", "IAM policy")


_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60))


def rate_expression(interval_s: float) -> str:
    """``rate(N unit)`` for EventBridge (SPEC §4.2): the largest whole unit among days, hours and minutes,
    pluralised (60 → ``rate(1 minute)``, 7200 → ``rate(2 hours)``, 90·60 → ``rate(90 minutes)``).

    EventBridge rates are whole minutes, at least one: other intervals are refused (the original also
    produces ``rate(N seconds)``, which AWS rejects)."""
    if interval_s <= 0 or interval_s != int(interval_s) or int(interval_s) % 60:
        raise ConfigError(
            [
                "--interval-seconds must be a positive multiple of 60 (EventBridge rates are whole minutes), "
                f"got {interval_s:g}"
            ]
        )
    seconds = int(interval_s)
    for unit, size in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"rate({count} {unit}{'' if count == 1 else 's'})"
    raise AssertionError("unreachable: every multiple of 60 is whole minutes")
