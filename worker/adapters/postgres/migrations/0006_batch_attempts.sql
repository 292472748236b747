-- The journal of submission attempts: one row per attempt of a batch and what came of it,
-- written when the attempt is settled (worker/services/submission.py), read by the
-- console's timelines. Never the request, its signature or the answer's body: the
-- outcome, what the worker did, the gateway's code and a bounded error text.
CREATE TABLE batch_attempts (
    batch_no    text NOT NULL REFERENCES batches (batch_no),
    attempt     integer NOT NULL CHECK (attempt >= 1),
    -- When the attempt was claimed; NULL when not known (a superseded attempt, or one
    -- made before this journal existed).
    started_at  timestamptz,
    ended_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- answered | not_sent | unknown (worker/domain/policy/attempts.py `Outcome`), or
    -- before_journal for the summary row of a batch attempted before this migration.
    outcome     text NOT NULL CHECK (outcome IN
                    ('answered', 'not_sent', 'unknown', 'before_journal')),
    -- What the worker did with the answer (`Action`), or `superseded` when a notification
    -- or another attempt had settled the batch meanwhile; NULL before the journal.
    action      text,
    code        text,
    error       text CHECK (length(error) <= 500),
    PRIMARY KEY (batch_no, attempt)
);

-- Batches attempted before the journal keep what the ledger knew of their last attempt.
INSERT INTO batch_attempts (batch_no, attempt, started_at, ended_at, outcome, code, error)
SELECT batch_no, attempts, NULL, coalesce(last_attempt_at, updated_at), 'before_journal',
       last_code, left(last_error, 500)
  FROM batches
 WHERE attempts > 0;
