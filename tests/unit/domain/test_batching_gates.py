"""The gates in front of each block (pure decisions, domain/batching.py): the version gate (SPEC §5.3) and
the replay-bounds comparison (§5.9), and what a stop means (wait or operator, alert text, error kind).

The known versions are written out from the SPEC, not read back from the code."""

from __future__ import annotations

import pytest

from madara_orchestrator.domain.batching import (
    BatchingStopped,
    BatchingWaits,
    Hold,
    HoldKind,
    StarknetVersions,
    check_block_hash,
    encoded_as,
    reference_unavailable,
    version_numbers,
)
from madara_orchestrator.domain.errors import BackendUnavailable, outage_cause

SPEC_KNOWN = ["0.13.2", "0.13.3", "0.13.4", "0.13.5", "0.14.0", "0.14.1", "0.14.2"]
HASH = "0x2db2eb6d9e17eedb701b143afccdeeb8a37f6a07822224eff6977d7b7255ebc"
OTHER = "0x2db2eb6d9e17eedb701b143afccdeeb8a37f6a07822224eff6977d7b7255ebd"


# -- versions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.14.2", (0, 14, 2)),
        ("0.14", (0, 14, 0)),
        ("0.14.0.0", (0, 14, 0)),
        ("0.13.2.1", (0, 13, 2, 1)),
        (" v0.13.5 ", (0, 13, 5)),
        ("", None),
        ("latest", None),
        ("0", None),
        ("0.14.x", None),
        ("0.14.2-rc1", None),
        ("1.2.3.4.5", None),
    ],
)
def test_version_numbers(text: str, expected: tuple[int, ...] | None) -> None:
    assert version_numbers(text) == expected


@pytest.mark.parametrize("version", SPEC_KNOWN)
def test_every_known_version_is_batched(version: str) -> None:
    assert StarknetVersions().check(12, version) is None


@pytest.mark.parametrize("version", ["0.99.0", "0.14.3", "0.15.0", "0.13.1", "0.13.2.1", "1.0.0", "", "latest"])
def test_any_other_version_stops_batching_before_its_block(version: str) -> None:
    hold = StarknetVersions().check(12, version)
    assert hold is not None
    assert (hold.kind, hold.block, hold.version) == (HoldKind.UNKNOWN_VERSION, 12, version)
    assert not hold.waits and hold.closes_open_batches
    assert hold.detail == "known: " + ", ".join(SPEC_KNOWN)


def test_the_same_version_written_otherwise_is_the_same_version() -> None:
    assert StarknetVersions().check(1, "0.14") is None
    assert StarknetVersions().check(1, "0.14.0.0") is None


def test_allowed_versions_are_batched_besides_the_known_ones() -> None:
    versions = StarknetVersions.parse("0.14.3, 0.99.0 1.0")
    assert versions.allowed == ("0.14.3", "0.99.0", "1.0")
    assert versions.problems() == []
    for version in ("0.14.3", "0.99.0", "1.0.0", "0.14.2", "0.13.2"):
        assert versions.check(3, version) is None, version
    hold = versions.check(3, "0.14.4")
    assert hold is not None and hold.detail.endswith("; allowed: 0.14.3, 0.99.0, 1.0")


def test_allowing_something_that_is_not_a_version_is_a_problem() -> None:
    assert StarknetVersions.parse(None).allowed == ()
    assert StarknetVersions.parse("0.14.3,latest,,0.15.x").problems() == [
        "'latest' is not a Starknet version (expected e.g. 0.14.3)",
        "'0.15.x' is not a Starknet version (expected e.g. 0.14.3)",
    ]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        *((v, v) for v in SPEC_KNOWN),
        ("0.14.3", "0.14.2"),
        ("0.99.0", "0.14.2"),
        ("1.0.0", "0.14.2"),
        ("0.13.3.1", "0.13.3"),
        ("0.13.6", "0.13.5"),
        ("0.13.1", "0.13.2"),
        ("0.12.0", "0.13.2"),
        ("latest", None),
    ],
)
def test_an_allowed_unknown_version_is_encoded_as_the_nearest_lower_known_one(
    version: str, expected: str | None
) -> None:
    assert encoded_as(version) == expected


