//! View models: askama structs that mirror `templates/`, built from domain and db types with
//! everything already formatted. Templates hold only `if`/`for`/`include`.

pub mod admin;
pub mod dom;
pub mod markup;
pub mod pages;
pub mod partials;
pub mod push;
pub mod search;

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::db::users::UserRef;

pub use pages::*;
pub use partials::*;
pub use push::*;
pub use search::{ResultView, SearchPage};

/// What the base layout needs: who is logged in, and the newest event id the page reflects
/// (`<body data-after>`, where live.js resumes the stream).
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The logged-in user.
    pub me: Option<UserRef>,
    /// Newest event id reflected by the page.
    pub after: i64,
    /// Friend requests waiting for me (header badge).
    pub requests: i64,
    /// Total unread messages (header badge and tab title).
    pub unread: i64,
    /// No navigation at all (error pages, which do not look the visitor up).
    pub bare: bool,
    /// My muted and mentions-only conversations (live.js: notifications, quiet rows).
    pub prefs: NotifyPrefsView,
    /// What the header's search box holds (the query, on the search page).
    pub search: String,
    /// I am an administrator (the header links to the admin pages).
    pub admin: bool,
}

impl Layout {
    /// The header chip of the logged-in user.
    pub fn current_user_view(&self) -> Option<UserView> {
        self.me.as_ref().map(|me| UserView::new(me, false))
    }

    /// The header's unread badge.
    pub fn unread_badge(&self) -> BadgeView {
        BadgeView {
            id: "badge-unread",
            count: self.unread,
        }
    }

    /// The header's friend-request badge.
    pub fn requests_badge(&self) -> BadgeView {
        BadgeView {
            id: dom::containers::REQUESTS_BADGE,
            count: self.requests,
        }
    }

    /// `data-me` of `<body>`.
    pub fn me_id(&self) -> i64 {
        self.me.as_ref().map_or(0, |m| m.id)
    }
}

/// Renders a template with a status; a render failure becomes a logged 500.
pub fn render<T: Template>(status: StatusCode, tpl: &T) -> Response {
    match tpl.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template render failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "Something went wrong on our side.",
            )
                .into_response()
        }
    }
}

/// Renders a partial to a string for a live fragment; a failure is logged and yields nothing.
pub fn render_fragment<T: Template>(tpl: &T) -> String {
    tpl.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "fragment render failed");
        String::new()
    })
}

/// Initials for an avatar: first letters of the first two words.
pub fn initials(name: &str) -> String {
    let mut out: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    if out.is_empty() {
        out.push('?');
    }
    out
}

/// One of eight avatar colours, stable per user.
pub fn hue(id: i64) -> i64 {
    id.rem_euclid(8)
}

fn datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A point in time, formatted every way a template needs. Browsers turn it into local and
/// relative times (live.js); without JS the UTC text stands.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// RFC 3339, for `<time datetime>`.
    pub iso: String,
    /// `14:05`.
    pub short: String,
    /// `2026-11-25 14:05 UTC`, for the hover title.
    pub exact: String,
    /// `2026-11-25`, to group by day.
    pub day: String,
    /// `Wednesday, 25 November 2026`.
    pub day_label: String,
}

impl Stamp {
    /// Formats a millisecond timestamp.
    pub fn new(ms: i64) -> Stamp {
        let t = datetime(ms);
        let f = |d: &[time::format_description::BorrowedFormatItem<'_>]| {
            t.format(d).unwrap_or_default()
        };
        Stamp {
            iso: f(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            )),
            short: f(format_description!("[hour]:[minute]")),
            exact: f(format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            )),
            day: f(format_description!("[year]-[month]-[day]")),
            day_label: f(format_description!(
                "[weekday], [day padding:none] [month repr:long] [year]"
            )),
        }
    }
}

/// A piece of message text: plain, or a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The text shown (escaped by the template).
    pub text: String,
    /// The link target, for http(s) URLs.
    pub href: Option<String>,
}

/// Splits text into plain and link segments. Only `http://` and `https://` URLs become links,
/// so no `javascript:` ever lands in an `href`; escaping is the template's.
pub fn linkify(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find_url_start(rest) {
        let (before, from) = rest.split_at(start);
        let end = from
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(from.len());
        let mut url = &from[..end];
        while let Some(last) = url.chars().last() {
            if matches!(last, '.' | ',' | ';' | ':' | '!' | '?' | '\'' | ')') {
                url = &url[..url.len() - last.len_utf8()];
            } else {
                break;
            }
        }
        let scheme_len = if url.starts_with("https://") { 8 } else { 7 };
        if url.len() <= scheme_len {
            // A bare scheme: keep it as text and go on after it.
            let take = start + scheme_len;
            push_text(&mut out, &rest[..take]);
            rest = &rest[take..];
            continue;
        }
        push_text(&mut out, before);
        out.push(Segment {
            text: url.to_owned(),
            href: Some(url.to_owned()),
        });
        rest = &from[url.len()..];
    }
    push_text(&mut out, rest);
    out
}

fn find_url_start(s: &str) -> Option<usize> {
    let a = s.find("https://");
    let b = s.find("http://");
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn push_text(out: &mut Vec<Segment>, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(Segment { text, href: None }) = out.last_mut() {
        text.push_str(s);
    } else {
        out.push(Segment {
            text: s.to_owned(),
            href: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_segments_and_trailing_punctuation_stays_text() {
        let s = linkify("see https://example.org/a?b=1. and javascript:alert(1) http://");
        assert_eq!(s[0].text, "see ");
        assert_eq!(s[1].href.as_deref(), Some("https://example.org/a?b=1"));
        assert_eq!(s[2].text, ". and javascript:alert(1) http://");
        assert!(s[2].href.is_none());
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn initials_and_stamps() {
        assert_eq!(initials("ann lee smith"), "AL");
        assert_eq!(initials("  "), "?");
        let st = Stamp::new(1_764_000_000_000);
        assert_eq!(st.iso, "2025-11-24T16:00:00Z");
        assert_eq!(st.short, "16:00");
        assert_eq!(st.day_label, "Monday, 24 November 2025");
    }
}
