-- On-call duty (bereikbaarheidsdienst): per team a rota (members in turn, handover in local time),
-- overrides, an escalation policy; durable alerts with their next due step, the notifications each
-- step sends, and the duty notices (handover, rota gap) already given.
-- Kept in step with migrations/sqlite. Nothing here holds a phone number or an e-mail address: a
-- channel opens the worker's sealed contact details only when it sends.

CREATE TABLE oncall_rotas (
    team_mailbox_id TEXT    PRIMARY KEY REFERENCES mailboxes (id),
    rotation        TEXT    NOT NULL CHECK (rotation IN ('daily', 'weekly')),
    -- Minutes after local midnight.
    handover_minute BIGINT  NOT NULL CHECK (handover_minute >= 0 AND handover_minute < 1440),
    -- The local date of the first handover (YYYY-MM-DD).
    start_date      TEXT    NOT NULL,
    updated_at      BIGINT  NOT NULL
);

CREATE TABLE oncall_rota_members (
    team_mailbox_id TEXT    NOT NULL REFERENCES oncall_rotas (team_mailbox_id),
    position        BIGINT  NOT NULL,
    worker_id       TEXT    NOT NULL REFERENCES workers (id),
    PRIMARY KEY (team_mailbox_id, position)
);

CREATE TABLE oncall_overrides (
    id              TEXT    PRIMARY KEY,
    team_mailbox_id TEXT    NOT NULL REFERENCES mailboxes (id),
    worker_id       TEXT    NOT NULL REFERENCES workers (id),
    role            TEXT    NOT NULL CHECK (role IN ('primary', 'secondary')),
    starts_at       BIGINT  NOT NULL,
    ends_at         BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX oncall_overrides_team ON oncall_overrides (team_mailbox_id, ends_at);

-- A team's own escalation policy (TOML as given, validated); without one the configured default holds.
CREATE TABLE oncall_policies (
    team_mailbox_id TEXT    PRIMARY KEY REFERENCES mailboxes (id),
    policy          TEXT    NOT NULL,
    updated_at      BIGINT  NOT NULL
);

CREATE TABLE alerts (
    id                  TEXT    PRIMARY KEY,
    -- Four digits in every text about the alert; unique among alerts not resolved.
    code                TEXT    NOT NULL,
    team_mailbox_id     TEXT    NOT NULL REFERENCES mailboxes (id),
    -- The worker a message was addressed to: paged first.
    addressee_id        TEXT    REFERENCES workers (id),
    kind                TEXT    NOT NULL CHECK (kind IN ('message', 'urgent', 'aanmelding', 'page', 'call')),
    message_id          TEXT,
    state               TEXT    NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    raised_at           BIGINT  NOT NULL,
    -- The next step of the escalation and when it is due (NULL once acknowledged or resolved).
    step                BIGINT  NOT NULL DEFAULT 0,
    next_due_at         BIGINT,
    first_notified_at   BIGINT,
    acknowledged_at     BIGINT,
    acknowledged_by     TEXT,
    resolved_at         BIGINT,
    resolved_by         TEXT
);
CREATE INDEX alerts_due ON alerts (state, next_due_at);
CREATE INDEX alerts_team ON alerts (team_mailbox_id, state);
CREATE UNIQUE INDEX alerts_live_code ON alerts (code) WHERE resolved_at IS NULL;

CREATE TABLE oncall_notifications (
    id              TEXT    PRIMARY KEY,
    alert_id        TEXT    REFERENCES alerts (id),
    purpose         TEXT    NOT NULL CHECK (purpose IN ('alert', 'handover', 'gap')),
    step            BIGINT  NOT NULL,
    worker_id       TEXT    NOT NULL REFERENCES workers (id),
    channel         TEXT    NOT NULL CHECK (channel IN ('sms', 'call', 'email')),
    state           TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'failed', 'cancelled')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    lease_until     BIGINT,
    lease_owner     TEXT,
    -- The provider's id of the SMS or call, or the outbound queue's id of the e-mail.
    provider_ref    TEXT,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    finished_at     BIGINT,
    -- One notification per step, worker and channel: a step is never sent twice.
    UNIQUE (alert_id, step, worker_id, channel)
);
CREATE INDEX oncall_notifications_due ON oncall_notifications (state, next_attempt_at);
CREATE INDEX oncall_notifications_alert ON oncall_notifications (alert_id);

-- Handover and gap notices already given (one instance gives each).
CREATE TABLE oncall_duty_notices (
    team_mailbox_id TEXT    NOT NULL REFERENCES mailboxes (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('handover', 'gap')),
    event_key       TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (team_mailbox_id, kind, event_key)
);
