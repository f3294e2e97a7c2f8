-- Replay reads the log's range in id order and keeps what the user may see (db::events::
-- for_user_after), so the log needs no index by conversation. Every post wrote a leaf of
-- `events_conversation`: with many conversations active at once, about a quarter of the pages
-- of each commit (docs/performance.md, thirteenth session). `events_explicit` served only the
-- replay query's other half. PostgreSQL keeps both: its ids are sparse, so a range there says
-- nothing about how many rows it holds.
DROP INDEX events_conversation;
DROP INDEX events_explicit;
