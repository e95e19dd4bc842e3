-- Orders are created confirmed by the checkout saga, one per saga (the
-- unique saga_id is the idempotency key), and move through fulfilment or
-- are cancelled. Amount arithmetic is checked by the service and backed
-- up here.
CREATE TABLE orders (
    id               TEXT PRIMARY KEY,
    saga_id          TEXT NOT NULL UNIQUE,
    customer_id      TEXT NOT NULL,
    location_id      TEXT NOT NULL,
    payment_id       TEXT NOT NULL DEFAULT '',
    reservation_id   TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled', 'shipped', 'delivered')),
    ship_name        TEXT NOT NULL,
    ship_line1       TEXT NOT NULL,
    ship_line2       TEXT NOT NULL DEFAULT '',
    ship_city        TEXT NOT NULL,
    ship_province    TEXT NOT NULL,
    ship_postal_code TEXT NOT NULL,
    ship_country     TEXT NOT NULL,
    subtotal_cents   BIGINT NOT NULL CHECK (subtotal_cents >= 0),
    taxes            TEXT NOT NULL,
    tax_cents        BIGINT NOT NULL CHECK (tax_cents >= 0),
    total_cents      BIGINT NOT NULL CHECK (total_cents = subtotal_cents + tax_cents),
    currency         TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    confirmed_at     TIMESTAMP,
    shipped_at       TIMESTAMP,
    delivered_at     TIMESTAMP,
    cancelled_at     TIMESTAMP
);

CREATE INDEX orders_customer ON orders (customer_id, created_at);
CREATE INDEX orders_status ON orders (status, created_at);
CREATE INDEX orders_created ON orders (created_at, id);

CREATE TABLE order_lines (
    order_id         TEXT NOT NULL REFERENCES orders(id),
    line_no          INTEGER NOT NULL,
    product_id       TEXT NOT NULL,
    sku              TEXT NOT NULL,
    name             TEXT NOT NULL,
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    line_total_cents BIGINT NOT NULL CHECK (line_total_cents = unit_price_cents * quantity),
    PRIMARY KEY (order_id, line_no)
);
