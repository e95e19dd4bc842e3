-- The producer's outbox. AUTOINCREMENT so a position is never reused after
-- the cleanup deletes the newest rows.
CREATE TABLE outbox (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    stream       TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    envelope     TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    published_at TIMESTAMP
);

-- The relay's work list: small, since published rows leave it.
CREATE INDEX outbox_unpublished ON outbox (position) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
