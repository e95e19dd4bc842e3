-- The claims event store: an append-only log. position orders the whole
-- log (AUTOINCREMENT: never reused); (aggregate_id, version) is the
-- optimistic-concurrency key, so two appends at one version cannot both
-- commit. Times are UTC with millisecond precision.
CREATE TABLE claim_events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       TEXT NOT NULL UNIQUE,
    aggregate_id   TEXT NOT NULL,
    version        BIGINT NOT NULL,
    event_type     TEXT NOT NULL,
    occurred_at    TIMESTAMP NOT NULL,
    correlation_id TEXT NOT NULL DEFAULT '',
    actor          TEXT NOT NULL DEFAULT '',
    data           TEXT NOT NULL
);

CREATE UNIQUE INDEX claim_events_version ON claim_events (aggregate_id, version);
CREATE INDEX claim_events_type ON claim_events (event_type);
CREATE INDEX claim_events_time ON claim_events (occurred_at);

-- The relay's work list, written in the append's transaction: a row per
-- event not yet published, deleted once the bus has it. The relay never
-- reads "position > checkpoint", so an event committed late cannot be
-- passed over.
CREATE TABLE claim_events_unpublished (
    position BIGINT PRIMARY KEY
);

-- Events are immutable: the database refuses to change or remove one.
CREATE TRIGGER claim_events_no_update BEFORE UPDATE ON claim_events BEGIN SELECT RAISE(ABORT, 'claim events are immutable'); END;
CREATE TRIGGER claim_events_no_delete BEFORE DELETE ON claim_events BEGIN SELECT RAISE(ABORT, 'claim events are immutable'); END;
