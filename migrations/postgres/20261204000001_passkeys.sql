-- Passkeys (WebAuthn credentials) a worker registered in the web app; any one of them replaces the
-- TOTP code at login, after the passphrase. Only the public key is kept: the private key never leaves
-- the worker's authenticator. `sign_count` is the authenticator's counter, which must grow (when it
-- counts at all) so that a cloned key shows. `last_challenge` is the challenge of the last login, set
-- in the same statement that checks it differs: two copies of one answer sent at once cannot both log
-- in, even with an authenticator that never counts.
CREATE TABLE worker_passkeys (
    id             TEXT    PRIMARY KEY,
    worker_id      TEXT    NOT NULL REFERENCES workers (id),
    credential_id  BYTEA   NOT NULL UNIQUE,
    public_key     BYTEA   NOT NULL,
    sign_count     BIGINT  NOT NULL,
    label          TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    last_challenge BYTEA,
    last_used_at   BIGINT
);
CREATE INDEX worker_passkeys_worker ON worker_passkeys (worker_id);
