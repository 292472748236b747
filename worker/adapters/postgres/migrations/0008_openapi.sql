-- The OpenAPI channels (docs/openapi.md): one refund per request, `trade`
-- (alipay.trade.refund) and `coupon` (alipay.fund.coupon.order.refund), beside the mapi
-- batch channel. Their refunds live in `refunds` like every other, with the same states
-- (pending -> submitted -> succeeded | failed, pending -> rejected), the same outbox and
-- the same event identity; the packer never reads them.

ALTER TABLE refunds ALTER COLUMN trade_no DROP NOT NULL;
ALTER TABLE refunds
    ADD COLUMN channel text NOT NULL DEFAULT 'batch'
        CHECK (channel IN ('batch', 'trade', 'coupon')),
    ADD COLUMN out_trade_no text,
    ADD COLUMN auth_no text,
    -- The merchant's request number, derived from refund_id at intake, before any send;
    -- every attempt and query of the refund carries it (never a second one).
    ADD COLUMN out_request_no text UNIQUE,
    -- Calls made for the refund (sends and queries), each counted when claimed.
    ADD COLUMN openapi_attempts integer NOT NULL DEFAULT 0,
    -- An attempt may have reached the gateway: a refusal then proves nothing alone.
    ADD COLUMN maybe_sent boolean NOT NULL DEFAULT false,
    -- What the next call is (`send` the same request again, or `query` first) and when.
    ADD COLUMN next_step text CHECK (next_step IN ('send', 'query')),
    ADD COLUMN next_attempt_at timestamptz,
    -- Set while a call is in flight (claim to settle); a claim older than the lease was
    -- lost in a crash: its call is counted as maybe sent.
    ADD COLUMN claimed_at timestamptz,
    -- When the scheduler last handed the refund to the submission queue.
    ADD COLUMN enqueued_at timestamptz,
    -- The classification of the last answer to the refund call itself (not a query).
    ADD COLUMN last_verdict text,
    ADD COLUMN last_code text,
    -- Kept for an operator: nothing more is sent for it (reason).
    ADD COLUMN held_reason text,
    -- Alipay's ids once settled.
    ADD COLUMN operation_id text,
    ADD COLUMN gmt_refund_pay text,
    ADD CONSTRAINT refunds_channel_keys CHECK (
        (channel = 'batch' AND trade_no IS NOT NULL AND out_request_no IS NULL)
        OR (channel = 'trade' AND (trade_no IS NOT NULL OR out_trade_no IS NOT NULL)
            AND out_request_no IS NOT NULL)
        OR (channel = 'coupon' AND auth_no IS NOT NULL AND out_request_no IS NOT NULL)
    );

-- The packer's scan: pending refunds of the batch channel only.
DROP INDEX refunds_pending_idx;
CREATE INDEX refunds_pending_idx ON refunds (received_at, refund_id)
    WHERE state = 'pending' AND channel = 'batch';

-- The OpenAPI sweep: refunds whose next call is due, and those in flight per merchant.
CREATE INDEX refunds_openapi_due_idx ON refunds (next_attempt_at)
    WHERE channel <> 'batch' AND state IN ('pending', 'submitted');
CREATE INDEX refunds_openapi_in_flight_idx ON refunds (partner)
    WHERE channel <> 'batch' AND claimed_at IS NOT NULL;

-- Every OpenAPI call and what came of it: the evidence of each answer (the raw answer
-- as received, bounded; never the signed request).
CREATE TABLE openapi_calls (
    refund_id   text NOT NULL REFERENCES refunds (refund_id),
    attempt     integer NOT NULL CHECK (attempt >= 1),
    kind        text NOT NULL CHECK (kind IN ('send', 'query')),
    method      text NOT NULL,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    outcome     text NOT NULL CHECK (outcome IN ('answered', 'not_sent', 'unknown', 'lost')),
    verdict     text,
    code        text,
    action      text,
    detail      text CHECK (length(detail) <= 500),
    answer      text CHECK (length(answer) <= 65536),
    PRIMARY KEY (refund_id, attempt)
);

-- OpenAPI notifications (coupon refunds), stored as received once their signature
-- verified, keyed by notify_id (the same across resends). `refund_id` is NULL for a
-- notification of a refund not made through this worker (e.g. one Alipay made itself
-- when the envelope expired, which goes to the payment's own notify_url).
CREATE TABLE openapi_notifications (
    notify_id       text PRIMARY KEY,
    partner         text NOT NULL,
    notify_type     text NOT NULL,
    out_request_no  text,
    refund_id       text REFERENCES refunds (refund_id),
    form            jsonb NOT NULL,
    received_at     timestamptz NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    outcome         text NOT NULL,
    detail          text
);
CREATE INDEX openapi_notifications_refund_idx ON openapi_notifications (refund_id);
