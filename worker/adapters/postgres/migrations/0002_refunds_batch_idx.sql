-- Refunds by batch: settling a batch (mark_submitted, return_to_pending, detach_items) finds its
-- refunds by batch_no. Without this index those statements scan every open refund, so each
-- batch costs time in proportion to the backlog (a second per batch at a million open refunds).
CREATE INDEX refunds_batch_idx ON refunds (batch_no) WHERE batch_no IS NOT NULL;
