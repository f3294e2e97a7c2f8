-- New messages enter the search index once per commit, not once per message (see
-- src/db/writer.rs, `WriterState::flush`). FTS5 writes a new index segment at every savepoint of
-- a batch and merges those segments again later; indexing a whole batch with one statement just
-- before its COMMIT writes one segment per commit, and the index is still in step when the batch
-- becomes visible (same transaction).
--
-- `fts_through`: every message with an id at or below it is in the index. Ids only grow (the
-- table is AUTOINCREMENT), so "not indexed yet" is exactly "id above it". An edit or delete of a
-- message not indexed yet must leave the index alone (a 'delete' of something never indexed
-- corrupts an external-content FTS5 table): the commit indexes whatever text it has by then.
ALTER TABLE log_state ADD COLUMN fts_through BIGINT NOT NULL DEFAULT 0;
-- Everything so far went in through the per-message trigger.
UPDATE log_state SET fts_through = (SELECT COALESCE(MAX(id), 0) FROM messages) WHERE singleton = 1;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.kind = 'text' AND old.id <= (SELECT fts_through FROM log_state WHERE singleton = 1)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body, conversation_id, author_id)
    VALUES ('delete', old.id, old.body, old.conversation_id, old.author_id);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, kind, conversation_id, author_id ON messages
WHEN old.id <= (SELECT fts_through FROM log_state WHERE singleton = 1)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body, conversation_id, author_id)
    SELECT 'delete', old.id, old.body, old.conversation_id, old.author_id WHERE old.kind = 'text';
    INSERT INTO messages_fts (rowid, body, conversation_id, author_id)
    SELECT new.id, new.body, new.conversation_id, new.author_id WHERE new.kind = 'text';
END;
