-- Every write to a stock row bumps its version, so consumers of
-- inventory.StockChanged events can ignore an older event that arrives
-- after a newer one.
ALTER TABLE stock ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
