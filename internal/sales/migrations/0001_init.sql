-- Sales: registers, register sessions, sales (pending until their stock has
-- left), their lines, taxes and tender, returns.
-- Portable SQL: TIMESTAMP becomes TIMESTAMPTZ on PostgreSQL.

CREATE TABLE registers (
    id          TEXT PRIMARY KEY,
    location_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL
);

CREATE INDEX registers_location ON registers (location_id, id);

CREATE TABLE register_sessions (
    id                  TEXT PRIMARY KEY,
    register_id         TEXT NOT NULL REFERENCES registers(id),
    location_id         TEXT NOT NULL,
    cashier_id          TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    opening_float_cents BIGINT NOT NULL CHECK (opening_float_cents >= 0),
    counted_cash_cents  BIGINT,
    report              TEXT,
    opened_at           TIMESTAMP NOT NULL,
    closed_at           TIMESTAMP,
    updated_at          TIMESTAMP NOT NULL
);

-- One open session per register, whatever runs concurrently.
CREATE UNIQUE INDEX register_sessions_one_open ON register_sessions (register_id) WHERE status = 'open';
CREATE INDEX register_sessions_register ON register_sessions (register_id, opened_at);

CREATE TABLE sales (
    id                  TEXT PRIMARY KEY,
    status              TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'voided')),
    void_reason         TEXT NOT NULL DEFAULT '',
    -- Set on a voided sale whose stock left anyway (see the package doc);
    -- cleared once inventory has it back.
    stock_to_restore    BOOLEAN NOT NULL DEFAULT FALSE,
    version             INTEGER NOT NULL DEFAULT 1,
    location_id         TEXT NOT NULL,
    store_name          TEXT NOT NULL,
    store_address       TEXT NOT NULL,
    province            TEXT NOT NULL,
    register_id         TEXT NOT NULL REFERENCES registers(id),
    session_id          TEXT NOT NULL REFERENCES register_sessions(id),
    cashier_id          TEXT NOT NULL,
    idempotency_key     TEXT,
    request_hash        TEXT NOT NULL,
    currency            TEXT NOT NULL,
    gross_cents         BIGINT NOT NULL CHECK (gross_cents >= 0),
    discount_cents      BIGINT NOT NULL CHECK (discount_cents >= 0),
    subtotal_cents      BIGINT NOT NULL CHECK (subtotal_cents >= 0),
    tax_cents           BIGINT NOT NULL CHECK (tax_cents >= 0),
    total_cents         BIGINT NOT NULL CHECK (total_cents >= 0),
    cash_cents          BIGINT NOT NULL CHECK (cash_cents >= 0),
    card_cents          BIGINT NOT NULL CHECK (card_cents >= 0),
    change_cents        BIGINT NOT NULL CHECK (change_cents >= 0),
    refunded_cash_cents BIGINT NOT NULL DEFAULT 0 CHECK (refunded_cash_cents >= 0),
    refunded_card_cents BIGINT NOT NULL DEFAULT 0 CHECK (refunded_card_cents >= 0),
    created_at          TIMESTAMP NOT NULL,
    completed_at        TIMESTAMP,
    updated_at          TIMESTAMP NOT NULL,
    -- Only cash gives change; money never goes back beyond what came in.
    CHECK (change_cents <= cash_cents),
    CHECK (card_cents <= total_cents),
    CHECK (refunded_card_cents <= card_cents),
    CHECK (refunded_cash_cents + refunded_card_cents <= total_cents)
);

-- An idempotency key belongs to the register that sent it (NULLs are
-- distinct on both engines: sales without a key never clash).
CREATE UNIQUE INDEX sales_idempotency ON sales (register_id, idempotency_key);
CREATE INDEX sales_session ON sales (session_id, status);
CREATE INDEX sales_location_time ON sales (location_id, status, created_at);
CREATE INDEX sales_register_time ON sales (register_id, status, created_at);
CREATE INDEX sales_status_time ON sales (status, created_at);

CREATE TABLE sale_lines (
    sale_id           TEXT NOT NULL REFERENCES sales(id),
    line_no           INTEGER NOT NULL,
    product_id        TEXT NOT NULL,
    sku               TEXT NOT NULL,
    name              TEXT NOT NULL,
    unit_price_cents  BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    quantity          BIGINT NOT NULL CHECK (quantity > 0),
    discount_percent  INTEGER NOT NULL CHECK (discount_percent BETWEEN 0 AND 100),
    gross_cents       BIGINT NOT NULL,
    discount_cents    BIGINT NOT NULL,
    net_cents         BIGINT NOT NULL,
    tax_cents         BIGINT NOT NULL,
    returned_quantity BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (sale_id, line_no),
    UNIQUE (sale_id, product_id),
    -- The last line of defence of "never more returned than sold".
    CHECK (returned_quantity >= 0 AND returned_quantity <= quantity)
);

CREATE TABLE sale_line_taxes (
    sale_id      TEXT NOT NULL REFERENCES sales(id),
    line_no      INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    rate_ppm     BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    PRIMARY KEY (sale_id, line_no, position)
);

CREATE TABLE sale_payments (
    sale_id      TEXT NOT NULL REFERENCES sales(id),
    seq          INTEGER NOT NULL,
    method       TEXT NOT NULL CHECK (method IN ('cash', 'card')),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    PRIMARY KEY (sale_id, seq)
);

CREATE TABLE returns (
    id                TEXT PRIMARY KEY,
    sale_id           TEXT NOT NULL REFERENCES sales(id),
    register_id       TEXT NOT NULL REFERENCES registers(id),
    session_id        TEXT NOT NULL REFERENCES register_sessions(id),
    location_id       TEXT NOT NULL,
    reason            TEXT NOT NULL,
    idempotency_key   TEXT,
    request_hash      TEXT NOT NULL,
    currency          TEXT NOT NULL,
    subtotal_cents    BIGINT NOT NULL CHECK (subtotal_cents >= 0),
    tax_cents         BIGINT NOT NULL CHECK (tax_cents >= 0),
    total_cents       BIGINT NOT NULL CHECK (total_cents >= 0),
    refund_cash_cents BIGINT NOT NULL CHECK (refund_cash_cents >= 0),
    refund_card_cents BIGINT NOT NULL CHECK (refund_card_cents >= 0),
    restocked         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    CHECK (refund_cash_cents + refund_card_cents = total_cents)
);

CREATE UNIQUE INDEX returns_idempotency ON returns (sale_id, idempotency_key);
CREATE INDEX returns_sale ON returns (sale_id, created_at);
CREATE INDEX returns_session ON returns (session_id);
CREATE INDEX returns_restocked ON returns (restocked, created_at);

CREATE TABLE return_lines (
    return_id      TEXT NOT NULL REFERENCES returns(id),
    line_no        INTEGER NOT NULL,
    sale_line_no   INTEGER NOT NULL,
    product_id     TEXT NOT NULL,
    sku            TEXT NOT NULL,
    name           TEXT NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    subtotal_cents BIGINT NOT NULL,
    tax_cents      BIGINT NOT NULL,
    PRIMARY KEY (return_id, line_no)
);

CREATE TABLE return_line_taxes (
    return_id    TEXT NOT NULL REFERENCES returns(id),
    line_no      INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    rate_ppm     BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    PRIMARY KEY (return_id, line_no, position)
);
