-- Every event applied to the read model, as received, in the order it was
-- applied: what Rebuild replays once the bus has trimmed it.
CREATE TABLE event_journal (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          TEXT NOT NULL UNIQUE,
    event_type        TEXT NOT NULL,
    aggregate_id      TEXT NOT NULL,
    aggregate_version BIGINT NOT NULL,
    occurred_at       TIMESTAMPTZ NOT NULL,
    applied_at        TIMESTAMPTZ NOT NULL,
    envelope          TEXT NOT NULL
);
