-- Several merchants (Alipay partners) in one deployment: every refund, batch and notification
-- belongs to one partner. Rows written before this migration belong to the default merchant,
-- whose partner id `migrate` writes in place of {{default_partner}} (worker/adapters/postgres/pool.py).

ALTER TABLE refunds ADD COLUMN partner text NOT NULL DEFAULT '{{default_partner}}';
ALTER TABLE refunds ALTER COLUMN partner DROP DEFAULT;

ALTER TABLE batches ADD COLUMN partner text NOT NULL DEFAULT '{{default_partner}}';
ALTER TABLE batches ALTER COLUMN partner DROP DEFAULT;

-- The merchant whose key authenticated the notification (NULL: stored before this migration).
ALTER TABLE notifications ADD COLUMN partner text;

-- Submissions in flight per merchant (the per-merchant concurrency limit).
CREATE INDEX batches_partner_open_idx ON batches (partner, state)
    WHERE state IN ('ready', 'submitting', 'retry', 'unknown', 'accepted', 'held');

-- The submission halt after a configuration error is per merchant from now on
-- (`submission_halted:<partner>`); a halt set before names the default merchant.
UPDATE control SET name = 'submission_halted:{{default_partner}}' WHERE name = 'submission_halted';
