"""Fixtures for integration tests: each test gets its own database (and bus names)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.db import fresh_database
from worker.adapters.postgres.pool import Database


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, max_size=4, name="refund-worker-test")
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def exchange_name() -> str:
    return f"test-refunds-{uuid.uuid4().hex[:10]}"
