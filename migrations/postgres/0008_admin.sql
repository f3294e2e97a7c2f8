-- Running an instance: administrators, deactivated accounts, who may register, invite links,
-- password reset links, and the audit log of admin actions. Keep in step with
-- ../sqlite/0008_admin.sql.

-- `is_admin` 0/1 (BIGINT on both backends). `deactivated_at`: NULL while the account is active.
-- `session_epoch` is part of every session's auth hash: bumping it ends all of the user's
-- sessions (deactivation), and they stay ended after a reactivation.
ALTER TABLE users ADD COLUMN is_admin BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN deactivated_at BIGINT;
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
-- An instance that existed before administrators: its first account runs it, as on a new one.
UPDATE users SET is_admin = 1 WHERE id = (SELECT MIN(id) FROM users);

-- One row of instance-wide settings. `registration`: open, invite (an invite link is needed) or
-- closed (only `parley admin create-user`).
CREATE TABLE instance_settings (
    singleton    BIGINT  PRIMARY KEY CHECK (singleton = 1),
    registration TEXT    NOT NULL CHECK (registration IN ('open', 'invite', 'closed')),
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
INSERT INTO instance_settings (singleton, registration, created_at, updated_at) VALUES (1, 'open', 0, 0);

-- Invite links. The token is kept (not only a hash) so its creator can show the link and its QR
-- code again; it grants only a registration. `max_uses` NULL: any number until it expires.
-- `befriend` 1: who registers with it becomes the creator's friend.
CREATE TABLE invites (
    id         BIGSERIAL PRIMARY KEY,
    token      TEXT    NOT NULL UNIQUE,
    created_by BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    max_uses   BIGINT,
    uses       BIGINT  NOT NULL DEFAULT 0,
    befriend   BIGINT  NOT NULL DEFAULT 0,
    expires_at BIGINT  NOT NULL,
    revoked_at BIGINT,
    created_at BIGINT  NOT NULL
);
CREATE INDEX invites_creator ON invites (created_by, id);

-- One-time password reset links; only the SHA-256 of the token is stored (it is shown once).
CREATE TABLE password_resets (
    id         BIGSERIAL PRIMARY KEY,
    token_hash TEXT    NOT NULL UNIQUE,
    user_id    BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at BIGINT  NOT NULL,
    used_at    BIGINT,
    created_at BIGINT  NOT NULL
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- What admins did (web or `parley admin`), newest last. `actor_id` NULL: the command line.
-- Names are copied so the entry reads the same after a rename. `pending` 1: written by
-- `parley admin` and not yet acted on by a running server (which closes streams, records the
-- live event, then clears it; see docs/decisions.md).
CREATE TABLE admin_audit (
    id          BIGSERIAL PRIMARY KEY,
    actor_id    BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    actor_name  TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target_id   BIGINT  REFERENCES users(id) ON DELETE SET NULL,
    target_name TEXT    NOT NULL DEFAULT '',
    detail      TEXT    NOT NULL DEFAULT '',
    pending     BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL
);
CREATE INDEX admin_audit_pending ON admin_audit (id) WHERE pending = 1;
