-- The producer's outbox. Identity values are handed out at insert and
-- commit in any order: the relay never reads "position > checkpoint", it
-- reads every row still unpublished (see package outbox).
CREATE TABLE outbox (
    position     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    stream       TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    envelope     TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);

-- The relay's work list: small, since published rows leave it.
CREATE INDEX outbox_unpublished ON outbox (position) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
