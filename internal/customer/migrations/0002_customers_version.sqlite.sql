-- The version of the customer list: one number that every change to
-- customers moves, in the transaction of the change. The process caches
-- customer list pages and serves one only when this number, read after
-- the request arrived (one tiny read, shared by the requests that arrive
-- together), still matches: a page is never served after a change,
-- whoever made it. A trigger rather than the store bumps it, for that
-- reason: no writer can forget.
CREATE TABLE customers_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);

INSERT INTO customers_version (id, version) VALUES (1, 1);

-- One line each: the migrator cuts statements at semicolons ending a line.
-- SQLite triggers fire per row only.
CREATE TRIGGER customers_insert_customers_version AFTER INSERT ON customers BEGIN UPDATE customers_version SET version = version + 1; END;
CREATE TRIGGER customers_update_customers_version AFTER UPDATE ON customers BEGIN UPDATE customers_version SET version = version + 1; END;
CREATE TRIGGER customers_delete_customers_version AFTER DELETE ON customers BEGIN UPDATE customers_version SET version = version + 1; END;
