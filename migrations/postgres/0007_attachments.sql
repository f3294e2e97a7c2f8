-- Files attached to messages. The bytes live in the files directory (see README, Attachments),
-- named by `storage_key` (random, never the name the user gave); the row only describes them.
-- A message's files go with it (ON DELETE CASCADE, also when its conversation is deleted); the
-- bytes are removed after the commit, and a start-up sweep removes any a crash left behind.
CREATE TABLE attachments (
    id            BIGSERIAL PRIMARY KEY,
    message_id    BIGINT  NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    -- Order within the message (as uploaded).
    position      BIGINT  NOT NULL,
    storage_key   TEXT    NOT NULL UNIQUE,
    -- The file name as uploaded (shown, and offered when downloading).
    name          TEXT    NOT NULL,
    size          BIGINT  NOT NULL,
    -- Only for images we decoded and re-encoded (image/png, image/jpeg, image/gif, image/webp):
    -- served inline. NULL: anything else, served as a download.
    content_type  TEXT,
    -- The thumbnail's type (image/jpeg or image/png) and size; NULL when there is none.
    thumb_type    TEXT,
    thumb_width   BIGINT,
    thumb_height  BIGINT,
    created_at    BIGINT  NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id, position);
