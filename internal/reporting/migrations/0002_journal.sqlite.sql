-- Every event applied to the read model, as received, in the order it was
-- applied: what Rebuild replays once the bus has trimmed it. AUTOINCREMENT
-- so a sequence number is never reused.
CREATE TABLE event_journal (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id          TEXT NOT NULL UNIQUE,
    event_type        TEXT NOT NULL,
    aggregate_id      TEXT NOT NULL,
    aggregate_version BIGINT NOT NULL,
    occurred_at       TIMESTAMP NOT NULL,
    applied_at        TIMESTAMP NOT NULL,
    envelope          TEXT NOT NULL
);
