-- Web Push (installable app). Keep in step with the other backend's 0009_push.sql.

-- The server's VAPID key pair (RFC 8292), made at first start. One row: every node inserts a
-- fresh pair if none is there (ON CONFLICT DO NOTHING), then reads the one that won.
CREATE TABLE push_keys (
    singleton   BIGINT PRIMARY KEY CHECK (singleton = 1),
    -- The P-256 private scalar, base64url without padding.
    private_key TEXT   NOT NULL,
    -- The uncompressed public point (65 bytes), base64url without padding: what browsers get as
    -- applicationServerKey.
    public_key  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

-- One browser (device) that receives pushes for a user. The endpoint is the push service's URL
-- for that browser; a browser re-subscribing under another account moves the row.
CREATE TABLE push_subscriptions (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint   TEXT   NOT NULL UNIQUE,
    -- The browser's P-256 public key (65 bytes) and auth secret (16 bytes), base64url.
    p256dh     TEXT   NOT NULL,
    auth       TEXT   NOT NULL,
    -- What the settings page calls the device ("Firefox on Android").
    label      TEXT   NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

-- The newest event the push sender has taken. Shared by all nodes: a node takes the events after
-- it by moving it forward with a compare-and-set, so each message is pushed by one node only.
CREATE TABLE push_state (
    singleton  BIGINT PRIMARY KEY CHECK (singleton = 1),
    cursor     BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
