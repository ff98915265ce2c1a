-- Phone aliases: the pool of rented numbers, webhooks already handled, calls in progress, click-to-call
-- bridges, voicemail jobs and workers' hours. Kept in step with migrations/sqlite.
-- Real numbers of callers, contacts and workers are never stored in the clear: a caller's number is
-- sealed to the server key for as long as a call or a voicemail needs it; the rented alias numbers
-- are the relay's own.

-- A number is free (alias NULL, not quarantined), assigned (alias set) or quarantined after a burn
-- (alias NULL, quarantined_until in the future). One number per alias.
CREATE TABLE phone_numbers (
    number              TEXT    PRIMARY KEY,
    alias               TEXT    REFERENCES aliases (address),
    assigned_at         BIGINT,
    burned_at           BIGINT,
    quarantined_until   BIGINT,
    created_at          BIGINT NOT NULL
);
CREATE UNIQUE INDEX phone_numbers_alias ON phone_numbers (alias);

-- Webhooks handled (CallSid, MessageSid, RecordingSid per endpoint): the same one again is handled once.
CREATE TABLE phone_webhooks_seen (
    key         TEXT    PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX phone_webhooks_seen_expiry ON phone_webhooks_seen (expires_at);

-- A call that was let through, for its callbacks (no answer, the next team member, voicemail).
CREATE TABLE phone_calls (
    call_sid        TEXT    PRIMARY KEY,
    alias           TEXT    NOT NULL,
    caller_sealed   BYTEA    NOT NULL,
    expires_at      BIGINT NOT NULL
);

-- Click-to-call: the worker's phone is called first; when it answers, this bridge says where to.
CREATE TABLE phone_bridges (
    id              TEXT    PRIMARY KEY,
    number          TEXT    NOT NULL,
    target_sealed   BYTEA    NOT NULL,
    expires_at      BIGINT NOT NULL
);

-- Voicemail: fetched from the provider and sealed into the mailbox ('fetch'), then deleted at the
-- provider ('delete'); each step retried with backoff until it succeeds.
CREATE TABLE phone_recordings (
    recording_sid   TEXT    PRIMARY KEY,
    state           TEXT    NOT NULL CHECK (state IN ('fetch', 'delete')),
    alias           TEXT    NOT NULL,
    caller_sealed   BYTEA,
    duration        BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL
);
CREATE INDEX phone_recordings_due ON phone_recordings (next_attempt_at);

-- When a worker's phone rings (local time, minutes after midnight; until < from wraps past midnight).
-- No row: always.
CREATE TABLE phone_availability (
    worker_id       TEXT    PRIMARY KEY REFERENCES workers (id),
    from_minute     BIGINT NOT NULL,
    until_minute    BIGINT NOT NULL
);
