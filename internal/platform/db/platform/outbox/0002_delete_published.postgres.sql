-- The relay now deletes a row once it is published instead of marking it
-- and keeping it for a day (see package outbox): the rows an earlier
-- version kept go now, and so does the index their cleanup read.
DELETE FROM outbox WHERE published_at IS NOT NULL;
DROP INDEX outbox_published;
