-- The console's per-minute series (completions, backlog) read refunds by completion time:
-- without this index each chart scans the whole table. Partial: open refunds have none.
CREATE INDEX refunds_completed_idx ON refunds (completed_at) WHERE completed_at IS NOT NULL;
