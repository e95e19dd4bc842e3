-- The catalog's version: one number that every change to products moves,
-- in the transaction of the change. The process caches product list pages
-- and serves one only when this number, read after the request arrived
-- (one tiny read, shared by the requests that arrive together), still
-- matches: a page is never served after a change, whoever made it. A
-- trigger rather than the store bumps it, for that reason: no writer can
-- forget.
CREATE TABLE catalog_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);

INSERT INTO catalog_version (id, version) VALUES (1, 1);

-- One line each: the migrator cuts statements at semicolons ending a line.
-- SQLite triggers fire per row only.
CREATE TRIGGER products_insert_catalog_version AFTER INSERT ON products BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER products_update_catalog_version AFTER UPDATE ON products BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER products_delete_catalog_version AFTER DELETE ON products BEGIN UPDATE catalog_version SET version = version + 1; END;
