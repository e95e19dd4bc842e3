CREATE TABLE categories (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    parent_id   TEXT REFERENCES categories(id),
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE products (
    id              TEXT PRIMARY KEY,
    sku             TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    category_id     TEXT REFERENCES categories(id),
    price_cents     BIGINT NOT NULL CHECK (price_cents >= 0),
    currency        TEXT NOT NULL DEFAULT 'CAD',
    alert_threshold INTEGER NOT NULL DEFAULT 0 CHECK (alert_threshold >= 0),
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    version         INTEGER NOT NULL DEFAULT 1,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);

CREATE INDEX products_category ON products (category_id);
CREATE INDEX products_name ON products (name, id);
