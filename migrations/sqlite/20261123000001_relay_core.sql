-- Relay core: partners, workers, mailboxes, aliases, sealed messages, API tokens, audit log.
-- Kept in step with migrations/postgres (same tables, columns and constraints; a test compares them).
-- Times are Unix milliseconds. Flags are 0/1 integers. Sealed payloads are age files (opaque bytes).

CREATE TABLE organisations (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL CHECK (kind IN ('gi', 'ketenpartner')),
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL
);

CREATE TABLE organisation_domains (
    domain          TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations (id)
);

CREATE TABLE organisation_phones (
    phone           TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations (id)
);

-- SHA-256 of the DER of a partner's client certificate: the pin that identifies the organisation.
CREATE TABLE organisation_certificates (
    fingerprint     TEXT    PRIMARY KEY,
    organisation_id TEXT    NOT NULL REFERENCES organisations (id),
    created_at      INTEGER NOT NULL
);

CREATE TABLE mailboxes (
    id          TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('worker', 'team')),
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (kind, name)
);

CREATE TABLE workers (
    id                      TEXT    PRIMARY KEY,
    handle                  TEXT    NOT NULL UNIQUE,
    pseudonym               TEXT    NOT NULL,
    mailbox_id              TEXT    NOT NULL UNIQUE REFERENCES mailboxes (id),
    recipient               TEXT    NOT NULL,
    wrapped_identity        BLOB,
    passphrase_hash         TEXT    NOT NULL,
    must_change_passphrase  INTEGER NOT NULL CHECK (must_change_passphrase IN (0, 1)),
    totp_sealed             BLOB    NOT NULL,
    totp_last_step          INTEGER NOT NULL DEFAULT 0,
    contact_sealed          BLOB    NOT NULL,
    created_at              INTEGER NOT NULL
);

CREATE TABLE mailbox_members (
    mailbox_id  TEXT NOT NULL REFERENCES mailboxes (id),
    worker_id   TEXT NOT NULL REFERENCES workers (id),
    -- A member sees the mailbox's messages from this moment on: earlier ones were not sealed to them.
    joined_at   INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, worker_id)
);
CREATE INDEX mailbox_members_worker ON mailbox_members (worker_id);

CREATE TABLE aliases (
    address     TEXT    PRIMARY KEY,
    mailbox_id  TEXT    NOT NULL REFERENCES mailboxes (id),
    created_at  INTEGER NOT NULL,
    burned_at   INTEGER
);
CREATE INDEX aliases_mailbox ON aliases (mailbox_id);

CREATE TABLE messages (
    id              TEXT    PRIMARY KEY,
    mailbox_id      TEXT    NOT NULL REFERENCES mailboxes (id),
    alias           TEXT    NOT NULL,
    organisation_id TEXT    REFERENCES organisations (id),
    channel         TEXT    NOT NULL CHECK (channel IN ('api', 'mail', 'sms', 'voicemail')),
    kind            TEXT    NOT NULL CHECK (kind IN ('bericht', 'aanmelding')),
    urgent          INTEGER NOT NULL CHECK (urgent IN (0, 1)),
    received_at     INTEGER NOT NULL,
    sealed          BLOB    NOT NULL
);
CREATE INDEX messages_mailbox ON messages (mailbox_id, received_at);
CREATE INDEX messages_received ON messages (received_at);

-- Long-lived read tokens a worker creates for the CLI; only the SHA-256 of the token is kept.
CREATE TABLE api_tokens (
    id          TEXT    PRIMARY KEY,
    worker_id   TEXT    NOT NULL REFERENCES workers (id),
    token_hash  TEXT    NOT NULL UNIQUE,
    label       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX api_tokens_worker ON api_tokens (worker_id);

-- Append-only, hash-chained audit log. `audit_head` holds the last sequence number and hash; every
-- append starts by updating it, which serialises appends on both backends.
CREATE TABLE audit_head (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    seq     INTEGER NOT NULL,
    hash    TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);
