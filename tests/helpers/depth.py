"""How deep the heaviest property tests search, and how long the kill -9 chaos tests run.

The suite (``make test``) runs each property test with a third of its full example count, and each chaos
test with fewer blocks and kills (``chaos``), so that the whole suite stays within its time;
``MADARA_TEST_DEPTH=deep`` (``make test-deep``: before a release, or after a change to batching,
compression, leases or settlement) runs the full counts. Both draw from the same strategies and check the
same properties: only how many cases, blocks or kills are tried changes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


def deep() -> bool:
    return os.environ.get("MADARA_TEST_DEPTH", "").lower() == "deep"


def examples(full: int) -> int:
    """``full`` cases under ``MADARA_TEST_DEPTH=deep``, else a third of them (at least 25)."""
    return full if deep() else max(25, full // 3)


def chaos(full: int, default: int) -> int:
    """A chaos test's count (blocks, kills, seeds): ``full`` under ``MADARA_TEST_DEPTH=deep``, else ``default``."""
    return full if deep() else default


def chaos_seeds(full: Sequence[int], default: int) -> list[int]:
    """A chaos test's seeds: all of ``full`` under ``MADARA_TEST_DEPTH=deep``, else the first ``default``."""
    return list(full) if deep() else list(full[:default])
