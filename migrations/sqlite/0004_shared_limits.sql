-- Limits that hold across nodes (used on PostgreSQL, where several nodes share the database;
-- one SQLite node keeps them in memory).

-- Rate limits as GCRA: per key, the theoretical arrival time of the next allowed attempt (ms).
CREATE TABLE rate_limits (
    key TEXT   PRIMARY KEY,
    tat BIGINT NOT NULL
);

-- Live streams open on each node, refreshed by the node; rows of a node that stopped refreshing
-- (it died) no longer count after a while.
CREATE TABLE live_streams (
    node    BIGINT NOT NULL,
    stream  BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (node, stream)
);
CREATE INDEX live_streams_user ON live_streams (user_id);
