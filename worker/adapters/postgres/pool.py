"""PostgreSQL adapter (psycopg 3): connections, transactions, migrations.

Services receive a `Database` and open short transactions with `db.transaction()`.
psycopg's connection errors become `DatabaseUnavailable` so callers can retry or
requeue without knowing psycopg.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import psycopg
import psycopg_pool
import structlog

from worker.domain.errors import DatabaseUnavailable

log = structlog.get_logger(__name__)

Connection = psycopg.Connection[tuple[Any, ...]]

# Advisory lock keys (one-at-a-time work across replicas).
MIGRATE_LOCK = 0x52464D49  # "RFMI"
PACKER_LOCK = 0x5246504B  # "RFPK"


def lock_key(namespace: str, name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name` within `namespace`."""
    digest = hashlib.blake2b(f"{namespace}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn psycopg's connection-level failures into `DatabaseUnavailable`."""
    try:
        yield
    except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
        raise DatabaseUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}") from exc
    except psycopg.errors.AdminShutdown as exc:  # pragma: no cover - subclass of OperationalError
        raise DatabaseUnavailable("PostgreSQL is shutting down") from exc


class Database:
    """A small connection pool; every connection is checked before use."""

    def __init__(self, url: str, *, max_size: int = 4, name: str = "refund-worker") -> None:
        self.url = url
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=10.0,
            check=psycopg_pool.ConnectionPool.check_connection,
            kwargs={"application_name": name, "connect_timeout": 5},
            name=name,
        )
        self._opened = False
        # Worker threads open the pool lazily on their first transaction; psycopg_pool's
        # open(wait=True) is not safe to enter from several threads at once.
        self._open_lock = threading.Lock()

    def open(self) -> None:
        if self._opened:
            return
        with self._open_lock:
            if not self._opened:
                with translate_errors():
                    self._pool.open(wait=True, timeout=15.0)
                self._opened = True

    def close(self) -> None:
        with self._open_lock:
            if self._opened:
                self._pool.close()
                self._opened = False

    def __enter__(self) -> Database:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        self.open()
        with translate_errors(), self._pool.connection() as conn:
            yield conn

    @contextmanager
    def session(self) -> Iterator[Connection]:
        """A connection in autocommit mode, for session-level advisory locks."""
        self.open()
        with translate_errors(), self._pool.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                conn.autocommit = False


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration, in order."""
    folder = resources.files("worker.adapters.postgres.migrations")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(name, (folder / name).read_text(encoding="utf-8")) for name in names]


# The one value a migration takes from the settings: the partner id that rows written
# before several merchants were supported belong to (0004_merchants.sql).
_DEFAULT_PARTNER_TOKEN = "{{default_partner}}"
_PARTNER_ID = re.compile(r"2088[0-9]{12}", re.ASCII)


def migrate(url: str, *, default_partner: str) -> list[str]:
    """Apply pending migrations; safe when several pods run it at once. Returns what it applied.

    `default_partner` is the default merchant's partner id (16 digits, checked here: it is
    written into the migration's text).
    """
    if not _PARTNER_ID.fullmatch(default_partner):
        raise ValueError("default_partner must be 16 digits starting with 2088")
    applied: list[str] = []
    with translate_errors(), psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
            for name, sql in migration_files():
                if name in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.replace(_DEFAULT_PARTNER_TOKEN, default_partner).encode())
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                log.info("db.migrated", migration=name)
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
    return applied


def ping(url: str) -> None:
    """Raise DatabaseUnavailable unless PostgreSQL answers."""
    with translate_errors(), psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("SELECT 1")
