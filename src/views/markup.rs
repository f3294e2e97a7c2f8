//! Message text to HTML: a safe Markdown subset (bold, italic, strikethrough, inline code, code
//! blocks, block quotes, lists, links), bare http(s) URLs as links, and `@username` mentions.
//!
//! pulldown-cmark parses; raw HTML in the text is shown as text, links other than http(s) stay
//! text, headings and images are shown as typed (a `#` or `![x](y)` in chat is rarely meant as
//! formatting), and every line break is kept. What comes out is escaped by pulldown-cmark's writer.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};
use unicode_segmentation::UnicodeSegmentation;

use super::linkify;

/// A member named in the text: their id and username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// User id.
    pub id: i64,
    /// Username (lowercase, as stored).
    pub username: String,
}

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Plain text with links and mentions, as HTML (our own markup around escaped text).
fn text_html(text: &str, mentions: &[Mention], in_link: bool) -> String {
    let mut out = String::new();
    let segments = if in_link {
        vec![super::Segment {
            text: text.to_owned(),
            href: None,
        }]
    } else {
        linkify(text)
    };
    for seg in segments {
        match seg.href {
            Some(href) => out.push_str(&format!(
                "<a href=\"{}\" rel=\"noopener noreferrer nofollow ugc\" target=\"_blank\">{}</a>",
                escape(&href),
                escape(&seg.text)
            )),
            None => out.push_str(&mentions_html(&seg.text, mentions)),
        }
    }
    out
}

fn mentions_html(text: &str, mentions: &[Mention]) -> String {
    if mentions.is_empty() {
        return escape(text);
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let (before, from) = rest.split_at(at);
        out.push_str(&escape(before));
        let name: String = from[1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let boundary = before
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        match mentions
            .iter()
            .find(|m| boundary && !name.is_empty() && m.username.eq_ignore_ascii_case(&name))
        {
            Some(m) => {
                out.push_str(&format!(
                    "<span class=\"mention\" data-mention=\"{}\">@{}</span>",
                    m.id,
                    escape(&name)
                ));
                rest = &from[1 + name.len()..];
            }
            None => {
                out.push('@');
                rest = &from[1..];
            }
        }
    }
    out.push_str(&escape(rest));
    out
}

/// The usernames written as `@name` in `text` (to resolve against the conversation's members).
pub fn mentioned_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        if c == '@' && prev.is_none_or(|p| !(p.is_alphanumeric() || p == '_')) {
            let name: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name.to_ascii_lowercase());
            }
        }
        prev = Some(c);
    }
    names.sort();
    names.dedup();
    names
}

/// Renders a message body.
pub fn render(body: &str, mentions: &[Mention]) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let mut events: Vec<Event<'_>> = Vec::new();
    let mut in_link = 0usize;
    let mut skip_link_end: Vec<bool> = Vec::new();
    let mut images: Vec<String> = Vec::new();
    for ev in Parser::new_ext(body, opts) {
        match ev {
            // Raw HTML is shown as the text it is (links and mentions in it still work).
            Event::Html(s) | Event::InlineHtml(s) => {
                events.push(Event::Html(CowStr::from(text_html(
                    &s,
                    mentions,
                    in_link > 0,
                ))));
            }
            Event::Text(t) => {
                events.push(Event::Html(CowStr::from(text_html(
                    &t,
                    mentions,
                    in_link > 0,
                ))));
            }
            Event::SoftBreak => events.push(Event::HardBreak),
            Event::Start(Tag::Link { dest_url, .. }) if !safe_url(&dest_url) => {
                skip_link_end.push(true);
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                in_link += 1;
                skip_link_end.push(false);
                events.push(Event::Html(CowStr::from(format!(
                    "<a href=\"{}\" rel=\"noopener noreferrer nofollow ugc\" target=\"_blank\">",
                    escape(&dest_url)
                ))));
            }
            Event::End(TagEnd::Link) => {
                if skip_link_end.pop() == Some(false) {
                    in_link = in_link.saturating_sub(1);
                    events.push(Event::Html(CowStr::from("</a>")));
                }
            }
            // Headings and images are shown as typed.
            Event::Start(Tag::Heading { level, .. }) => {
                events.push(Event::Start(Tag::Paragraph));
                events.push(Event::Text(CowStr::from(format!(
                    "{} ",
                    "#".repeat(level as usize)
                ))));
            }
            Event::End(TagEnd::Heading(_)) => events.push(Event::End(TagEnd::Paragraph)),
            Event::Start(Tag::Image { dest_url, .. }) => {
                images.push(dest_url.to_string());
                events.push(Event::Text(CowStr::from("![")));
            }
            Event::End(TagEnd::Image) => {
                let url = images.pop().unwrap_or_default();
                events.push(Event::Text(CowStr::from(format!("]({url})"))));
            }
            Event::Rule => events.push(Event::Text(CowStr::from("---"))),
            other => events.push(other),
        }
    }
    let mut out = String::with_capacity(body.len() * 2);
    html::push_html(&mut out, events.into_iter());
    out.trim_end().to_owned()
}

