"""`migrate` is idempotent and safe when several pods run it at once."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tests.support.db import fresh_database
from worker.adapters.postgres.pool import migrate, migration_files

pytestmark = pytest.mark.integration


def test_concurrent_migrations_apply_each_file_once() -> None:
    with fresh_database(migrate=False) as url:
        results: list[list[str]] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                results.append(migrate(url, default_partner="2088000000000001"))
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        names = [name for name, _ in migration_files()]
        applied = [name for result in results for name in result]
        assert sorted(applied) == sorted(names)  # each applied by exactly one runner
        assert migrate(url, default_partner="2088000000000001") == []
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
        assert [r[0] for r in rows] == names
