-- One row per event a consumer has applied. The primary key is the whole
-- mechanism: a second insert for the same (consumer, event_id) does nothing,
-- inside the same transaction as the consumer's own writes.
CREATE TABLE processed_events (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX processed_events_time ON processed_events (processed_at);
