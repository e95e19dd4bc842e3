-- A saga's data (its checkout request and priced cart, about a kilobyte of
-- JSON) moves out of its row: the row is written again at every step, and
-- on PostgreSQL every write is a whole new row version in the table and
-- the WAL, while the data is written once and hardly ever changes. The
-- engine writes saga_data only when the data changed.
CREATE TABLE saga_data (
    saga_id TEXT PRIMARY KEY REFERENCES sagas(id),
    data    TEXT NOT NULL
);

INSERT INTO saga_data (saga_id, data) SELECT id, data FROM sagas;

ALTER TABLE sagas DROP COLUMN data;
