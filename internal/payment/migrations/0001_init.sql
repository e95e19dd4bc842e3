-- payments: one row per transaction id. The unique transaction_id is the
-- lock that makes a charge happen once: the first insert owns the attempt.
-- token_hash, never the token, is kept: enough to tell a replay from a
-- different request.
CREATE TABLE payments (
    id                 TEXT PRIMARY KEY,
    transaction_id     TEXT NOT NULL UNIQUE,
    order_id           TEXT NOT NULL DEFAULT '',
    customer_id        TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL CHECK (status IN ('pending', 'captured', 'partially_refunded', 'refunded', 'declined', 'failed')),
    amount_cents       BIGINT NOT NULL CHECK (amount_cents > 0),
    refunded_cents     BIGINT NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
    currency           TEXT NOT NULL,
    method             TEXT NOT NULL,
    token_hash         TEXT NOT NULL,
    authorization_code TEXT NOT NULL DEFAULT '',
    charge_ref         TEXT NOT NULL DEFAULT '',
    failure_reason     TEXT NOT NULL DEFAULT '',
    attempts           INTEGER NOT NULL DEFAULT 1,
    lease_expires_at   TIMESTAMP,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);

CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX payments_order ON payments (order_id, created_at);
CREATE INDEX payments_customer ON payments (customer_id, created_at);
CREATE INDEX payments_status ON payments (status, created_at);
CREATE INDEX payments_currency_status ON payments (currency, status);

-- refunds: one row per refund id; a pending or succeeded refund's amount is
-- counted in its payment's refunded_cents.
CREATE TABLE refunds (
    id               TEXT PRIMARY KEY,
    refund_id        TEXT NOT NULL UNIQUE,
    payment_id       TEXT NOT NULL REFERENCES payments(id),
    amount_cents     BIGINT NOT NULL CHECK (amount_cents > 0),
    currency         TEXT NOT NULL,
    reason           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    refund_ref       TEXT NOT NULL DEFAULT '',
    failure_reason   TEXT NOT NULL DEFAULT '',
    attempts         INTEGER NOT NULL DEFAULT 1,
    lease_expires_at TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);

CREATE INDEX refunds_payment ON refunds (payment_id, created_at);
