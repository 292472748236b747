-- The archive: final refunds older than the retention (LEDGER_RETENTION_DAYS) move here from
-- the hot tables, with the rows that name them, so the hot tables and their indexes hold
-- what is open or recent, not the whole history (worker/adapters/postgres/archive.py).
-- Nothing is deleted: `refund-worker status refund ID` and intake's duplicate check read
-- the archive too. The archive tables have the columns of their hot tables, in the same
-- order, then `archived_at`: a migration that adds a column to a hot table adds it to its
-- archive table in the same place (tests/integration/test_archive.py checks it).
CREATE TABLE refunds_archive (LIKE refunds INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE refunds_archive
    ADD COLUMN archived_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ADD PRIMARY KEY (refund_id);
-- A trade's tally (99 refunds, the paid amount) counts its archived refunds too.
CREATE INDEX refunds_archive_trade_idx ON refunds_archive (trade_no);
CREATE INDEX refunds_archive_batch_idx ON refunds_archive (batch_no) WHERE batch_no IS NOT NULL;

CREATE TABLE batch_items_archive (LIKE batch_items INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE batch_items_archive
    ADD COLUMN archived_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ADD PRIMARY KEY (batch_no, refund_id),
    ADD FOREIGN KEY (batch_no) REFERENCES batches (batch_no),
    ADD FOREIGN KEY (refund_id) REFERENCES refunds_archive (refund_id);
CREATE INDEX batch_items_archive_refund_idx ON batch_items_archive (refund_id);

CREATE TABLE openapi_calls_archive (LIKE openapi_calls INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE openapi_calls_archive
    ADD COLUMN archived_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ADD PRIMARY KEY (refund_id, attempt),
    ADD FOREIGN KEY (refund_id) REFERENCES refunds_archive (refund_id);

CREATE TABLE openapi_notifications_archive
    (LIKE openapi_notifications INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE openapi_notifications_archive
    ADD COLUMN archived_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    ADD PRIMARY KEY (notify_id),
    ADD FOREIGN KEY (refund_id) REFERENCES refunds_archive (refund_id);
CREATE INDEX openapi_notifications_archive_refund_idx
    ON openapi_notifications_archive (refund_id);
