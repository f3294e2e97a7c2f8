-- The search index's segments are merged a little at every commit (src/db/writer.rs,
-- INDEX_NEW_MESSAGES: a 'merge' of at most 16 pages) instead of by FTS5's automerge. With one
-- new segment per commit (0012), automerge did its work in quanta of 64 pages per level of the
-- index once every 64 pages written: under load, one commit in a few hundred spent 16 ms of the
-- writer's time merging, and every use case in that batch and the batches queued behind it
-- waited (docs/performance.md, eleventh session). FTS5 still merges a whole level at once when
-- it reaches 16 segments (crisismerge), so the index stays sound if the merging ever falls
-- behind.
INSERT INTO messages_fts (messages_fts, rank) VALUES ('automerge', 0);
