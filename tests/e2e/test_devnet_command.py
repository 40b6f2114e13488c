"""The README's main job: ``orchestrator devnet --blocks N`` as a real process, to its summary line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def orchestrator(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "madara_orchestrator.cli.main", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_devnet_settles_n_blocks_and_ends_with_the_summary_line(tmp_path: Path) -> None:
    proc = orchestrator(
        "devnet",
        "--blocks",
        "6",
        "--block-time",
        "0.1",
        "--port",
        "0",
        "--timeout",
        "90",
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    assert re.fullmatch(r"settled 6 blocks in \d+\.\d s", lines[-1]), lines[-1]
    assert any(line.startswith("devnet sequencer: http://127.0.0.1:") for line in lines)
    assert any(line.startswith("local L1 (anvil, prague): http://127.0.0.1:") for line in lines)
    fees = [line for line in lines if line.startswith("blob transactions:")]
    # Six blocks fit one batch: one settlement carries them all (the tail batch is closed at --blocks).
    assert fees and re.match(r"blob transactions: 1 settled \(1 signed\), fee paid: \d+\.\d{6} ETH", fees[0]), lines
    batches = [line for line in lines if line.startswith("batches:")]
    assert batches and batches[0].startswith("batches: 1 settled, 6.0 blocks per settlement"), lines
    assert any(re.fullmatch(r"fee per settled block: \d+\.\d{9} ETH \(\d+ wei\)", line) for line in lines), lines
    assert any(line.startswith("settled ") and "hand-off" not in line for line in lines)
    assert (tmp_path / "data" / "orchestrator.db").exists()
    assert (tmp_path / "data" / "objects" / "1" / "cairo_pie.zip").exists()
    assert (tmp_path / "data" / "objects" / "artifacts" / "batch" / "1" / "da_blob.json").exists()


def test_devnet_without_blocks_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc = orchestrator("devnet", "--block-time", "0.1", "--port", "0", "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:  # wait for the start-up banner, then let it settle a few blocks
        seen.append(line)
        if line.startswith("data directory:"):
            break
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert re.search(r"stopped: settled \d+ blocks in \d+\.\d s", out), "".join(seen) + out[-500:]
    assert "Traceback" not in err
