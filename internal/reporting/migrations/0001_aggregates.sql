-- The read model's aggregates. Every table is derived from the events in
-- event_journal (0002) and is emptied and refilled by Rebuild. Days are
-- calendar days (YYYY-MM-DD) in the reporting time zone: text sorts and
-- compares the same on both engines. Sums are BIGINT: INTEGER is 32-bit on
-- PostgreSQL, and a year of cents overflows it.

-- Sales by day, location and channel (pos | online). Returns and order
-- cancellations count on the day they happen.
CREATE TABLE sales_by_day (
    day                TEXT NOT NULL,
    location_id        TEXT NOT NULL,
    channel            TEXT NOT NULL,
    sales_count        BIGINT NOT NULL DEFAULT 0,
    units              BIGINT NOT NULL DEFAULT 0,
    discount_cents     BIGINT NOT NULL DEFAULT 0,
    revenue_cents      BIGINT NOT NULL DEFAULT 0,
    tax_cents          BIGINT NOT NULL DEFAULT 0,
    total_cents        BIGINT NOT NULL DEFAULT 0,
    returns_count      BIGINT NOT NULL DEFAULT 0,
    returned_units     BIGINT NOT NULL DEFAULT 0,
    returned_cents     BIGINT NOT NULL DEFAULT 0,
    returned_tax_cents BIGINT NOT NULL DEFAULT 0,
    refunded_cents     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, location_id, channel)
);

-- Product sales by day and channel: what top products rank.
CREATE TABLE product_sales_by_day (
    day            TEXT NOT NULL,
    product_id     TEXT NOT NULL,
    channel        TEXT NOT NULL,
    units_sold     BIGINT NOT NULL DEFAULT 0,
    revenue_cents  BIGINT NOT NULL DEFAULT 0,
    units_returned BIGINT NOT NULL DEFAULT 0,
    returned_cents BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, product_id, channel)
);

-- Current stock per location and product, as the newest StockChanged
-- (highest aggregate_version) left it.
CREATE TABLE stock_levels (
    location_id TEXT NOT NULL,
    product_id  TEXT NOT NULL,
    on_hand     BIGINT NOT NULL,
    reserved    BIGINT NOT NULL,
    available   BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (location_id, product_id)
);

-- Checkout saga outcomes by day.
CREATE TABLE checkouts_by_day (
    day         TEXT PRIMARY KEY,
    completed   BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0
);

-- What each OrderConfirmed booked, so that its OrderCancelled takes exactly
-- that back, once (cancelled_day is set by the first cancel). lines is JSON:
-- [{product_id, quantity, line_total_cents}].
CREATE TABLE order_facts (
    order_id       TEXT PRIMARY KEY,
    location_id    TEXT NOT NULL,
    subtotal_cents BIGINT NOT NULL,
    tax_cents      BIGINT NOT NULL,
    total_cents    BIGINT NOT NULL,
    units          BIGINT NOT NULL,
    lines          TEXT NOT NULL,
    confirmed_day  TEXT NOT NULL,
    cancelled_day  TEXT
);

-- SKU and name of products as the events carried them (sales lines carry a
-- SKU, order lines both), for products the catalog does not know. *_at is
-- the event's time in microseconds: the newest value wins whatever order
-- the events were applied in.
CREATE TABLE product_labels (
    product_id TEXT PRIMARY KEY,
    sku        TEXT NOT NULL DEFAULT '',
    sku_at     BIGINT NOT NULL DEFAULT 0,
    name       TEXT NOT NULL DEFAULT '',
    name_at    BIGINT NOT NULL DEFAULT 0
);
