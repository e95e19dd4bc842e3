-- The audit trail: one row per event, keyed by its id, so a redelivered
-- event finds its row and adds nothing. Times are TIMESTAMP (TIMESTAMPTZ
-- on PostgreSQL); data is the payload verbatim, as TEXT rather than JSONB,
-- so what is shown is byte for byte what the producer wrote.
CREATE TABLE audit_log (
    event_id          TEXT PRIMARY KEY,
    event_type        TEXT NOT NULL,
    event_name        TEXT NOT NULL,
    stream            TEXT NOT NULL,
    aggregate_id      TEXT NOT NULL,
    aggregate_version BIGINT NOT NULL,
    actor             TEXT NOT NULL DEFAULT '',
    correlation_id    TEXT NOT NULL DEFAULT '',
    occurred_at       TIMESTAMP NOT NULL,
    audited_at        TIMESTAMP NOT NULL,
    latency_ms        BIGINT NOT NULL CHECK (latency_ms >= 0),
    data              TEXT NOT NULL
);

CREATE INDEX audit_log_occurred ON audit_log (occurred_at, event_id);
CREATE INDEX audit_log_aggregate ON audit_log (aggregate_id, occurred_at);
CREATE INDEX audit_log_correlation ON audit_log (correlation_id, occurred_at);
CREATE INDEX audit_log_type ON audit_log (event_type, occurred_at);
CREATE INDEX audit_log_name ON audit_log (event_name, occurred_at);
CREATE INDEX audit_log_audited ON audit_log (audited_at, latency_ms);
