-- Nothing to do on SQLite: its one writer already puts a conversation's posts in order. The
-- PostgreSQL tree's 0011 adds what its single-statement post needs; the numbers stay aligned.
SELECT 1;
