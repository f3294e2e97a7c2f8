-- SQLite's 0012 moves FTS5 indexing to once per commit and records how far it got in
-- `log_state.fts_through`. PostgreSQL computes its search column in the writing statement and
-- never reads this column; it is added so both schemas keep the same shape (`parley copy`
-- compares them column by column).
ALTER TABLE log_state ADD COLUMN fts_through BIGINT NOT NULL DEFAULT 0;
