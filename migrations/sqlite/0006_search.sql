-- Full-text search over messages (GET /search). Keep in step with ../postgres/0006_search.sql.
--
-- An FTS5 index with external content: the text stays in `messages` alone. Besides the body it
-- indexes the conversation and author ids as tokens, so "in the conversations I am a member of"
-- and `from:` are part of the MATCH and cost what the user's own messages cost, not what every
-- match in the instance costs. Only people's messages (kind 'text') are indexed: notes about a
-- group ("ann added @cat") are not found.
--
-- The triggers keep the index in step inside the writing transaction (insert, edit, delete, and
-- the cascade when a conversation or user goes). Never run the 'rebuild' command on this table:
-- it would index the notes too.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    conversation_id,
    author_id,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2',
    -- An index of two-letter prefixes: `ka*` reads one list instead of merging those of the
    -- thousands of words that start so (longer prefixes name few enough words).
    prefix = '2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.kind = 'text' BEGIN
    INSERT INTO messages_fts (rowid, body, conversation_id, author_id)
    VALUES (new.id, new.body, new.conversation_id, new.author_id);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.kind = 'text' BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body, conversation_id, author_id)
    VALUES ('delete', old.id, old.body, old.conversation_id, old.author_id);
END;

-- An edit: the old text out, the new text in (a 'delete' must name exactly what was indexed).
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, kind, conversation_id, author_id ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body, conversation_id, author_id)
    SELECT 'delete', old.id, old.body, old.conversation_id, old.author_id WHERE old.kind = 'text';
    INSERT INTO messages_fts (rowid, body, conversation_id, author_id)
    SELECT new.id, new.body, new.conversation_id, new.author_id WHERE new.kind = 'text';
END;

-- The messages written before this migration.
INSERT INTO messages_fts (rowid, body, conversation_id, author_id)
SELECT id, body, conversation_id, author_id FROM messages WHERE kind = 'text';
