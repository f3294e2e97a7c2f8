-- PostgreSQL only (its rate-limit and live-stream tables skip the write-ahead log); kept so the
-- two backends' migrations stay numbered alike.
SELECT 1;
