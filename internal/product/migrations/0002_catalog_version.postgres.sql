-- The catalog's version: one number that every change to products moves,
-- in the transaction of the change. Each process caches product list
-- pages and serves one only when this number, read after the request
-- arrived (one tiny read, shared by the requests that arrive together),
-- still matches: a page is never served after a change committed by any
-- process, or by hand in psql. A trigger rather than the store bumps it,
-- for that reason: no writer can forget.
CREATE TABLE catalog_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);

INSERT INTO catalog_version (id, version) VALUES (1, 1);

-- One line each: the migrator cuts statements at semicolons ending a line.
-- The table is named through TG_TABLE_SCHEMA, so a writer whose
-- search_path differs still moves this schema's version.
CREATE FUNCTION bump_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('UPDATE %I.catalog_version SET version = version + 1', TG_TABLE_SCHEMA); RETURN NULL; END $$;

-- Per statement: a bulk change moves the version once.
CREATE TRIGGER products_catalog_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON products FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
