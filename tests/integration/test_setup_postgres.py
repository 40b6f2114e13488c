"""``orchestrator setup --postgres-url``: the schema is migrated (once, however often it runs); the password
never shows; a bad URL is one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from madara_orchestrator.cli.main import main


def test_setup_migrates_postgres_once_and_masks_the_password(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ALTER ROLE postgres PASSWORD 'hunter2-secret'")
    url = postgres_url.replace("postgres@", "postgres:hunter2-secret@", 1)
    for _ in range(2):
        assert main(["setup", "--postgres-url", url, "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "schema up to date" in out and "postgres:***@" in out
    assert (tmp_path / "data" / "objects").is_dir(), "the files object store is made too"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert {"jobs", "snos_batches", "aggregator_batches", "locks"} <= tables, tables
    assert versions == sorted(set(versions)) and versions, "each migration applied once"
    assert not (tmp_path / "data" / "orchestrator.db").exists(), "no SQLite file when PostgreSQL is chosen"


def test_setup_refuses_a_url_that_is_not_postgres(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["setup", "--postgres-url", "mysql://x@y/z", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--postgres-url must be a postgresql://" in err and "Traceback" not in err
