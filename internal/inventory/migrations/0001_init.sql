-- Inventory: locations, stock per (location, product), the stock ledger,
-- adjustments (idempotency records), reservations and transfers.
-- Portable SQL: TIMESTAMP becomes TIMESTAMPTZ on PostgreSQL.

CREATE TABLE locations (
    id         TEXT PRIMARY KEY,
    code       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('store', 'warehouse', 'online')),
    province   TEXT NOT NULL,
    address    TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);

-- The invariant lives here too: the service's conditional updates keep it,
-- these constraints refuse any write that would not.
CREATE TABLE stock (
    location_id TEXT NOT NULL REFERENCES locations(id),
    product_id  TEXT NOT NULL,
    on_hand     BIGINT NOT NULL,
    reserved    BIGINT NOT NULL DEFAULT 0,
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (location_id, product_id),
    CONSTRAINT stock_reserved_not_negative CHECK (reserved >= 0),
    CONSTRAINT stock_on_hand_covers_reserved CHECK (on_hand >= reserved)
);

CREATE INDEX stock_product ON stock (product_id);

-- Every change to a stock row, written in the same transaction: summing a
-- row's movements gives its on_hand and reserved.
CREATE TABLE stock_movements (
    id             TEXT PRIMARY KEY,
    location_id    TEXT NOT NULL,
    product_id     TEXT NOT NULL,
    delta_on_hand  BIGINT NOT NULL,
    delta_reserved BIGINT NOT NULL,
    reason         TEXT NOT NULL,
    reference      TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMP NOT NULL
);

CREATE INDEX stock_movements_stock ON stock_movements (location_id, product_id, created_at);
CREATE INDEX stock_movements_reference ON stock_movements (reference);

CREATE TABLE adjustments (
    id          TEXT PRIMARY KEY,
    location_id TEXT NOT NULL REFERENCES locations(id),
    product_id  TEXT NOT NULL,
    delta       BIGINT NOT NULL CHECK (delta <> 0),
    reason      TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE reservations (
    id         TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('active', 'committed', 'released', 'expired')),
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- The sweep looks for active reservations past their expiry.
CREATE INDEX reservations_due ON reservations (status, expires_at);

CREATE TABLE reservation_items (
    reservation_id TEXT NOT NULL REFERENCES reservations(id),
    location_id    TEXT NOT NULL,
    product_id     TEXT NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, location_id, product_id)
);

-- Finds the reservations holding one stock row (lazy expiry on shortage).
CREATE INDEX reservation_items_stock ON reservation_items (location_id, product_id);

CREATE TABLE transfers (
    id               TEXT PRIMARY KEY,
    product_id       TEXT NOT NULL,
    from_location_id TEXT NOT NULL REFERENCES locations(id),
    to_location_id   TEXT NOT NULL REFERENCES locations(id),
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    note             TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    decided_at       TIMESTAMP,
    CHECK (from_location_id <> to_location_id)
);

CREATE INDEX transfers_created ON transfers (created_at, id);
CREATE INDEX transfers_from ON transfers (from_location_id, created_at);
CREATE INDEX transfers_to ON transfers (to_location_id, created_at);
