-- The worker web app: which messages each worker has opened (unread marks), and the purpose note a
-- worker keeps on each of their aliases.
-- A purpose note says what an alias is for ("case 2026-14, mother's lawyer"): it links an alias to a
-- case, so it is sealed with age to the worker's own key (the recipient in `workers`), like a
-- message. The server reads it only while the worker's session holds their unlocked identity; an
-- administrator with the database and the server key cannot.
-- Kept in step with migrations/sqlite (same tables, columns and constraints; a test compares them).

CREATE TABLE message_reads (
    worker_id   TEXT    NOT NULL REFERENCES workers (id),
    message_id  TEXT    NOT NULL,
    read_at     BIGINT  NOT NULL,
    PRIMARY KEY (worker_id, message_id)
);
CREATE INDEX message_reads_message ON message_reads (message_id);

CREATE TABLE alias_notes (
    alias       TEXT    PRIMARY KEY REFERENCES aliases (address),
    sealed      BYTEA   NOT NULL,
    updated_at  BIGINT  NOT NULL
);
