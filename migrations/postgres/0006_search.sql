-- Full-text search over messages (GET /search). Keep in step with ../sqlite/0006_search.sql.
--
-- A generated tsvector column (computed in the writing statement, so edits and deletes are in
-- step inside the same transaction) with a GIN index. Only people's messages (kind 'text') are
-- indexed: notes about a group are not found. The 'simple' configuration (no stemming, no stop
-- words) and punctuation turned into spaces first make words what SQLite's FTS5 unicode61
-- tokenizer makes them ("example.com" is "example" and "com" on both); the query side
-- (src/db/search.rs) splits words the same way.
ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    CASE WHEN kind = 'text'
         THEN to_tsvector('simple'::regconfig, regexp_replace(body, '[[:punct:]]+', ' ', 'g'))
    END
) STORED;
CREATE INDEX messages_search ON messages USING GIN (search);
