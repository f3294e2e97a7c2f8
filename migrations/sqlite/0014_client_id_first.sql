-- A retried send is found by (author, client id) as before; the unique index now leads with the
-- client id. Client ids start with the time (views::partials::new_client_id, newClientId in
-- static/live.js), so new keys go in at the index's right edge: the posts of one commit share a
-- page or two of it, where keyed by author first each post wrote a leaf of its own (17 of the 68
-- pages an average commit wrote under load; docs/performance.md, twelfth session). Keys from
-- clients that make them otherwise still work; they are only not as close together.
DROP INDEX messages_client_id;
CREATE UNIQUE INDEX messages_client_id ON messages (client_id, author_id) WHERE client_id IS NOT NULL;
