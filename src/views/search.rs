//! The search page: results with their matching words marked. Marking splits the text into
//! pieces that the template escapes one by one, so no user text is ever output unescaped.

use askama::Template;

use super::partials::{UserView, one_line, permalink};
use super::{Layout, Stamp, dom, markup};
use crate::domain::search::{fold, words};

/// A piece of a result's text, marked when it is a word searched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The text (escaped by the template).
    pub text: String,
    /// Shown as `<mark>`.
    pub mark: bool,
}

/// One message found.
#[derive(Debug, Clone)]
pub struct ResultView {
    /// The message.
    pub id: i64,
    /// Its conversation.
    pub conversation_id: i64,
    /// The conversation's name (group title or the other person).
    pub conversation: String,
    /// Who wrote it.
    pub author: UserView,
    /// When.
    pub at: Stamp,
    /// Its text (around the first match), in pieces.
    pub pieces: Vec<Piece>,
}

impl ResultView {
    /// `result-{message_id}`.
    pub fn dom_id(&self) -> String {
        dom::search_result(self.id)
    }

    /// The message's own id: the result goes when a `remove` frame takes the message away.
    pub fn message_dom_id(&self) -> String {
        dom::message(self.id)
    }

    /// The message in its conversation.
    pub fn href(&self) -> String {
        permalink(self.conversation_id, self.id)
    }
}

/// `search/index.html`.
#[derive(Template)]
#[template(path = "search/index.html")]
pub struct SearchPage {
    /// Layout (its `search` is the query, shown in the header's box).
    pub layout: Layout,
    /// The query as typed.
    pub q: String,
    /// A search ran (the query was not empty).
    pub searched: bool,
    /// Results, newest first.
    pub results: Vec<ResultView>,
    /// The id to continue from, when there are more.
    pub next: Option<i64>,
    /// This is not the first page.
    pub paged: bool,
    /// Why nothing was searched or found, when there is a reason to tell.
    pub notice: Option<String>,
}

/// The most characters of a result's text shown.
pub const SNIPPET_CHARS: usize = 240;

/// The plain text of `body` around its first match, with the words of `terms` (folded, with
/// whether each is a prefix) marked.
pub fn highlight(body: &str, terms: &[(String, bool)], max: usize) -> Vec<Piece> {
    let text = one_line(&markup::plain(body), usize::MAX);
    let hits: Vec<(usize, usize)> = words(&text)
        .filter(|&(s, e)| {
            let w = fold(&text[s..e]);
            terms.iter().any(|(t, prefix)| {
                if *prefix {
                    w.starts_with(t.as_str())
                } else {
                    w == *t
                }
            })
        })
        .collect();
    // A window of `max` characters that starts a little before the first match.
    let total = text.chars().count();
    let first = hits.first().map_or(0, |&(s, _)| text[..s].chars().count());
    let start_char = if total <= max {
        0
    } else {
        first.saturating_sub(max / 4).min(total - max)
    };
    let end_char = (start_char + max).min(total);
    let byte = |n: usize| text.char_indices().nth(n).map_or(text.len(), |(i, _)| i);
    let (from, to) = (byte(start_char), byte(end_char));
    let mut pieces = Vec::new();
    let mut push = |t: &str, mark: bool| {
        if !t.is_empty() {
            pieces.push(Piece {
                text: t.to_owned(),
                mark,
            });
        }
    };
    if from > 0 {
        push("…", false);
    }
    let mut at = from;
    for (s, e) in hits {
        if e <= from || s >= to {
            continue;
        }
        let (s, e) = (s.max(from), e.min(to));
        push(&text[at..s], false);
        push(&text[s..e], true);
        at = e;
    }
    push(&text[at..to], false);
    if to < text.len() {
        push("…", false);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(p: &[Piece]) -> Vec<&str> {
        p.iter()
            .filter(|p| p.mark)
            .map(|p| p.text.as_str())
            .collect()
    }

    #[test]
    fn marks_words_and_prefixes_and_keeps_text_as_text() {
        let terms = vec![("harbour".to_owned(), false), ("caf".to_owned(), true)];
        let p = highlight("<b>Harbour</b> at the **Café**, harbours", &terms, 240);
        assert_eq!(marked(&p), vec!["Harbour", "Café"]);
        let all: String = p.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(all, "<b>Harbour</b> at the Café, harbours");
    }

    #[test]
    fn long_texts_show_the_window_around_the_first_match() {
        let body = format!("{} needle {}", "hay ".repeat(200), "hay ".repeat(200));
        let p = highlight(&body, &[("needle".to_owned(), false)], 100);
        assert_eq!(p.first().map(|p| p.text.as_str()), Some("…"));
        assert_eq!(p.last().map(|p| p.text.as_str()), Some("…"));
        assert_eq!(marked(&p), vec!["needle"]);
        let shown: usize = p.iter().map(|p| p.text.chars().count()).sum();
        assert!(shown <= 102, "{shown}");
    }
}
