-- Audiences without per-recipient rows (issue 9). A conversation event's audience is that
-- conversation's members at that point in the log: the Hub knows it from memory, and replay finds
-- it through `members` (who is in which conversation since which event). `audience` keeps only a
-- small explicit list (",1,2," so replay can match ",<user>,"): friend events, the removed members
-- of a member change, the members of a deleted group. Keep in step with the other backend.

ALTER TABLE events ADD COLUMN conversation_id BIGINT;

-- Older rows keep their whole audience, now in the ",1,2," form.
UPDATE events SET audience = CASE WHEN audience = '[]' OR audience = '' THEN ''
    ELSE ',' || substr(audience, 2, length(audience) - 2) || ',' END;

CREATE INDEX events_conversation ON events (conversation_id, id);
CREATE INDEX events_explicit ON events (id) WHERE audience <> '';

DROP TABLE event_recipients;

-- The event that made the member join (0: before this migration, i.e. from the start).
ALTER TABLE members ADD COLUMN joined_event BIGINT NOT NULL DEFAULT 0;
