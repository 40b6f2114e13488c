"""``classify``: the one place an exception is sorted, and what it says to a caller that fails fast on
anything that is not temporary (the SnosRun handler, the sweep of orphaned prover buckets)."""

from __future__ import annotations

import pytest

from madara_orchestrator.domain.errors import (
    BackendUnavailable,
    FailureKind,
    InvalidInput,
    JobError,
    NotFound,
    Retryable,
    RpcError,
    classify,
)


class PendingBlockLike(InvalidInput, Retryable):
    """Input that is not good yet (as ``starknet.state_update.PendingBlock``)."""


def raised_from(cause: BaseException, exc: Exception) -> Exception:
    try:
        raise exc from cause
    except Exception as raised:
        return raised


CASES = [
    # (error, kind, temporary, expected)
    (BackendUnavailable("db down"), FailureKind.OUTAGE, True, False),
    (raised_from(BackendUnavailable("db down"), NotFound("x")), FailureKind.OUTAGE, True, False),
    (Retryable("block not there yet"), FailureKind.RETRY, True, False),
    (PendingBlockLike("block 7 is pending"), FailureKind.RETRY, True, False),
    (InvalidInput("bad"), FailureKind.RETRY, False, False),
    (RpcError(24, "Block not found"), FailureKind.RETRY, False, False),
    (RuntimeError("bug"), FailureKind.RETRY, False, False),
    (JobError("own"), FailureKind.RETRY, False, True),
    (JobError("own", retryable=False), FailureKind.FINAL, False, True),
    (JobError("fees above the cap", wait_s=30), FailureKind.WAIT, False, True),
    (raised_from(Retryable("later"), JobError("verdict", retryable=False)), FailureKind.FINAL, False, True),
    (raised_from(BackendUnavailable("l1"), JobError("own", retryable=False)), FailureKind.OUTAGE, True, True),
]


@pytest.mark.parametrize(("error", "kind", "temporary", "expected"), CASES, ids=lambda v: repr(v)[:40])
def test_classify(error: Exception, kind: FailureKind, temporary: bool, expected: bool) -> None:
    failure = classify(error)
    assert failure.kind is kind
    assert failure.temporary is temporary
    assert failure.expected is expected
    assert failure.is_outage is (kind is FailureKind.OUTAGE)
    assert (failure.outage is not None) is (kind is FailureKind.OUTAGE)
