"""`refund-worker migrate`: create or upgrade the database schema (idempotent)."""

from __future__ import annotations

import argparse

import structlog

from worker.adapters.postgres.pool import migrate
from worker.domain.errors import DatabaseUnavailable
from worker.entrypoints.roles._common import boot

log = structlog.get_logger("worker.migrate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Create or upgrade the schema in DATABASE_URL. Safe to run from several pods at once."
    )


def run(args: argparse.Namespace) -> int:
    settings = boot("migrate")
    try:
        applied = migrate(settings.database_url, default_partner=settings.merchant().partner)
    except DatabaseUnavailable as exc:
        log.error("db.migrate_failed", error=str(exc))
        return 1
    log.info("db.up_to_date", applied=applied)
    return 0
