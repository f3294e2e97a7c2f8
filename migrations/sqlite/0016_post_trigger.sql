-- A text message, once inserted, moves its conversation's newest message and activity, and its
-- author's read marker, to itself: the two updates that followed every post as statements of
-- their own (db::messages::sqlite_post_sql). In a trigger they run inside the insert's
-- statement, so a post is one statement, and one result handed back from the driver's thread
-- instead of three (docs/performance.md, thirteenth session). Notes ('note') are left out: their
-- use case (chat::messages::note) moves both itself, on either backend. PostgreSQL does both in
-- the post's own statement.
CREATE TRIGGER messages_posted AFTER INSERT ON messages WHEN new.kind = 'text' BEGIN
    UPDATE conversations SET last_message_id = new.id, last_activity_at = new.created_at
        WHERE id = new.conversation_id;
    UPDATE members SET last_read_message_id = new.id
        WHERE conversation_id = new.conversation_id AND user_id = new.author_id
        AND last_read_message_id < new.id;
END;
