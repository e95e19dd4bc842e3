-- A saga and each of its steps are written before and after every
-- downstream call, so a new process can resume any saga a dead one left.
-- lock_key keeps one saga per cart at a time ('cart:<session>' while a
-- checkout runs) and one live cancellation per order ('cancel:<order>'
-- unless it failed); owner and lease_until say which orchestrator drives
-- the saga and until when its claim holds without renewal.
CREATE TABLE sagas (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('checkout', 'cancel')),
    status         TEXT NOT NULL,
    version        INTEGER NOT NULL,
    customer_id    TEXT NOT NULL DEFAULT '',
    session_id     TEXT NOT NULL DEFAULT '',
    location_id    TEXT NOT NULL DEFAULT '',
    reservation_id TEXT NOT NULL DEFAULT '',
    payment_id     TEXT NOT NULL DEFAULT '',
    order_id       TEXT NOT NULL DEFAULT '',
    total_cents    BIGINT NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
    currency       TEXT NOT NULL DEFAULT 'CAD',
    data           TEXT NOT NULL,
    payment_token  TEXT NOT NULL DEFAULT '',
    failed_step    TEXT NOT NULL DEFAULT '',
    error          TEXT NOT NULL DEFAULT '',
    error_kind     TEXT NOT NULL DEFAULT '',
    error_status   INTEGER NOT NULL DEFAULT 0,
    lock_key       TEXT UNIQUE,
    owner          TEXT NOT NULL DEFAULT '',
    lease_until    TIMESTAMP,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP
);

CREATE INDEX sagas_status ON sagas (status, created_at);
CREATE INDEX sagas_customer ON sagas (customer_id, created_at);
CREATE INDEX sagas_order ON sagas (order_id);
CREATE INDEX sagas_open ON sagas (created_at) WHERE finished_at IS NULL;

CREATE TABLE saga_steps (
    saga_id      TEXT NOT NULL REFERENCES sagas(id),
    seq          INTEGER NOT NULL,
    step         TEXT NOT NULL,
    compensation BOOLEAN NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempts     INTEGER NOT NULL CHECK (attempts >= 1),
    request      TEXT NOT NULL,
    response     TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL DEFAULT '',
    error_kind   TEXT NOT NULL DEFAULT '',
    started_at   TIMESTAMP NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    PRIMARY KEY (saga_id, seq),
    UNIQUE (saga_id, step)
);

-- Idempotency keys of POST /checkout, per caller (scope), with the hash
-- of the body they were first used with. Kept as long as their saga
-- (sagas are never deleted), so well past the 24 h promised.
CREATE TABLE checkout_keys (
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    saga_id      TEXT NOT NULL REFERENCES sagas(id),
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
