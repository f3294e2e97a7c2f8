//! A search query as the user typed it, parsed into words, phrases, prefixes and filters. The
//! database layer turns a [`SearchQuery`] into its own syntax (FTS5 MATCH, tsquery) from these
//! parts only, so nothing the user types is ever read as query syntax.
//!
//! The language: words (all must occur), `"a phrase"`, `harb*` (a word starting so),
//! `from:username` (or `from:@username`), `in:name` / `in:"group title"` (a group whose title
//! contains it, or the direct conversation with that username). Anything else is text: a stray
//! quote opens a phrase that runs to the end, and punctuation separates words as it does in the
//! index.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

use super::FieldErrors;

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// The most words and phrases in one query.
pub const MAX_TERMS: usize = 16;

/// One thing to find: a word (one entry in `words`) or a phrase (several, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The words, lowercased; each is a run of letters, digits and marks.
    pub words: Vec<String>,
    /// The last word is a prefix (`harb*`).
    pub prefix: bool,
}

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Words and phrases: a message must contain every one.
    pub terms: Vec<Term>,
    /// `from:` a username (lowercased, without `@`).
    pub from: Option<String>,
    /// `in:` a conversation: part of a group title, or the other person's username.
    pub within: Option<String>,
}

impl SearchQuery {
    /// Parses what the user typed; too long a query is the one error.
    pub fn parse(raw: &str) -> Result<SearchQuery, FieldErrors> {
        if raw.chars().count() > MAX_QUERY_CHARS {
            return Err(FieldErrors::one(
                "q",
                format!("Search for at most {MAX_QUERY_CHARS} characters."),
            ));
        }
        let mut q = SearchQuery::default();
        let mut rest = raw.trim_start();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('"') {
                let (inside, next) = until_quote(after);
                q.push(inside, false);
                rest = next;
            } else if let Some(value) = strip_filter(rest, "from:") {
                let (v, next) = filter_value(value);
                let v = v.trim().trim_start_matches('@').to_lowercase();
                q.from = (!v.is_empty()).then_some(v);
                rest = next;
            } else if let Some(value) = strip_filter(rest, "in:") {
                let (v, next) = filter_value(value);
                let v = v.trim().trim_start_matches('@').to_owned();
                q.within = (!v.is_empty()).then_some(v);
                rest = next;
            } else {
                // A bare chunk ends at a space or where a phrase starts.
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '"')
                    .unwrap_or(rest.len());
                let chunk = &rest[..end];
                q.push(chunk, chunk.ends_with('*'));
                rest = &rest[end..];
            }
            rest = rest.trim_start();
        }
        if q.terms.len() > MAX_TERMS {
            return Err(FieldErrors::one(
                "q",
                format!("Search for at most {MAX_TERMS} words or phrases."),
            ));
        }
        Ok(q)
    }

    /// Nothing to search for: no words and no filter.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty() && self.from.is_none() && self.within.is_none()
    }

    /// Adds the words of `text` as one term (a phrase when there are several).
    fn push(&mut self, text: &str, prefix: bool) {
        let words: Vec<String> = words(text)
            .map(|(s, e)| text[s..e].to_lowercase())
            .collect();
        if !words.is_empty() {
            self.terms.push(Term { words, prefix });
        }
    }

    /// Every word of every term, folded (for highlighting), with whether it is a prefix.
    pub fn folded_words(&self) -> Vec<(String, bool)> {
        self.terms
            .iter()
            .flat_map(|t| {
                let last = t.words.len() - 1;
                t.words
                    .iter()
                    .enumerate()
                    .map(move |(i, w)| (fold(w), t.prefix && i == last))
            })
            .collect()
    }
}

/// `rest` after `name` when it starts with it (any case) and a value follows.
fn strip_filter<'a>(rest: &'a str, name: &str) -> Option<&'a str> {
    let head = rest.get(..name.len())?;
    let value = &rest[name.len()..];
    (head.eq_ignore_ascii_case(name) && value.starts_with(|c: char| !c.is_whitespace()))
        .then_some(value)
}

