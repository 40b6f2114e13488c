"""The house rules of the code's layout (README, "How it works"), read from the source's import statements.

- ``domain/`` imports nothing of ours; ``interfaces.py`` only the domain.
- ``engine/`` and ``jobs/`` import the domain, the interfaces, each other and the pure part of ``starknet/``
  (never its network clients), and no adapter.
- ``devnet/`` (every double) is a leaf: only ``cli/`` (the composition root) and the tests import it.
- No function in ``src/`` is longer than 100 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "madara_orchestrator"
ROOT = Path(__file__).resolve().parents[2] / "src" / PACKAGE
STARKNET_CLIENTS = {"rpc", "feeder", "retried_http"}
"""The modules of ``starknet/`` that talk to a node: adapters, whatever their folder."""
MAX_FUNCTION_LINES = 100


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(p for p in parts if p != "__init__"), path


def imported(path: Path) -> set[str]:
    """Every module of ours ``path`` imports, at the top or inside a function, relative to the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            # ``from madara_orchestrator import x``: a module of ours, or a name of the package's root
            names = [
                f"{PACKAGE}.{a.name}"
                for a in node.names
                if (ROOT / a.name).exists() or (ROOT / f"{a.name}.py").exists()
            ]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                found.add(name.removeprefix(PACKAGE).lstrip("."))
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def allowed(importer: str, target: str) -> bool:
    layer, what = top(importer), top(target)
    if layer == "domain":
        return what == "domain"
    if importer == "interfaces":
        return what == "domain"
    if layer in ("engine", "jobs"):
        if what == "starknet":
            return target.split(".")[1] not in STARKNET_CLIENTS
        return what in ("domain", "interfaces", "engine", "jobs")
    if what == "devnet":
        return layer in ("devnet", "cli")
    return True


def test_the_layers_import_only_what_they_may() -> None:
    broken = [
        f"{module} imports {target}"
        for module, path in modules()
        for target in sorted(imported(path))
        if not allowed(module, target)
    ]
    assert broken == [], "\n".join(broken)


def test_the_rules_catch_what_they_forbid() -> None:
    assert not allowed("domain.jobs", "engine.service")
    assert not allowed("interfaces", "backends.sqlite")
    assert not allowed("engine.runtime", "backends.sqlite")
    assert not allowed("jobs.snos", "starknet.rpc")
    assert not allowed("provers.atlantic", "devnet.adapters")
    assert not allowed("server.app", "devnet.sequencer")
    assert allowed("engine.batching", "starknet.squash")
    assert allowed("cli.compose", "devnet.adapters")
    assert allowed("devnet.sequencer", "starknet.rpc")


@pytest.mark.parametrize("limit", [MAX_FUNCTION_LINES])
def test_no_function_is_longer_than_a_screenful_or_two(limit: int) -> None:
    long = []
    for module, path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == [], "\n".join(long)
