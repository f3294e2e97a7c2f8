-- Parley schema, SQLite. Keep in step with ../postgres/0001_init.sql.
-- Times: BIGINT milliseconds since the Unix epoch (UTC).

-- Accounts. `username` is stored lowercased (a-z 0-9 _), so UNIQUE is case-insensitive.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL DEFAULT '',
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL
);

-- Friend requests keep their history; only one may be pending per pair, in either direction.
CREATE TABLE friend_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    requester_id BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    recipient_id BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected', 'cancelled')),
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    CHECK (requester_id <> recipient_id)
);
CREATE UNIQUE INDEX friend_requests_one_pending
    ON friend_requests (MIN(requester_id, recipient_id), MAX(requester_id, recipient_id))
    WHERE status = 'pending';
CREATE INDEX friend_requests_recipient ON friend_requests (recipient_id, status);
CREATE INDEX friend_requests_requester ON friend_requests (requester_id, status);

-- A friendship is two rows, one per direction, so "my friends" is one index range.
CREATE TABLE friendships (
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    friend_id  BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

-- Direct conversations carry `direct_key` ("low:high" user ids): one per pair, ever, so
-- re-befriending finds the same conversation and its history.
CREATE TABLE conversations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT    NOT NULL CHECK (kind IN ('direct', 'group')),
    title            TEXT,
    owner_id         BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    direct_key       TEXT    UNIQUE,
    last_message_id  BIGINT,
    last_activity_at BIGINT  NOT NULL,
    created_at       BIGINT  NOT NULL
);

-- Membership and the member's read marker (id of the newest message they have read, 0 = none).
CREATE TABLE members (
    conversation_id      BIGINT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id              BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    last_read_message_id BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

-- Messages. (author_id, client_id) makes a retried send store one message.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id BIGINT  NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    author_id       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    body            TEXT    NOT NULL,
    client_id       TEXT,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
CREATE UNIQUE INDEX messages_client_id ON messages (author_id, client_id) WHERE client_id IS NOT NULL;

-- The event log. Ids come from `log_state.last_id`, bumped inside the writing transaction, so
-- ids become visible in id order on both backends (see DESIGN.md, "How a change flows").
CREATE TABLE log_state (
    singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_id        BIGINT NOT NULL,
    -- every id at or below this has been pruned: a client asking for it must reload
    pruned_through BIGINT NOT NULL
);
INSERT INTO log_state (singleton, last_id, pruned_through) VALUES (1, 0, 0);

CREATE TABLE events (
    id         BIGINT PRIMARY KEY,
    kind       TEXT   NOT NULL,
    payload    TEXT   NOT NULL, -- JSON of the Event
    audience   TEXT   NOT NULL, -- JSON array of user ids
    created_at BIGINT NOT NULL
);
CREATE INDEX events_created ON events (created_at);

-- Who may see which event: the replay index of GET /events.
CREATE TABLE event_recipients (
    user_id  BIGINT NOT NULL,
    event_id BIGINT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX event_recipients_event ON event_recipients (event_id);
