-- The event log's id becomes the table's rowid. As `BIGINT PRIMARY KEY` it was a column beside
-- the rowid with an index of its own (`sqlite_autoindex_events_1`): every event went into two
-- B-trees, and every commit wrote a page of each. Ids are still given by the writer (they are
-- never left to SQLite), so nothing else changes. PostgreSQL is unchanged.
CREATE TABLE events_by_rowid (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL, -- JSON of the Event
    audience        TEXT    NOT NULL, -- ',1,2,', or '' for its conversation's members
    created_at      BIGINT  NOT NULL,
    conversation_id BIGINT
);
INSERT INTO events_by_rowid (id, kind, payload, audience, created_at, conversation_id)
    SELECT id, kind, payload, audience, created_at, conversation_id FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_by_rowid RENAME TO events;
CREATE INDEX events_created ON events (created_at);
