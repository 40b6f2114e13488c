"""The anvil launcher's configuration and its error when the binary is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from madara_orchestrator.devnet.anvil import ANVIL_BIN_ENV, Anvil, AnvilConfig, find_anvil_binary
from madara_orchestrator.domain.errors import ConfigError


def test_missing_binary_is_a_clear_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANVIL_BIN_ENV, str(tmp_path / "no-anvil"))
    with pytest.raises(ConfigError, match=r"anvil binary not found .*make setup.*MADARA_ORCHESTRATOR_ANVIL_BIN"):
        find_anvil_binary()
    with pytest.raises(ConfigError):
        Anvil(AnvilConfig()).start()


def test_env_var_overrides_the_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "anvil"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(ANVIL_BIN_ENV, str(fake))
    assert find_anvil_binary() == fake
    from madara_orchestrator.domain.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="exited with code 3"):
        Anvil(AnvilConfig()).start(timeout_s=5)


def test_config_arguments() -> None:
    args = AnvilConfig(hardfork="osaka", chain_id=5, block_time_s=0.5).args()
    assert args[:4] == ["--host", "127.0.0.1", "--port", "0"]
    assert ["--hardfork", "osaka"] == args[4:6] and "--chain-id" in args and "0.5" in args
    assert "--no-mining" in AnvilConfig(no_mining=True, block_time_s=1).args()
    assert "--block-time" not in AnvilConfig(no_mining=True, block_time_s=1).args()
    with pytest.raises(ConfigError, match="unsupported anvil hardfork 'london'"):
        AnvilConfig(hardfork="london").args()
