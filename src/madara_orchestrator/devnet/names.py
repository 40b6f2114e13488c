"""The devnet's names that commands other than the devnet's read, kept apart from ``anvil.py`` (which
imports httpx and pycryptodome and hashes at import): ``orchestrator run`` only names the variable."""

from __future__ import annotations

ANVIL_BIN_ENV = "MADARA_ORCHESTRATOR_ANVIL_BIN"
"""The path of an anvil executable, instead of the one in ``tools/node_modules``."""
