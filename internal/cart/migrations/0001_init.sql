-- One row per cart. The lines are a JSON document (the same one the Redis
-- store keeps): a cart is always read and written whole, and a version
-- column makes every write conditional on the version read.
CREATE TABLE carts (
    session_id  TEXT PRIMARY KEY,
    customer_id TEXT,
    lines       TEXT NOT NULL,
    version     BIGINT NOT NULL CHECK (version > 0),
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL
);

CREATE INDEX carts_expires_at ON carts (expires_at);
CREATE INDEX carts_customer ON carts (customer_id);
