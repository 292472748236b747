"""The peer's tables, in the stack's database beside the project's (names start `peer_`)."""

from __future__ import annotations

import psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_refunds (
    refund_id    text PRIMARY KEY,
    event_id     text NOT NULL,
    trade_no     text NOT NULL,
    amount       numeric(12, 2) NOT NULL,
    reason       text,
    order_id     text,
    state        text NOT NULL DEFAULT 'pending',
    batch_no     text,
    code         text,
    received_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at timestamptz
);
CREATE INDEX IF NOT EXISTS peer_refunds_pending_idx ON peer_refunds (received_at)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS peer_refunds_batch_idx ON peer_refunds (batch_no, trade_no);
CREATE TABLE IF NOT EXISTS peer_batches (
    batch_no   text PRIMARY KEY,
    state      text NOT NULL,
    items      integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE SEQUENCE IF NOT EXISTS peer_batch_serial;
"""


def create(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(SCHEMA)
