-- Converging on what the gateway really did: reconciliation by refund_fastpay_query,
-- operator decisions, durable notifications and bank-card return results.

-- When the batch was last sent (the reconciliation and release clocks start here), when the
-- reconciler asks the gateway next, and how often it has asked.
ALTER TABLE batches
    ADD COLUMN last_attempt_at  timestamptz,
    ADD COLUMN next_query_at    timestamptz,
    ADD COLUMN queries          integer NOT NULL DEFAULT 0,
    ADD COLUMN last_query_at    timestamptz,
    ADD COLUMN last_query_answer text;
UPDATE batches SET last_attempt_at = coalesce(accepted_at, updated_at) WHERE attempts > 0;

-- 'released': the batch may have been sent, but the gateway proved by query that it never took
-- it (after its day was over), or an operator decided so; its refunds went back to pending.
ALTER TABLE batches DROP CONSTRAINT batches_state_check;
ALTER TABLE batches ADD CONSTRAINT batches_state_check CHECK (state IN
    ('ready', 'submitting', 'retry', 'unknown', 'accepted', 'held',
     'refused', 'abandoned', 'completed', 'released'));

-- Where a refund's final state came from: the batch answer, a notification, a query, an operator.
ALTER TABLE refunds ADD COLUMN result_source text;

-- Every answer the gateway gave to a refund_fastpay_query, as evidence for the release rule
-- and for operators.
CREATE TABLE batch_queries (
    id          bigserial PRIMARY KEY,
    batch_no    text NOT NULL,
    trade_no    text,
    purpose     text NOT NULL,
    answer      text NOT NULL CHECK (answer IN ('found', 'not_found', 'refused', 'no_answer')),
    complete    boolean NOT NULL DEFAULT true,  -- false: some entries of the answer were unreadable
    error_code  text,
    items       jsonb,
    detail      text,
    asked_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX batch_queries_batch_idx ON batch_queries (batch_no, asked_at);

-- Refunds of a trade that the gateway reports under batch numbers this worker never used
-- (merchant console, another system): they count toward the 99 refunds and the paid amount.
CREATE TABLE trade_gateway_refunds (
    trade_no  text NOT NULL,
    batch_no  text NOT NULL,
    amount    numeric(12, 2) NOT NULL,
    code      text NOT NULL,
    seen_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (trade_no, batch_no)
);

-- The only way a person moves a batch whose outcome the worker cannot prove.
CREATE TABLE operator_decisions (
    id            bigserial PRIMARY KEY,
    batch_no      text NOT NULL,
    decision      text NOT NULL CHECK (decision IN ('accepted', 'not_accepted')),
    operator      text NOT NULL,
    reason        text NOT NULL,
    forced        boolean NOT NULL DEFAULT false,
    query_answer  text,
    query_detail  text,
    refunds       integer NOT NULL DEFAULT 0,
    decided_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX operator_decisions_batch_idx ON operator_decisions (batch_no);

-- Bank-card return results (dback notifications), parsed, against their refund.
CREATE TABLE dback_results (
    notify_id    text PRIMARY KEY,
    refund_id    text,
    trade_no     text,
    batch_no     text,
    card_last4   text,
    bank_name    text,
    status       text,
    received_at  timestamptz NOT NULL
);
CREATE INDEX dback_results_refund_idx ON dback_results (refund_id);
CREATE INDEX dback_results_trade_idx ON dback_results (trade_no);

-- A verified notification stays stored until it is applied: `pending` rows are applied by the
-- worker and, if that did not happen, by the scheduler's sweep and `replay notifications`.
CREATE INDEX notifications_unapplied_idx ON notifications (stored_at)
    WHERE outcome IN ('pending', 'apply_failed', 'unknown_batch');
