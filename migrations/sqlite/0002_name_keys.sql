-- Look-alike names. Keep in step with ../postgres/0002_name_keys.sql.
-- Each user's username ('u') and display name ('d') has one or two keys (TR39 skeletons, see
-- domain::name_keys); two names that share a key could pass for each other, so a display name or
-- a username whose key another user already has is refused. Filled by the application at start
-- for users without keys of the current `version`.
CREATE TABLE user_name_keys (
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source     TEXT   NOT NULL CHECK (source IN ('u', 'd')),
    name_key   TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, source, name_key)
);
CREATE INDEX user_name_keys_key ON user_name_keys (name_key);
