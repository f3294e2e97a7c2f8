-- Conversation features: edits, replies, reactions and mentions.

-- 'text' (written by a person) or 'note' (a line about the group: "added @cat", "left the
-- group"; its author is who did it). Notes are never unread.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
-- When the author last edited the text (NULL: never).
ALTER TABLE messages ADD COLUMN edited_at BIGINT;
-- The message this one replies to. No foreign key: a deleted original leaves the reply in place,
-- which then shows "message deleted" where it quoted it.
ALTER TABLE messages ADD COLUMN reply_to_id BIGINT;
CREATE INDEX messages_reply_to ON messages (reply_to_id) WHERE reply_to_id IS NOT NULL;

-- One row per person, emoji and message; toggling removes it.
CREATE TABLE reactions (
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    emoji      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id, emoji)
);

-- Members named as @username in a message (decided when it is written or edited).
CREATE TABLE mentions (
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mentions_user ON mentions (user_id, message_id);

-- What a member is notified of in a conversation: 'all', 'mentions' (groups) or 'mute'.
ALTER TABLE members ADD COLUMN notify TEXT NOT NULL DEFAULT 'all';
