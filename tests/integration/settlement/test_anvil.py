"""anvil starts on 127.0.0.1 on a free port with the asked hardfork and chain id, and stops cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from madara_orchestrator.devnet.anvil import AnvilConfig
from tests.integration.settlement.conftest import start_anvil


@pytest.mark.parametrize("hardfork", ["prague", "osaka"])
def test_anvil_starts_answers_and_stops(tmp_path: Path, hardfork: str) -> None:
    first = start_anvil(tmp_path, AnvilConfig(hardfork=hardfork, chain_id=4242, block_time_s=0.2))
    second = start_anvil(tmp_path, AnvilConfig(hardfork=hardfork))
    try:
        assert first.url.startswith("http://127.0.0.1:") and first.port != second.port
        assert int(first.rpc("eth_chainId"), 16) == 4242
        assert int(second.rpc("eth_chainId"), 16) == 31337
        block = first.rpc("eth_getBlockByNumber", ["latest", False])
        assert "blobGasUsed" in block and "requestsHash" in block  # Prague and later headers
        proc_pid = first.pid
        assert proc_pid is not None
    finally:
        first.stop()
        second.stop()
    assert first.pid is None
    with pytest.raises(RuntimeError):
        _ = first.url
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(proc_pid, 0)
