//! Full-text search over the messages a user may read now: the conversations they are a member
//! of (a removed member finds nothing of a group; an unfriended direct conversation stays a
//! membership, so it stays searchable). SQLite: the FTS5 table `messages_fts`; PostgreSQL: the
//! `messages.search` tsvector with its GIN index (migrations 0006). The query text is built here
//! from a parsed [`SearchQuery`] only: each word is quoted, so user input is never FTS syntax.

use super::{Conn, run};
use crate::domain::search::{SearchQuery, fold};

/// One of my conversations, as search results name it and `in:` finds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Scope {
    /// Conversation id.
    pub id: i64,
    /// direct | group.
    pub kind: String,
    /// Group title.
    pub title: Option<String>,
    /// The other person of a direct conversation.
    pub other_id: Option<i64>,
    /// Their username.
    pub other_username: Option<String>,
    /// Their display name.
    pub other_display_name: Option<String>,
}

impl Scope {
    /// Whether `in:value` names this conversation: part of a group's title, or of the other
    /// person's username or display name (any case, accents ignored).
    pub fn is_named(&self, value: &str) -> bool {
        let v = fold(value);
        [
            self.title.as_deref(),
            self.other_username.as_deref(),
            self.other_display_name.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|name| fold(name).contains(&v))
    }
}

/// A message found, with its author.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hit {
    /// Id.
    pub id: i64,
    /// Conversation.
    pub conversation_id: i64,
    /// Author id.
    pub author_id: i64,
    /// Author username.
    pub author_username: String,
    /// Author display name.
    pub author_display_name: String,
    /// Text.
    pub body: String,
    /// When it was stored.
    pub created_at: i64,
}

/// What a search found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Matches, newest first (up to the limit asked for).
    pub hits: Vec<Hit>,
    /// My conversations (to name each hit's).
    pub conversations: Vec<Scope>,
    /// `in:` named none of my conversations.
    pub no_such_conversation: bool,
}

/// The conversations `user` is a member of now.
pub async fn scopes(c: &mut Conn<'_>, user: i64) -> sqlx::Result<Vec<Scope>> {
    run!(c, e => sqlx::query_as(
        "SELECT c.id, c.kind, c.title, o.id AS other_id, o.username AS other_username, \
           o.display_name AS other_display_name \
         FROM members m JOIN conversations c ON c.id = m.conversation_id \
         LEFT JOIN members om ON c.kind = 'direct' AND om.conversation_id = c.id AND om.user_id <> $1 \
         LEFT JOIN users o ON o.id = om.user_id \
         WHERE m.user_id = $1 ORDER BY c.id",
    )
    .bind(user)
    .fetch_all(e)
    .await)
}

/// Searches what `user` may read for `q`: up to `limit` messages older than `before` (or the
/// newest), newest first. The route and `cargo bench --bench search` both call this.
pub async fn run(
    c: &mut Conn<'_>,
    user: i64,
    q: &SearchQuery,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Outcome> {
    let conversations = scopes(c, user).await?;
    let mut out = Outcome::default();
    let within: Vec<i64> = match &q.within {
        Some(name) => conversations
            .iter()
            .filter(|s| s.is_named(name))
            .map(|s| s.id)
            .collect(),
        None => conversations.iter().map(|s| s.id).collect(),
    };
    out.no_such_conversation = q.within.is_some() && within.is_empty();
    let author = match &q.from {
        // Only a possible username is looked up (anything else is nobody, and never reaches
        // the database: PostgreSQL refuses a NUL in text, for one).
        Some(name) if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            out.conversations = conversations;
            return Ok(out);
        }
        Some(name) => {
            let id: Option<i64> = run!(c, e => sqlx::query_scalar(
                "SELECT id FROM users WHERE username = $1",
            )
            .bind(name)
            .fetch_optional(e)
            .await)?;
            match id {
                Some(id) => Some(id),
                None => {
                    out.conversations = conversations;
                    return Ok(out);
                }
            }
        }
        None => None,
    };
    if q.is_empty() || within.is_empty() {
        out.conversations = conversations;
        return Ok(out);
    }
    let before = before.unwrap_or(i64::MAX);
    out.hits = match c {
        Conn::Sqlite(e) => {
            // The FTS5 table walks its matches newest first and the statement stops at the
            // limit; the join checks membership in the same statement. A few conversations go
            // into the MATCH too (then only my matches are walked); for many, FTS5's OR of
            // their ids costs more than walking matches and skipping those of others.
            let in_match =
                within.len() <= MATCH_CONVERSATIONS || (q.terms.is_empty() && author.is_none());
            let only = if q.within.is_some() && !in_match {
                let ids: Vec<String> = within.iter().map(i64::to_string).collect();
                format!(" AND m.conversation_id IN ({})", ids.join(", "))
            } else {
                String::new()
            };
            let sql = format!(
                "SELECT m.id, m.conversation_id, m.author_id, u.username AS author_username, \
                   u.display_name AS author_display_name, m.body, m.created_at \
                 FROM messages_fts f \
                 JOIN messages m ON m.id = f.rowid \
                 JOIN members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = $4 \
                 JOIN users u ON u.id = m.author_id \
                 WHERE messages_fts MATCH $1 AND f.rowid < $2{only} \
                 ORDER BY f.rowid DESC LIMIT $3"
            );
            sqlx::query_as(&sql)
                .bind(fts5_match(q, in_match.then_some(&within[..]), author))
                .bind(before)
                .bind(limit)
                .bind(user)
                .fetch_all(&mut **e)
                .await?
        }
        Conn::Pg(e) => {
            // In a few conversations, reading their messages (by `messages_conversation`) and
            // testing each beats the GIN index for any word common in the instance: `OFFSET 0`
            // keeps the planner from folding the word into that scan. With many, the planner
            // chooses.
            let source = if within.len() <= MATCH_CONVERSATIONS {
                "(SELECT * FROM messages WHERE conversation_id = ANY($3) AND id < $2 OFFSET 0)"
            } else {
                "messages"
            };
            let mut sql = format!(
                "SELECT m.id, m.conversation_id, m.author_id, u.username AS author_username, \
                   u.display_name AS author_display_name, m.body, m.created_at \
                 FROM {source} m \
                 JOIN members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = $1 \
                 JOIN users u ON u.id = m.author_id \
                 WHERE m.id < $2 AND m.kind = 'text' AND m.conversation_id = ANY($3)"
            );
            let tsquery = tsquery(q);
            // Only the parameters a filter uses are bound, numbered as they come.
            if tsquery.is_some() {
                sql.push_str(" AND m.search @@ to_tsquery('simple', $5)");
            }
            if author.is_some() {
                let n = if tsquery.is_some() { 6 } else { 5 };
                sql.push_str(&format!(" AND m.author_id = ${n}"));
            }
            sql.push_str(" ORDER BY m.id DESC LIMIT $4");
            let mut query = sqlx::query_as(&sql)
                .bind(user)
                .bind(before)
                .bind(&within)
                .bind(limit);
            if let Some(t) = tsquery {
                query = query.bind(t);
            }
            if let Some(a) = author {
                query = query.bind(a);
            }
            query.fetch_all(&mut **e).await?
        }
    };
    out.conversations = conversations;
    Ok(out)
}

