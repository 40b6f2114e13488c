"""The devnet progress line: every field is ``label value``, in the same style."""

from __future__ import annotations

import io

from madara_orchestrator.cli.devnet import Progress, progress_line

DONE = {"snos": 3, "proven": 3, "aggregated": 1, "settled": 1}
OPEN = "open batch 2: 5 blocks, 1,234/24,561 felts"


def test_every_field_is_a_label_and_a_value() -> None:
    line = progress_line(head=12, done=DONE, settled_blocks=10, open_batch=OPEN, failed=0)
    assert line == (
        "head 12 | snos 3 | proven 3 | aggregated 1 | settled 1 (blocks 0-9) | "
        "open batch 2: 5 blocks, 1,234/24,561 felts"
    )


def test_nothing_settled_yet_and_failures_follow_the_same_style() -> None:
    done = {"snos": 0, "proven": 0, "aggregated": 0, "settled": 0}
    line = progress_line(head=0, done=done, settled_blocks=0, open_batch="no open batch", failed=2)
    assert line == "head 0 | snos 0 | proven 0 | aggregated 0 | settled 0 | no open batch | failed 2"
    one = progress_line(head=1, done={**done, "settled": 1}, settled_blocks=1, open_batch="no open batch", failed=0)
    assert "| settled 1 (block 0) |" in one


def test_progress_on_a_pipe_prints_whole_lines() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress.show("head 1 | snos 0")
    progress.show("head 2 | snos 0")  # within the second: not repeated on a pipe
    progress.show("head 2 | snos 1", final=True)
    assert out.getvalue().splitlines() == ["head 1 | snos 0", "head 2 | snos 1"]
