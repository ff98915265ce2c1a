-- E-mail relay: contacts a worker allowed on one alias, identity markers for the leak guard, the
-- durable outbound queue, and when each worker was last notified.
-- Contacts and markers are keyed HMACs (the key is derived from the server key, outside the
-- database): a copy of the database does not reveal them. Outbound messages are sealed to the
-- server key, which must read them to send them; their content is dropped once sent.

CREATE TABLE alias_contacts (
    alias           TEXT    NOT NULL REFERENCES aliases (address),
    contact_hmac    TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (alias, contact_hmac)
);

CREATE TABLE identity_markers (
    worker_id   TEXT NOT NULL REFERENCES workers (id),
    kind        TEXT NOT NULL CHECK (kind IN ('name', 'phone', 'email', 'town', 'plate')),
    hmac        TEXT NOT NULL,
    PRIMARY KEY (worker_id, kind, hmac)
);

CREATE TABLE outbound_messages (
    id              TEXT    PRIMARY KEY,
    kind            TEXT    NOT NULL CHECK (kind IN ('reply', 'mail', 'notification')),
    worker_id       TEXT    REFERENCES workers (id),
    sealed          BLOB,
    summary_sealed  BLOB,
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'failed', 'bounced')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    lease_owner     TEXT,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX outbound_due ON outbound_messages (state, next_attempt_at);

CREATE TABLE notification_state (
    worker_id       TEXT    PRIMARY KEY REFERENCES workers (id),
    last_queued_at  INTEGER NOT NULL
);
