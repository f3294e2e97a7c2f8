//! Frames: what one event becomes on the wire. A frame is `{action, target DOM id, audience, html}`;
//! its wrapper is rendered by `templates/live/_frame.html`, and its SSE bytes are encoded once and
//! shared (`Bytes` is reference counted) by every connection that receives it.

use std::sync::Arc;

use askama::Template;
use bytes::{BufMut, Bytes, BytesMut};

use crate::views::{PresencePartial, UserView, dom, render_fragment};

/// What the browser does with a frame (the SSE `event:` name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Add the content as the last child of the target (or in order, in an ordered list).
    Append,
    /// Add the content as the first child of the target (or in order, in an ordered list).
    Prepend,
    /// Put the content in place of the target.
    Replace,
    /// Remove the target.
    Remove,
    /// Set every presence dot of a user (ephemeral, never logged).
    Presence,
    /// Set every place that shows a user's name and initials.
    Rename,
    /// Someone is typing in a conversation (ephemeral; the browser lets it fade).
    Typing,
    /// Reload the page: always when the target is `main`, else only when the target is on it.
    Reload,
}

impl Action {
    /// The SSE `event:` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Append => "append",
            Action::Prepend => "prepend",
            Action::Replace => "replace",
            Action::Remove => "remove",
            Action::Presence => "presence",
            Action::Rename => "rename",
            Action::Typing => "typing",
            Action::Reload => "reload",
        }
    }
}

/// Who receives a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The event's whole audience: its conversation's members at that point in the log (resolved
    /// by the Hub from memory, by replay with a query), and its explicit audience.
    Everyone,
    /// These users (sorted, without repeats).
    Users(Arc<[i64]>),
}

/// Makes an audience of these users.
pub fn audience(ids: impl IntoIterator<Item = i64>) -> Audience {
    let mut v: Vec<i64> = ids.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    Audience::Users(v.into())
}

/// The event's whole audience (see [`Audience::Everyone`]).
pub fn everyone() -> Audience {
    Audience::Everyone
}

/// One frame, rendered once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What to do.
    pub action: Action,
    /// The DOM id acted on.
    pub target: String,
    /// Who receives it.
    pub audience: Audience,
    /// The wrapper with the record's partial inside.
    pub html: Arc<str>,
}

/// `live/_frame.html`.
#[derive(Template)]
#[template(path = "live/_frame.html")]
struct FrameWrapper<'a> {
    target: &'a str,
    /// A signed count change the target applies to its own number (badges).
    delta: Option<i64>,
    /// A signed change of the target's mention count (a row's `@`).
    mentions_delta: Option<i64>,
    html: &'a str,
}

impl Frame {
    /// A frame carrying `html` (a rendered partial, or empty for `remove`).
    pub fn new(action: Action, target: String, audience: Audience, html: &str) -> Frame {
        Frame::with_delta(action, target, audience, html, None)
    }

    /// A frame whose target is a counter that changes by `delta`.
    pub fn with_delta(
        action: Action,
        target: String,
        audience: Audience,
        html: &str,
        delta: Option<i64>,
    ) -> Frame {
        Frame::wrap(action, target, audience, html, delta, None)
    }

    /// A frame that changes the mention count of a conversation row's unread counter by
    /// `delta` (its unread count stays).
    pub fn mentions_delta(target: String, audience: Audience, delta: i64) -> Frame {
        Frame::wrap(Action::Replace, target, audience, "", None, Some(delta))
    }

    fn wrap(
        action: Action,
        target: String,
        audience: Audience,
        html: &str,
        delta: Option<i64>,
        mentions_delta: Option<i64>,
    ) -> Frame {
        let wrapped = render_fragment(&FrameWrapper {
            target: &target,
            delta,
            mentions_delta,
            html,
        });
        Frame {
            action,
            target,
            audience,
            html: Arc::from(wrapped.trim()),
        }
    }

    /// Whether `user`, who is (or is not) in the event's audience, receives this frame.
    pub fn is_for(&self, user: i64, in_event: bool) -> bool {
        match &self.audience {
            Audience::Everyone => in_event,
            Audience::Users(ids) => ids.binary_search(&user).is_ok(),
        }
    }

    /// The SSE bytes of this frame as part of event `id` (None: ephemeral).
    pub fn encode(&self, id: Option<i64>) -> Bytes {
        encode(id, self.action.as_str(), &self.html)
    }
}

/// Encodes one SSE message. Our actions and ids hold no line breaks; the data is split on every
/// line break (CR LF, CR or LF) into `data:` lines, so no input can end the field or the message.
pub fn encode(id: Option<i64>, action: &str, data: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + 48);
    if let Some(id) = id {
        b.put_slice(b"id: ");
        b.put_slice(id.to_string().as_bytes());
        b.put_u8(b'\n');
    }
    b.put_slice(b"event: ");
    for c in action.bytes().filter(|c| *c != b'\r' && *c != b'\n') {
        b.put_u8(c);
    }
    b.put_u8(b'\n');
    for line in data.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
        b.put_slice(b"data: ");
        b.put_slice(line.as_bytes());
        b.put_u8(b'\n');
    }
    b.put_u8(b'\n');
    b.freeze()
}

/// A comment line (keep-alive), plus the reconnect delay on the first one.
pub fn comment(text: &str, retry_ms: Option<u64>) -> Bytes {
    let mut s = String::new();
    if let Some(ms) = retry_ms {
        s.push_str(&format!("retry: {ms}\n"));
    }
    s.push(':');
    s.push_str(&text.replace(['\r', '\n'], " "));
    s.push_str("\n\n");
    Bytes::from(s)
}

