-- The claims event store: an append-only log. position orders the whole
-- log; identity values are taken at insert and become visible at commit,
-- in any order (hence claim_events_unpublished below). (aggregate_id,
-- version) is the optimistic-concurrency key, so two appends at one
-- version cannot both commit. Times are UTC with millisecond precision.
CREATE TABLE claim_events (
    position       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    aggregate_id   TEXT NOT NULL,
    version        BIGINT NOT NULL,
    event_type     TEXT NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
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
CREATE FUNCTION claim_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'claim events are immutable'; END $$;
CREATE TRIGGER claim_events_no_change BEFORE UPDATE OR DELETE ON claim_events FOR EACH ROW EXECUTE FUNCTION claim_events_immutable();
CREATE TRIGGER claim_events_no_truncate BEFORE TRUNCATE ON claim_events FOR EACH STATEMENT EXECUTE FUNCTION claim_events_immutable();
