-- write_check fails the statement that calls it, with SQLSTATE PR001,
-- when ok is false. A stock write checks with it that it touched exactly
-- the rows it meant to (they were as held): reserve and settle send their
-- write together with the COMMIT (db.InPipeline), so only a failing
-- statement can stop that COMMIT and roll the transaction back. The store
-- reads PR001 as "changed concurrently" and starts over.
-- One line: the migrator cuts statements at semicolons ending a line.
CREATE FUNCTION write_check(ok boolean) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN IF NOT ok THEN RAISE EXCEPTION 'stock rows changed under the write' USING ERRCODE = 'PR001'; END IF; RETURN true; END $$;
