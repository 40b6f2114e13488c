"""Shared fixtures: where the vectors are, and how a test asks for an outside tool.

With CI=true a missing tool or data set is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import anvil_pool
from tests.helpers.schedule import order_for_workers

pytest_plugins = ["tests.helpers.postgres"]  # fixtures postgres_server (a throwaway cluster) and postgres_url
pytest_plugins += ["tests.helpers.moto"]  # fixtures moto_server (a moto process), aws_env, moto_reset, aws_prefix
pytest_plugins += ["tests.helpers.moto_kms"]  # fixtures moto_kms_server (moto with KMS DIGEST signing), moto_kms

REPO_ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = (REPO_ROOT / ".." / "shared" / "vectors").resolve()


def is_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(condition: bool, what: str) -> None:
    """Skip locally when `what` is missing; fail under CI, where everything must be present."""
    if condition:
        return
    if is_ci():
        pytest.fail(f"required for this test and missing under CI: {what}")
    pytest.skip(f"missing: {what}")


def require_tool(name: str, path: str | None = None) -> str:
    found = path if path and Path(path).exists() else shutil.which(name)
    require(found is not None, f"tool {name!r}")
    assert found is not None
    return found


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect took their tests out
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests (marked ``slow``) dealt out among pytest-xdist's workers so that each starts with its
    share of them and none runs them all (tests/helpers/schedule.py); without workers, the long ones first."""
    items[:] = order_for_workers(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def pytest_sessionfinish() -> None:
    anvil_pool.stop_all()


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    require(VECTORS_DIR.is_dir(), f"test vectors at {VECTORS_DIR}")
    return VECTORS_DIR
