-- The password channel (refund_fastpay_by_platform_pwd) and the operator console.

-- A batch of a merchant on the password service waits for an operator in
-- 'awaiting_approval'; once approved (the signed form was rendered to the operator's
-- browser) it is 'approved': it may have been sent, so it is never renumbered, and only a
-- notification, a query or an operator's decision moves it on. 'rejected': an operator
-- refused it, its refunds ended rejected (OPERATOR_REJECTED).
ALTER TABLE batches DROP CONSTRAINT batches_state_check;
ALTER TABLE batches ADD CONSTRAINT batches_state_check CHECK (state IN
    ('awaiting_approval', 'approved', 'ready', 'submitting', 'retry', 'unknown', 'accepted',
     'held', 'refused', 'abandoned', 'completed', 'released', 'rejected'));
ALTER TABLE batches
    ADD COLUMN service      text NOT NULL DEFAULT 'nopwd' CHECK (service IN ('nopwd', 'pwd')),
    ADD COLUMN approved_by  text,
    ADD COLUMN approved_at  timestamptz;

DROP INDEX batches_open_idx;
CREATE INDEX batches_open_idx ON batches (created_at)
    WHERE state IN ('awaiting_approval', 'approved', 'ready', 'submitting', 'retry', 'unknown',
                    'accepted', 'held');
DROP INDEX batches_partner_open_idx;
CREATE INDEX batches_partner_open_idx ON batches (partner, state)
    WHERE state IN ('awaiting_approval', 'approved', 'ready', 'submitting', 'retry', 'unknown',
                    'accepted', 'held');

-- Approvals and rejections are operator decisions too (shown in a batch's history).
ALTER TABLE operator_decisions DROP CONSTRAINT operator_decisions_decision_check;
ALTER TABLE operator_decisions ADD CONSTRAINT operator_decisions_decision_check
    CHECK (decision IN ('accepted', 'not_accepted', 'approved', 'rejected'));

-- People who may sign in to the console. The password is stored only as its argon2 hash;
-- repeated failures lock the account until `locked_until`.
CREATE TABLE operators (
    name           text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    failed_logins  integer NOT NULL DEFAULT 0,
    locked_until   timestamptz,
    last_login_at  timestamptz,
    disabled       boolean NOT NULL DEFAULT false
);

-- Every console action (who, when, what, on what, how it ended), sign-ins included.
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    operator  text NOT NULL,
    action    text NOT NULL,
    target    text,
    outcome   text NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    detail    text
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_target_idx ON audit_log (target);
