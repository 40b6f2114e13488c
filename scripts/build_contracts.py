#!/usr/bin/env python3
"""Compile the devnet contracts (contracts/*.sol) into committed ABI + bytecode JSON files.

Reproducible: solc-js pinned by tools/package-lock.json (version checked below), fixed optimizer
settings, fixed source unit names, no metadata hash appended to the bytecode. Run it after editing a
contract, then commit the JSON files:

    make setup                                # installs tools/node_modules (npm ci)
    .venv/bin/python scripts/build_contracts.py

``--check`` compiles into memory and exits 1 if a committed JSON file differs from the result
(tests/unit/settlement/test_contract_build.py does the same comparison).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = REPO_ROOT / "contracts"
OUT_DIR = REPO_ROOT / "src" / "madara_orchestrator" / "settlement" / "contracts"
SOLC_JS_DIR = REPO_ROOT / "tools" / "node_modules" / "solc"
SOLC_VERSION = "0.8.30"
CONTRACTS = {"FactRegistry": "FactRegistry.sol", "StarknetCore": "StarknetCore.sol"}
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
}

_NODE_COMPILE = """
const solc = require(process.argv[1]);
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(solc.compile(input))}));
});
"""


class BuildError(RuntimeError):
    pass


def compile_contracts() -> dict[str, bytes]:
    """Compile every contract; returns {file name: JSON bytes as committed}."""
    if not SOLC_JS_DIR.is_dir():
        raise BuildError(f"solc-js not found at {SOLC_JS_DIR}: run `make setup` (npm ci --prefix tools) first")
    sources = {f"contracts/{name}": (CONTRACTS_DIR / name).read_text() for name in sorted(set(CONTRACTS.values()))}
    standard_input = {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sources.items()},
        "settings": SETTINGS,
    }
    proc = subprocess.run(
        ["node", "-e", _NODE_COMPILE, str(SOLC_JS_DIR)],
        input=json.dumps(standard_input, sort_keys=True),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        raise BuildError(f"solc-js failed (exit {proc.returncode}): {proc.stderr.strip()}")
    result = json.loads(proc.stdout)
    if not str(result["version"]).startswith(SOLC_VERSION + "+"):
        raise BuildError(f"solc-js is {result['version']}, expected {SOLC_VERSION}: run `npm ci --prefix tools`")
    output = result["output"]
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("compilation failed:\n" + "\n".join(e["formattedMessage"] for e in errors))
    artifacts: dict[str, bytes] = {}
    for name, file_name in CONTRACTS.items():
        unit = f"contracts/{file_name}"
        compiled = output["contracts"][unit][name]
        artifact = {
            "contractName": name,
            "sourceUnit": unit,
            "sourceSha256": hashlib.sha256(sources[unit].encode()).hexdigest(),
            "compiler": {"solc": result["version"], "settings": SETTINGS},
            "abi": compiled["abi"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
        }
        artifacts[f"{name}.json"] = (json.dumps(artifact, indent=2, sort_keys=True) + "\n").encode()
    return artifacts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    try:
        artifacts = compile_contracts()
    except BuildError as exc:
        print(f"build_contracts: {exc}", file=sys.stderr)
        return 2
    stale = []
    for file_name, data in artifacts.items():
        path = OUT_DIR / file_name
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(file_name)
        else:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    if stale:
        print(f"build_contracts: out of date: {', '.join(stale)}; run scripts/build_contracts.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
