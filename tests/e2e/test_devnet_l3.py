"""``orchestrator devnet --layer l3``: an L3 settles on the Starknet double, as a real process, to its summary.

Every stage runs for real except what cannot run here (SNOS, Atlantic, a Starknet node): the sequencer's
blocks are batched, proven by the mock Atlantic server (Stone-shaped proofs), each proof verified "on the
L2" (the mock registers the bridge fact with a signed invoke), the state diff encoded for DA, and each
SNOS batch settled with a v3 ``update_state`` invoke that the double checks (signature, nonce, fact,
block continuity)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.test_devnet_command import orchestrator


@pytest.mark.slow
def test_l3_devnet_settles_its_blocks_on_the_l2_double(tmp_path: Path) -> None:
    proc = orchestrator(
        "devnet",
        "--layer",
        "l3",
        "--blocks",
        "30",
        "--block-time",
        "0.05",
        "--tx-per-block",
        "20",
        "--max-batch-size",
        "8",
        "--port",
        "0",
        "--timeout",
        "240",
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    lines = out.strip().splitlines()
    assert re.fullmatch(r"settled 30 blocks in \d+\.\d s", lines[-1]), lines[-1]
    assert any(line.startswith("local L2 (Starknet JSON-RPC double): http://127.0.0.1:") for line in lines), lines
    stages = {line.split()[0]: line for line in lines if re.match(r"(snos|proven|registered|da|settled) +\d", line)}
    assert set(stages) == {"snos", "proven", "registered", "da", "settled"}, lines
    invokes = [line for line in lines if line.startswith("update_state invokes:")]
    # 30 blocks in batches of at most 8: at least 4 settlements, one invoke each, none sent twice.
    match = re.match(r"update_state invokes: (\d+) settled \((\d+) signed\), fee paid: \d+\.\d{6} STRK", invokes[0])
    assert match, lines
    settled, signed = int(match.group(1)), int(match.group(2))
    assert settled >= 4 and signed == settled, lines
    data = tmp_path / "data" / "objects"
    assert (data / "1" / "proof.json").exists() and (data / "1" / "proof_part2.json").exists()
    assert (data / "1" / "blob_data.txt").stat().st_size % 131072 == 0
