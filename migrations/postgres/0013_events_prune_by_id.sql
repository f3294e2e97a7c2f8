-- Pruning finds its cutoff by id (ids follow time: the first event recent enough is found by
-- walking the primary key from the oldest, which visits only the rows about to be deleted), so
-- the index on `created_at` goes: it was written on every commit and read once every ten minutes.
DROP INDEX events_created;