/// The words of a message without its Markdown (quotes and previews).
pub fn plain(body: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let mut out = String::with_capacity(body.len());
    for ev in Parser::new_ext(body, opts) {
        match ev {
            Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => {
                out.push_str(&t)
            }
            Event::SoftBreak | Event::HardBreak | Event::End(TagEnd::Paragraph) => out.push(' '),
            _ => {}
        }
    }
    out.trim().to_owned()
}

/// One to three emoji and nothing else: shown large.
pub fn is_jumbo(body: &str) -> bool {
    let graphemes: Vec<&str> = body
        .graphemes(true)
        .filter(|g| !g.trim().is_empty())
        .collect();
    (1..=3).contains(&graphemes.len()) && graphemes.iter().all(|g| is_emoji(g))
}

/// Whether `s` is exactly one emoji (with or without the emoji presentation selector).
pub fn is_emoji(s: &str) -> bool {
    emojis::get(s).is_some() || emojis::get(s.trim_end_matches('\u{fe0f}')).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: i64, u: &str) -> Mention {
        Mention {
            id,
            username: u.into(),
        }
    }

    #[test]
    fn the_subset_renders_and_raw_html_does_not() {
        let h = render("**b** *i* ~~s~~ `c` <script>x</script>", &[]);
        assert!(h.contains("<strong>b</strong>"));
        assert!(h.contains("<em>i</em>"));
        assert!(h.contains("<del>s</del>"));
        assert!(h.contains("<code>c</code>"));
        assert!(!h.contains("<script>"));
        assert!(h.contains("&lt;script&gt;"));
    }

    #[test]
    fn only_http_links_are_links() {
        let h = render(
            "[x](javascript:alert(1)) [y](https://e.org) see http://a.b/c",
            &[],
        );
        assert!(!h.contains("javascript:alert(1)\""));
        assert!(!h.contains("href=\"javascript"));
        assert!(h.contains("href=\"https://e.org\""));
        assert!(h.contains("href=\"http://a.b/c\""));
        assert!(h.contains("noopener"));
    }

    #[test]
    fn text_not_meant_as_formatting_stays_as_typed() {
        let h = render("a * b and snake_case_name", &[]);
        assert!(h.contains("a * b and snake_case_name"), "{h}");
        let h = render("# not a heading", &[]);
        assert!(h.contains("# not a heading"), "{h}");
        let h = render("line one\nline two", &[]);
        assert!(h.contains("<br"), "{h}");
    }

    #[test]
    fn code_blocks_and_quotes() {
        let h = render("```\nlet x = <b>;\n```\n\n> quoted", &[]);
        assert!(h.contains("<pre><code>"));
        assert!(h.contains("&lt;b&gt;"));
        assert!(h.contains("<blockquote>"));
    }

    #[test]
    fn mentions_of_members_are_marked() {
        let h = render("hi @Ann and @nobody, mail@ann.org", &[m(3, "ann")]);
        assert!(
            h.contains("<span class=\"mention\" data-mention=\"3\">@Ann</span>"),
            "{h}"
        );
        assert!(h.contains("@nobody"));
        assert_eq!(h.matches("data-mention").count(), 1);
        assert_eq!(
            mentioned_names("hi @Ann and @bob_2, x@y"),
            vec!["ann", "bob_2"]
        );
    }

    #[test]
    fn plain_text_drops_the_markup() {
        assert_eq!(
            plain("**Plan** for *Sunday*, `x` @bob"),
            "Plan for Sunday, x @bob"
        );
        assert_eq!(plain("a * b"), "a * b");
    }

    #[test]
    fn a_few_emoji_are_jumbo() {
        assert!(is_jumbo("🎉"));
        assert!(is_jumbo("👍🏽 ❤️"));
        assert!(!is_jumbo("🎉🎉🎉🎉"));
        assert!(!is_jumbo("ok 🎉"));
        assert!(is_emoji("👍") && !is_emoji("a"));
    }
}
