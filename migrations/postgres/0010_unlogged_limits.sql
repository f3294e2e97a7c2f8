-- Rate-limit counters and the live-stream rows are worth nothing after a crash (the limits start
-- afresh, the streams reconnect), so they skip the write-ahead log: a counted message then costs
-- no second flush to disk beside its own commit. (PostgreSQL empties unlogged tables after a
-- crash, which is exactly what these need.)
ALTER TABLE rate_limits SET UNLOGGED;
ALTER TABLE live_streams SET UNLOGGED;
