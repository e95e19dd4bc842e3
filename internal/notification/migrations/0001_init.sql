-- One row per message: (event, recipient, channel) is unique, which is
-- what keeps a redelivered event from producing a second message even if
-- the inbox were bypassed. in_flight marks a send that has started and not
-- been recorded: found on a redelivery, it means the outcome is unknown.
CREATE TABLE notifications (
    id             TEXT PRIMARY KEY,
    event_id       TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    event_name     TEXT NOT NULL,
    aggregate_id   TEXT NOT NULL DEFAULT '',
    recipient_id   TEXT NOT NULL DEFAULT '',
    recipient      TEXT NOT NULL,
    channel        TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'inbox')),
    subject        TEXT NOT NULL,
    body           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    in_flight      BOOLEAN NOT NULL DEFAULT FALSE,
    error          TEXT NOT NULL DEFAULT '',
    correlation_id TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMP NOT NULL,
    sent_at        TIMESTAMP
);

CREATE UNIQUE INDEX notifications_once ON notifications (event_id, recipient, channel);
CREATE INDEX notifications_created ON notifications (created_at, id);
CREATE INDEX notifications_recipient ON notifications (recipient, created_at);
CREATE INDEX notifications_recipient_id ON notifications (recipient_id, created_at);
CREATE INDEX notifications_event_type ON notifications (event_type, created_at);
CREATE INDEX notifications_event_name ON notifications (event_name, created_at);
CREATE INDEX notifications_status ON notifications (status, created_at);

-- Which customer filed each claim, from ClaimCreated: later claim events
-- carry only the claim id. Our own projection, not the claims context's
-- tables (one database per context).
CREATE TABLE notification_claims (
    claim_id    TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
