-- The trail is append-only: no code path updates or deletes it, and these
-- triggers make a stray statement fail instead of rewriting history. Each
-- trigger is one line (the migration runner splits at line-ending ';').
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
