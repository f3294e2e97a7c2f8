-- A plain post on PostgreSQL is one statement. When a post to the same conversation committed
-- between that statement's snapshot and its own write, the statement ends itself with this error
-- (a serialization failure, SQLSTATE 40001) so nothing of it is kept; the server then posts again
-- in a transaction that waits for the conversation first (see db::messages::post_pg).
CREATE FUNCTION parley_post_raced() RETURNS BIGINT LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'another post to this conversation committed first; posting again'
    USING ERRCODE = '40001';
END
$$;
