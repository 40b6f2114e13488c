"""How deep the heaviest property tests search.

The suite (``make test``) runs each of them with a third of its full example count, so that the whole
suite stays within its time; ``MADARA_TEST_DEPTH=deep`` (``make test-deep``: before a release, or after a
change to batching or compression) runs the full count. Both draw from the same strategies and check the
same properties: only how many cases are tried changes.
"""

from __future__ import annotations

import os


def deep() -> bool:
    return os.environ.get("MADARA_TEST_DEPTH", "").lower() == "deep"


def examples(full: int) -> int:
    """``full`` cases under ``MADARA_TEST_DEPTH=deep``, else a third of them (at least 25)."""
    return full if deep() else max(25, full // 3)