/// The ephemeral presence frame of `user`, for `to`.
pub fn presence(user: i64, online: bool, to: Audience) -> Frame {
    let view = UserView {
        id: user,
        name: String::new(),
        username: String::new(),
        initials: String::new(),
        hue: 0,
        online,
    };
    Frame::new(
        Action::Presence,
        dom::presence(user),
        to,
        &render_fragment(&PresencePartial { user: view }),
    )
}

/// The `reload` frame aimed at `target` (`main`: whatever the page).
pub fn reload(target: String, to: Audience) -> Frame {
    Frame::new(Action::Reload, target, to, "")
}

/// What one event (or signal) becomes for one group of recipients: the encoded frames they get.
#[derive(Debug)]
pub struct Delivery {
    /// The event id (`None` for ephemeral signals such as presence).
    pub id: Option<i64>,
    /// SSE bytes, in order.
    pub chunks: Vec<Bytes>,
}

/// A logged event rendered once: its frames and their encodings, kept for replay.
#[derive(Debug)]
pub struct Rendered {
    /// The event id.
    pub id: i64,
    /// Frames with their SSE bytes.
    pub frames: Vec<(Frame, Bytes)>,
}

impl Rendered {
    /// Renders `frames` of event `id`.
    pub fn new(id: i64, frames: Vec<Frame>) -> Rendered {
        let frames = frames
            .into_iter()
            .map(|f| {
                let b = f.encode(Some(id));
                (f, b)
            })
            .collect();
        Rendered { id, frames }
    }

    /// What `user`, who is in the event's audience, receives of it (a replay).
    pub fn for_user(&self, user: i64) -> Delivery {
        Delivery {
            id: Some(self.id),
            chunks: self
                .frames
                .iter()
                .filter(|(f, _)| f.is_for(user, true))
                .map(|(_, b)| b.clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A dispatched browser event: type, data, last event id.
    type Dispatched = (String, String, Option<String>);

    /// What a browser makes of an event stream (WHATWG "interpreting an event stream"): the
    /// dispatched events, and the name of every field it read.
    fn interpret(stream: &str) -> (Vec<Dispatched>, Vec<String>) {
        let (mut events, mut fields) = (Vec::new(), Vec::new());
        let (mut data, mut kind, mut last_id) = (String::new(), String::new(), None);
        let text = stream.replace("\r\n", "\n").replace('\r', "\n");
        let mut lines: Vec<&str> = text.split('\n').collect();
        lines.pop(); // what follows the last line break is not a line (yet)
        for line in lines {
            if line.is_empty() {
                if !data.is_empty() {
                    data.pop();
                    let kind = if kind.is_empty() { "message" } else { &kind };
                    events.push((kind.to_owned(), data.clone(), last_id.clone()));
                }
                data.clear();
                kind.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            fields.push(field.to_owned());
            match field {
                "event" => kind = value.to_owned(),
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "id" if !value.contains('\0') => last_id = Some(value.to_owned()),
                _ => {}
            }
        }
        (events, fields)
    }

    /// Text rich in what could break a frame: line breaks of every kind, colons, NULs.
    fn hostile_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('\r'),
                Just('\n'),
                Just(':'),
                Just(' '),
                Just('\0'),
                any::<char>()
            ],
            0..48,
        )
        .prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn no_action_data_or_id_injects_a_field_or_another_frame(
            frames in prop::collection::vec((hostile_text(), hostile_text()), 1..4),
            id in proptest::option::of(any::<i64>()),
        ) {
            let bytes: Vec<u8> = frames
                .iter()
                .flat_map(|(action, data)| encode(id, action, data).to_vec())
                .collect();
            let (events, fields) = interpret(&String::from_utf8(bytes).expect("utf-8"));
            // Only the fields we write; exactly one `event:` per frame, one event per frame.
            prop_assert!(fields.iter().all(|f| ["event", "data", "id"].contains(&f.as_str())), "{:?}", fields);
            prop_assert_eq!(fields.iter().filter(|f| *f == "event").count(), frames.len());
            prop_assert_eq!(events.len(), frames.len());
            for ((action, data), (kind, got, last_id)) in frames.iter().zip(&events) {
                let name = action.replace(['\r', '\n'], "");
                prop_assert_eq!(kind, if name.is_empty() { "message" } else { name.as_str() });
                // The data arrives whole, line breaks folded to LF.
                prop_assert_eq!(got, &data.replace("\r\n", "\n").replace('\r', "\n"));
                prop_assert_eq!(last_id, &id.map(|i| i.to_string()));
            }
        }
    }

    #[test]
    fn the_interpreter_sees_an_injected_frame_where_there_is_one() {
        // The property's oracle: a raw stream with a forged field and frame is read as such.
        let (events, fields) =
            interpret("event: a\ndata: x\n\nid: 9\nevent: forged\ndata: y\r\n\r\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], ("forged".into(), "y".into(), Some("9".into())));
        assert_eq!(fields, ["event", "data", "id", "event", "data"]);
    }

    #[test]
    fn a_frame_is_wrapped_by_its_template() {
        let f = Frame::new(
            Action::Append,
            "messages-2".into(),
            audience([3, 1, 3]),
            "<article id=\"message-5\">hi</article>",
        );
        assert_eq!(
            &*f.html,
            "<template data-target=\"messages-2\"><article id=\"message-5\">hi</article></template>"
        );
        assert_eq!(f.audience, audience([1, 3]));
        assert!(f.is_for(3, false) && !f.is_for(2, true));
        let all = Frame::new(Action::Append, "x".into(), everyone(), "");
        assert!(all.is_for(2, true) && !all.is_for(2, false));
    }

    #[test]
    fn encoding_splits_every_line_break_into_data_lines() {
        let b = encode(Some(7), "append", "a\r\nb\rc\nd");
        assert_eq!(
            &b[..],
            b"id: 7\nevent: append\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }
}