/// An FTS5 string literal: double quotes doubled inside.
fn fts5_string(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// At most this many conversations are named in an FTS5 MATCH, or read one by one on PostgreSQL
/// (see [`run`]).
pub const MATCH_CONVERSATIONS: usize = 32;

/// The FTS5 MATCH expression: every term in the body, in one of `conversations` (when given),
/// by `author`.
pub fn fts5_match(q: &SearchQuery, conversations: Option<&[i64]>, author: Option<i64>) -> String {
    let mut parts = Vec::new();
    if !q.terms.is_empty() {
        let terms: Vec<String> = q
            .terms
            .iter()
            .map(|t| {
                let s = fts5_string(&t.words.join(" "));
                if t.prefix { format!("{s} *") } else { s }
            })
            .collect();
        parts.push(format!("body : ({})", terms.join(" AND ")));
    }
    if let Some(conversations) = conversations {
        let convs: Vec<String> = conversations
            .iter()
            .map(|id| fts5_string(&id.to_string()))
            .collect();
        parts.push(format!("conversation_id : ({})", convs.join(" OR ")));
    }
    if let Some(a) = author {
        parts.push(format!("author_id : {}", fts5_string(&a.to_string())));
    }
    parts.join(" AND ")
}

/// The tsquery text (for `to_tsquery('simple', …)`): words quoted, phrases with `<->`, prefixes
/// with `:*`; None without words.
pub fn tsquery(q: &SearchQuery) -> Option<String> {
    if q.terms.is_empty() {
        return None;
    }
    let terms: Vec<String> = q
        .terms
        .iter()
        .map(|t| {
            let last = t.words.len() - 1;
            let words: Vec<String> = t
                .words
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let lexeme = format!("'{}'", w.replace('\'', "''"));
                    if t.prefix && i == last {
                        format!("{lexeme}:*")
                    } else {
                        lexeme
                    }
                })
                .collect();
            format!("({})", words.join(" <-> "))
        })
        .collect();
    Some(terms.join(" & "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_texts_quote_every_word() {
        let q =
            SearchQuery::parse(r#"harbour "quiet morning" mas* from:bob"#).expect("a valid query");
        assert_eq!(
            fts5_match(&q, Some(&[3, 8]), Some(5)),
            r#"body : ("harbour" AND "quiet morning" AND "mas" *) AND conversation_id : ("3" OR "8") AND author_id : "5""#
        );
        assert_eq!(
            tsquery(&q).as_deref(),
            Some("('harbour') & ('quiet' <-> 'morning') & ('mas':*)")
        );
        let q = SearchQuery::parse("from:bob").expect("a valid query");
        assert_eq!(
            fts5_match(&q, Some(&[1]), None),
            r#"conversation_id : ("1")"#
        );
        assert_eq!(fts5_match(&q, None, Some(2)), r#"author_id : "2""#);
        assert_eq!(tsquery(&q), None);
    }
}