/// A filter's value: quoted (to the closing quote) or up to the next space; and what follows.
fn filter_value(value: &str) -> (&str, &str) {
    match value.strip_prefix('"') {
        Some(after) => until_quote(after),
        None => {
            let end = value.find(char::is_whitespace).unwrap_or(value.len());
            (&value[..end], &value[end..])
        }
    }
}

/// Text up to the closing quote (or the end), and what follows it.
fn until_quote(s: &str) -> (&str, &str) {
    match s.find('"') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// Whether `c` belongs to a word: letters, digits and combining marks, as in the index
/// (SQLite's unicode61 tokenizer; PostgreSQL after punctuation became spaces).
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c.general_category_group() == GeneralCategoryGroup::Mark
}

/// The byte ranges of the words of `text`.
pub fn words(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        while let Some(&(_, c)) = chars.peek() {
            if is_word_char(c) {
                break;
            }
            chars.next();
        }
        let (start, _) = *chars.peek()?;
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if !is_word_char(c) {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        Some((start, end))
    })
}

/// A word lowercased and without diacritics, to compare words as the index does.
pub fn fold(word: &str) -> String {
    word.nfd()
        .filter(|c| c.general_category_group() != GeneralCategoryGroup::Mark)
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(words: &[&str], prefix: bool) -> Term {
        Term {
            words: words.iter().map(|w| (*w).to_owned()).collect(),
            prefix,
        }
    }

    #[test]
    fn words_phrases_prefixes_and_filters() {
        let q = SearchQuery::parse(r#"Harbour "quiet  Morning" harb* from:@Bob in:"Team Trip""#)
            .expect("a valid query");
        assert_eq!(
            q.terms,
            vec![
                term(&["harbour"], false),
                term(&["quiet", "morning"], false),
                term(&["harb"], true),
            ]
        );
        assert_eq!(q.from.as_deref(), Some("bob"));
        assert_eq!(q.within.as_deref(), Some("Team Trip"));
        let q = SearchQuery::parse("in:bob e-mail").expect("a valid query");
        assert_eq!(q.within.as_deref(), Some("bob"));
        assert_eq!(q.terms, vec![term(&["e", "mail"], false)]);
    }

    #[test]
    fn stray_syntax_is_text() {
        for raw in [
            "\"",
            "\"\"",
            "*",
            "AND OR NOT",
            "a\"b",
            "NEAR(a b)",
            "col:x",
            "-x ^y",
            "from:",
            "in:\"",
            "'; DROP TABLE messages; --",
            "& | ! <-> :*",
        ] {
            let q = SearchQuery::parse(raw).expect("a valid query");
            for t in &q.terms {
                assert!(!t.words.is_empty());
                assert!(t.words.iter().all(|w| w.chars().all(is_word_char)), "{raw}");
            }
        }
        let q = SearchQuery::parse("a\"b c").expect("a valid query");
        assert_eq!(q.terms, vec![term(&["a"], false), term(&["b", "c"], false)]);
        assert!(SearchQuery::parse("  ").expect("a valid query").is_empty());
        assert!(
            SearchQuery::parse("\"!!\" *")
                .expect("a valid query")
                .is_empty()
        );
    }

    #[test]
    fn too_long_or_too_many() {
        assert!(SearchQuery::parse(&"a".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(SearchQuery::parse(&"a ".repeat(MAX_TERMS + 1)).is_err());
        assert!(SearchQuery::parse(&"a ".repeat(MAX_TERMS)).is_ok());
    }

    #[test]
    fn folding_matches_the_index() {
        assert_eq!(fold("Café"), "cafe");
        assert_eq!(
            words("don't stop—ok").collect::<Vec<_>>(),
            vec![(0, 3), (4, 5), (6, 10), (13, 15)]
        );
    }
}
