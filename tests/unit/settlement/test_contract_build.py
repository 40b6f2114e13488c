"""The committed contract artifacts are exactly what scripts/build_contracts.py compiles from contracts/."""

from __future__ import annotations

import importlib.util
import shutil
import sys

from madara_orchestrator.settlement.contracts import ARTIFACTS_DIR, load_artifact
from tests.conftest import REPO_ROOT, require, require_tool


def _build_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("build_contracts", REPO_ROOT / "scripts" / "build_contracts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_contracts"] = module
    spec.loader.exec_module(module)
    return module


def test_committed_artifacts_match_a_fresh_build_byte_for_byte() -> None:
    require_tool("node")
    build = _build_module()
    require(build.SOLC_JS_DIR.is_dir(), "tools/node_modules/solc (make setup)")
    artifacts = build.compile_contracts()
    assert sorted(artifacts) == ["FactRegistry.json", "StarknetCore.json"]
    for name, data in artifacts.items():
        assert (ARTIFACTS_DIR / name).read_bytes() == data, f"{name} is stale: run scripts/build_contracts.py"


def test_artifacts_load_with_abi_and_bytecode() -> None:
    core = load_artifact("StarknetCore")
    names = {entry.get("name") for entry in core.abi}
    assert {
        "stateBlockNumber",
        "stateRoot",
        "stateBlockHash",
        "updateState",
        "updateStateKzgDA",
        "LogStateUpdate",
    } <= names
    assert len(core.bytecode) > 1000
    registry = load_artifact("FactRegistry")
    assert {"registerFact", "isValid", "FactRegistered"} <= {entry.get("name") for entry in registry.abi}


def test_a_changed_source_is_detected(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    require_tool("node")
    build = _build_module()
    require(build.SOLC_JS_DIR.is_dir(), "tools/node_modules/solc (make setup)")
    contracts = tmp_path / "contracts"
    shutil.copytree(build.CONTRACTS_DIR, contracts)
    source = contracts / "FactRegistry.sol"
    source.write_text(source.read_text().replace("factCount += 1;", "factCount += 2;"))
    monkeypatch.setattr(build, "CONTRACTS_DIR", contracts)
    changed = build.compile_contracts()
    assert changed["FactRegistry.json"] != (ARTIFACTS_DIR / "FactRegistry.json").read_bytes()
    assert changed["StarknetCore.json"] == (ARTIFACTS_DIR / "StarknetCore.json").read_bytes()
