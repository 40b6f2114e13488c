"""The house rules of the code's layout (README, "How it works"), read from the source's import statements.

- ``domain/`` imports nothing of ours; ``interfaces.py`` only the domain.
- ``engine/`` and ``jobs/`` import the domain, the interfaces, each other and the pure part of ``starknet/``
  (never its network clients), and no adapter; nor do they reach a network client or an HTTP library
  through what they import (the transitive imports within the package).
- A Protocol outside ``interfaces.py`` (a package's own seam) is imported only inside its package and by
  ``cli/``: a port between the engine and the adapters belongs in ``interfaces.py``.
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
HTTP_LIBRARIES = {"httpx"}
"""What the network clients are written with: no module the engine or a job handler loads may import it."""
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


def is_module(name: str) -> bool:
    """``name`` (relative to the package, "" for the package itself) is a module or a package of ours."""
    path = ROOT.joinpath(*name.split(".")) if name else ROOT
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def loaded(path: Path) -> tuple[set[str], set[str]]:
    """What importing ``path`` loads: the modules of ours (with the packages above them, and the submodules
    named by ``from package import submodule``) and the top-level names of the other libraries."""
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name != PACKAGE and not name.startswith(PACKAGE + "."):
                others.add(name.split(".")[0])
                continue
            parts = name.removeprefix(PACKAGE).lstrip(".").split(".")
            ours.update(m for m in (".".join(parts[:n]) for n in range(len(parts) + 1)) if is_module(m))
    return ours, others


def reached(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module ``start`` loads, directly or not, mapped to one module that imports it."""
    via: dict[str, str] = {}
    todo = [start]
    while todo:
        module = todo.pop()
        for target in sorted(graph.get(module, ())):
            if target not in via and target != start:
                via[target] = module
                todo.append(target)
    return via


def path_to(via: dict[str, str], start: str, target: str) -> str:
    chain = [target]
    while chain[-1] != start:
        chain.append(via[chain[-1]])
    return " → ".join(reversed(chain))


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


def test_the_engine_and_the_jobs_reach_no_network_client_even_indirectly() -> None:
    found = {module: loaded(path) for module, path in modules()}
    graph = {module: ours for module, (ours, _) in found.items()}
    clients = {f"starknet.{name}" for name in STARKNET_CLIENTS}
    broken = []
    for module in sorted(graph):
        if top(module) not in ("engine", "jobs"):
            continue
        via = reached(graph, module)
        broken += [path_to(via, module, client) for client in sorted(clients & via.keys())]
        broken += [
            f"{path_to(via, module, target)} imports {library}"
            for target in sorted((via.keys() | {module}) - clients)
            for library in sorted(found[target][1] & HTTP_LIBRARIES)
        ]
    assert broken == [], "\n".join(broken)


def test_the_import_graph_follows_imports_through_other_modules() -> None:
    graph = {module: loaded(path)[0] for module, path in modules()}
    assert "starknet.retried_http" in reached(graph, "cli.compose")  # cli.compose → starknet.rpc → retried_http
    assert "engine.telemetry" in graph["engine.posting"]  # ``from madara_orchestrator.engine import telemetry``
    assert "starknet" in graph["starknet.rpc_cache"]  # a module loads the packages above it
    via = reached({"engine.a": {"starknet.pure"}, "starknet.pure": {"starknet.rpc"}}, "engine.a")
    assert path_to(via, "engine.a", "starknet.rpc") == "engine.a → starknet.pure → starknet.rpc"


def protocols(path: Path) -> set[str]:
    """The classes ``path`` defines as a ``typing.Protocol`` (generic or not)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            bases = [b.value if isinstance(b, ast.Subscript) else b for b in node.bases]
            if any(isinstance(b, ast.Name) and b.id == "Protocol" for b in bases):
                found.add(node.name)
    return found


def protocol_imports(path: Path, defined: dict[str, set[str]]) -> Iterator[tuple[str, str]]:
    """(module, Protocol) of each Protocol ``path`` imports by name from a module of ours."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE + "."):
            module = node.module.removeprefix(PACKAGE + ".")
            yield from ((module, a.name) for a in node.names if a.name in defined.get(module, ()))


def test_a_protocol_outside_the_interfaces_stays_in_its_package() -> None:
    defined = {module: protocols(path) for module, path in modules() if module != "interfaces"}
    assert "Telemetry" in defined["engine.telemetry"] and "ChainBackend" in defined["settlement.durable"]
    broken = [
        f"{importer} imports {name} from {module}: a port between packages goes in interfaces.py"
        for importer, path in modules()
        for module, name in protocol_imports(path, defined)
        if top(importer) not in (top(module), "cli")
    ]
    assert broken == [], "\n".join(broken)


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
