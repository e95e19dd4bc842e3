-- The embedded bus: one log per stream, a cursor and pending list per
-- consumer group, dead letters. Times are Unix milliseconds (BIGINT): they
-- are compared in SQL, and integers compare the same on both engines.

-- bus_streams holds each stream's last sequence number. Publishers lock the
-- row while they append, so sequence numbers become visible in order and a
-- group cursor can never pass over an entry that commits late.
CREATE TABLE bus_streams (
    stream   TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE bus_messages (
    stream     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    envelope   TEXT NOT NULL,
    added_ms   BIGINT NOT NULL,
    PRIMARY KEY (stream, seq)
);

-- Publishing an event id twice is a no-op.
CREATE UNIQUE INDEX bus_messages_event ON bus_messages (stream, event_id);

-- last_delivered: every entry up to it has been handed to some consumer of
-- the group (and is acked or in bus_pending).
CREATE TABLE bus_groups (
    grp            TEXT NOT NULL,
    stream         TEXT NOT NULL,
    last_delivered BIGINT NOT NULL DEFAULT 0,
    created_ms     BIGINT NOT NULL,
    PRIMARY KEY (grp, stream)
);

-- Delivered, not yet acknowledged: Redis's pending entries list.
CREATE TABLE bus_pending (
    grp          TEXT NOT NULL,
    stream       TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    consumer     TEXT NOT NULL,
    deliveries   INTEGER NOT NULL,
    delivered_ms BIGINT NOT NULL,
    PRIMARY KEY (grp, stream, seq)
);

CREATE INDEX bus_pending_idle ON bus_pending (grp, delivered_ms);
CREATE INDEX bus_pending_stream ON bus_pending (stream, seq);

CREATE TABLE bus_dead_letters (
    grp        TEXT NOT NULL,
    stream     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    envelope   TEXT NOT NULL,
    deliveries INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    dead_ms    BIGINT NOT NULL,
    PRIMARY KEY (grp, stream, seq)
);

CREATE INDEX bus_dead_letters_time ON bus_dead_letters (grp, dead_ms);
