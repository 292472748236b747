-- The refund ledger: every fact the worker must not lose lives here.

-- One row per refund request, keyed by the order system's refund_id (the idempotency key).
-- States only move forward: pending -> batched -> submitted -> succeeded | failed; pending -> rejected.
-- A refund goes back from batched to pending only when the gateway definitely did not take its batch.
CREATE TABLE refunds (
    refund_id       text PRIMARY KEY,
    event_id        text NOT NULL,
    trade_no        text NOT NULL,
    amount          numeric(12, 2) NOT NULL CHECK (amount > 0),
    reason          text,
    trade_amount    numeric(12, 2),
    order_id        text,
    metadata        jsonb,
    requested_at    timestamptz,
    content_hash    text NOT NULL,
    state           text NOT NULL CHECK (state IN
                        ('pending', 'batched', 'submitted', 'succeeded', 'failed', 'rejected')),
    code            text,
    batch_no        text,
    batch_attempts  integer NOT NULL DEFAULT 0,
    received_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at    timestamptz
);
CREATE INDEX refunds_pending_idx ON refunds (received_at, refund_id) WHERE state = 'pending';
CREATE INDEX refunds_trade_idx ON refunds (trade_no);
CREATE INDEX refunds_open_idx ON refunds (received_at)
    WHERE state IN ('pending', 'batched', 'submitted');

-- Serial part of batch_no: unique for the partner forever (the date prefix changes daily).
CREATE SEQUENCE batch_serial;

-- One row per batch_no ever used. `maybe_sent` is true once any attempt's outcome was unknown:
-- from then on the batch_no is never abandoned, only retried or waited on.
CREATE TABLE batches (
    batch_no         text PRIMARY KEY,
    batch_day        date NOT NULL,
    state            text NOT NULL CHECK (state IN
                         ('ready', 'submitting', 'retry', 'unknown', 'accepted', 'held',
                          'refused', 'abandoned', 'completed')),
    item_count       integer NOT NULL CHECK (item_count BETWEEN 1 AND 1000),
    attempts         integer NOT NULL DEFAULT 0,
    maybe_sent       boolean NOT NULL DEFAULT false,
    next_attempt_at  timestamptz,
    last_code        text,
    last_error       text,
    operator_flag    text,
    flagged_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    accepted_at      timestamptz,
    completed_at     timestamptz
);
CREATE INDEX batches_due_idx ON batches (next_attempt_at)
    WHERE state IN ('ready', 'submitting', 'retry', 'unknown');
CREATE INDEX batches_open_idx ON batches (created_at)
    WHERE state IN ('ready', 'submitting', 'retry', 'unknown', 'accepted', 'held');

-- Membership history: which refunds went into which batch, exactly as sent.
CREATE TABLE batch_items (
    batch_no     text NOT NULL REFERENCES batches (batch_no),
    refund_id    text NOT NULL REFERENCES refunds (refund_id),
    trade_no     text NOT NULL,
    amount       numeric(12, 2) NOT NULL,
    reason_sent  text NOT NULL,
    position     integer NOT NULL,
    PRIMARY KEY (batch_no, refund_id),
    UNIQUE (batch_no, trade_no)
);
CREATE INDEX batch_items_refund_idx ON batch_items (refund_id);

-- Inbox of Alipay notifications, stored verbatim, keyed by notify_id (same across resends).
CREATE TABLE notifications (
    notify_id     text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('batch_refund', 'dback')),
    batch_no      text,
    form          jsonb NOT NULL,
    received_at   timestamptz NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    outcome       text NOT NULL,
    detail        text
);
CREATE INDEX notifications_batch_idx ON notifications (batch_no);

-- Transactional outbox: written in the same transaction as the state change, deleted once
-- the broker confirmed the publish.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    event_id     text NOT NULL UNIQUE,
    routing_key  text NOT NULL,
    body         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Switches an operator or the worker sets: e.g. submission halted after a configuration error.
CREATE TABLE control (
    name    text PRIMARY KEY,
    value   text NOT NULL,
    set_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