# -- replay bounds ------------------------------------------------------------------------------------


def header(block_hash: str | None = HASH, status: str = "ACCEPTED_ON_L2") -> dict[str, object]:
    found: dict[str, object] = {"status": status, "block_number": 7}
    if block_hash is not None:
        found["block_hash"] = block_hash
    return found


@pytest.mark.parametrize("reference", [HASH, HASH.upper().replace("0X", "0x"), "0x000" + HASH[2:]])
def test_the_same_hash_passes_however_it_is_written(reference: str) -> None:
    assert check_block_hash(7, header(), header(reference)) is None


def test_another_hash_at_the_reference_stops_batching_before_the_block() -> None:
    hold = check_block_hash(7, header(), header(OTHER))
    assert hold is not None
    assert (hold.kind, hold.block, hold.hashes) == (HoldKind.HASH_MISMATCH, 7, (HASH, OTHER))
    assert not hold.waits and not hold.closes_open_batches
    assert hold.describe() == (
        f"batching stopped before block 7: replay bounds: block hash {HASH} at the sequencer, {OTHER} at the reference"
    )


@pytest.mark.parametrize(
    "reference",
    [header(status="PENDING"), header(status="PRE_CONFIRMED"), header(block_hash=None), header("0xnothex"), ["x"]],
    ids=["pending", "pre-confirmed", "no-hash", "bad-hash", "not-a-block"],
)
def test_a_reference_that_cannot_tell_is_waited_for(reference: object) -> None:
    hold = check_block_hash(7, header(), reference)
    assert hold is not None and hold.kind == HoldKind.REFERENCE_UNAVAILABLE and hold.block == 7
    assert hold.waits and not hold.closes_open_batches


def test_a_reference_failure_is_told_without_its_url_secrets() -> None:
    hold = reference_unavailable(
        9, "BackendUnavailable: https://user:pw@node.example/v3/0123456789abcdef01?key=k1 down"
    )
    assert hold.detail == "BackendUnavailable: https://node.example down"
    assert hold.describe() == (
        "batching stopped before block 9: replay bounds: the reference node cannot give block 9 "
        "(BackendUnavailable: https://node.example down)"
    )


# -- what a stop is -------------------------------------------------------------------------------------


def test_a_wait_is_an_outage_and_the_others_are_not() -> None:
    wait = reference_unavailable(3, "down").error(progressed=True)
    assert isinstance(wait, BatchingWaits) and isinstance(wait, BackendUnavailable)
    assert outage_cause(wait) is wait and wait.progressed
    for hold in (StarknetVersions().check(3, "0.99.0"), check_block_hash(3, header(), header(OTHER))):
        assert hold is not None
        stop = hold.error(progressed=False)
        assert type(stop) is BatchingStopped and outage_cause(stop) is None and not stop.progressed
        assert str(stop) == hold.describe()


def test_the_mismatch_alert_names_the_block_both_hashes_and_the_way_out() -> None:
    hold = check_block_hash(7, header(), header(OTHER))
    assert hold is not None
    subject, message = hold.alert()
    assert subject == "Batching stopped before block 7: block hash differs from the reference node"
    assert HASH in message and OTHER in message and "block 7" in message
    assert "once the two agree" in message and "remove --replay-bounds-rpc-url" in message


def test_the_version_alert_names_the_block_the_version_and_how_to_allow_it() -> None:
    hold = StarknetVersions().check(8, "0.99.0")
    assert hold is not None
    subject, message = hold.alert()
    assert subject == "Batching stopped before block 8: unknown Starknet version '0.99.0'"
    assert "--allow-starknet-versions 0.99.0" in message and "encoded like 0.14.2 blocks" in message
    garbage = Hold(kind=HoldKind.UNKNOWN_VERSION, block=8, version="latest")
    assert "--allow-starknet-versions" not in garbage.alert()[1]
