-- Passkeys (WebAuthn credentials) a worker registered in the web app; any one of them replaces the
-- TOTP code at login, after the passphrase. Only the public key is kept: the private key never leaves
-- the worker's authenticator. `sign_count` is the authenticator's counter, which must grow (when it
-- counts at all) so that a cloned key shows.
CREATE TABLE worker_passkeys (
    id             TEXT    PRIMARY KEY,
    worker_id      TEXT    NOT NULL REFERENCES workers (id),
    credential_id  BLOB    NOT NULL UNIQUE,
    public_key     BLOB    NOT NULL,
    sign_count     INTEGER NOT NULL,
    label          TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER
);
CREATE INDEX worker_passkeys_worker ON worker_passkeys (worker_id);
