//! The only Event → HTML mapping: each event becomes frames rendered ONCE, with the same partials
//! the pages use, and shared by every recipient.
//!
//! A frame's root carries `data-target` (the element to act on). Where one event means different
//! things to its parties (a request is incoming for one, outgoing for the other), each variant is
//! its own frame with `data-for="{user_id}"`, and live.js applies only the frames meant for it.

use std::sync::Arc;

use super::hub::Frame;
use crate::db::users::UserRef;
use crate::events::{ConversationData, Event};
use crate::views::{
    ComposerPartial, ComposerView, ConversationRowPartial, ConversationRowView, CurrentUserPartial,
    FriendPartial, GonePartial, MembersPartial, MembersView, MessagePartial, MessageView,
    PresencePartial, PreviewPartial, PreviewView, ReaderPartial, ReaderView, RequestPartial,
    RequestView, Stamp, UserView, hue, initials, render_fragment,
};

/// Container ids on pages that fragments are added to.
pub mod containers {
    /// The conversation list (index and sidebar).
    pub const CONVERSATIONS: &str = "conversation-list";
    /// Friend list on /friends.
    pub const FRIENDS: &str = "friend-list";
    /// Requests for me.
    pub const INCOMING: &str = "incoming-requests";
    /// Requests I sent.
    pub const OUTGOING: &str = "outgoing-requests";
}

/// Puts `data-target` (and `data-for` when given) on the root element of our own rendered HTML.
fn rooted(html: String, target: &str, for_user: Option<i64>) -> Arc<str> {
    rooted_with(html, target, for_user, "")
}

/// [`rooted`] plus `extra` attributes (our own constant markup, e.g. a badge delta).
fn rooted_with(html: String, target: &str, for_user: Option<i64>, extra: &str) -> Arc<str> {
    let html = html.trim_start();
    let Some(end) = html
        .char_indices()
        .skip(1)
        .find(|(_, c)| c.is_whitespace() || *c == '>' || *c == '/')
        .map(|(i, _)| i)
    else {
        return Arc::from(html);
    };
    let mut attrs = format!(" data-target=\"{target}\"");
    if let Some(u) = for_user {
        attrs.push_str(&format!(" data-for=\"{u}\""));
    }
    attrs.push_str(extra);
    let mut out = String::with_capacity(html.len() + attrs.len());
    out.push_str(&html[..end]);
    out.push_str(&attrs);
    out.push_str(&html[end..]);
    Arc::from(out)
}

fn frame(action: &'static str, html: String, target: &str, for_user: Option<i64>) -> Frame {
    Frame {
        action,
        html: rooted(html, target, for_user),
    }
}

/// A `remove` frame: the root names the element to remove.
fn remove(target: &str, for_user: Option<i64>) -> Frame {
    frame(
        "remove",
        "<template></template>".to_owned(),
        target,
        for_user,
    )
}

/// The ephemeral presence frame of `user`.
pub fn presence_frame(user: i64, online: bool) -> Frame {
    let view = UserView {
        id: user,
        name: String::new(),
        username: String::new(),
        initials: String::new(),
        hue: 0,
        online,
    };
    frame(
        "presence",
        render_fragment(&PresencePartial { user: view }),
        &format!("presence-{user}"),
        None,
    )
}

/// The `reload` frame: the client must reload the page (too far behind, or history pruned).
pub fn reload_frame() -> Frame {
    Frame {
        action: "reload",
        html: Arc::from("<template data-target=\"main\"></template>"),
    }
}

/// A list row for a conversation as `viewer` sees it (direct conversations show the other person).
pub fn row_view(c: &ConversationData, viewer: i64, preview: PreviewView) -> ConversationRowView {
    let other = c
        .is_direct()
        .then(|| c.members.iter().find(|m| m.id != viewer))
        .flatten();
    let (title, initials_of, hue_of) = match (&c.title, other) {
        (Some(t), _) => (t.clone(), initials(t), hue(c.id)),
        (None, Some(o)) => (o.name().to_owned(), initials(o.name()), hue(o.id)),
        (None, None) => ("(just you)".to_owned(), "?".to_owned(), 0),
    };
    ConversationRowView {
        id: c.id,
        title,
        other: other.map(|o| UserView::new(o, false)),
        initials: initials_of,
        hue: hue_of,
        preview,
        unread: 0,
        current: false,
    }
}

fn row_frames(c: &ConversationData, for_users: &[UserRef]) -> Vec<Frame> {
    let preview = PreviewView::of(c.id, None, None, c.last_activity_at);
    if c.is_direct() {
        // Each party sees the other: one render per side (two at most), not per tab.
        for_users
            .iter()
            .map(|u| {
                let row = row_view(c, u.id, preview.clone());
                frame(
                    "prepend",
                    render_fragment(&ConversationRowPartial { row }),
                    containers::CONVERSATIONS,
                    Some(u.id),
                )
            })
            .collect()
    } else {
        let html = render_fragment(&ConversationRowPartial {
            row: row_view(c, 0, preview),
        });
        for_users
            .iter()
            .map(|u| Frame {
                action: "prepend",
                html: rooted(html.clone(), containers::CONVERSATIONS, Some(u.id)),
            })
            .collect()
    }
}

fn members_view(c: &ConversationData) -> MembersView {
    MembersView {
        conversation_id: c.id,
        owner_id: c.owner_id.unwrap_or(0),
        members: c.members.iter().map(|m| UserView::new(m, false)).collect(),
        viewer_is_owner: None,
    }
}

fn request_frame(id: i64, incoming: bool, other: &UserRef, at: i64, to: i64) -> Frame {
    let request = RequestView {
        id,
        incoming,
        other: UserView::new(other, false),
        at: Stamp::new(at),
    };
    let target = if incoming {
        containers::INCOMING
    } else {
        containers::OUTGOING
    };
    // The recipient's header badge counts requests waiting for them.
    let badge = if incoming {
        " data-badge-requests=\"1\""
    } else {
        ""
    };
    Frame {
        action: "prepend",
        html: rooted_with(
            render_fragment(&RequestPartial { request }),
            target,
            Some(to),
            badge,
        ),
    }
}

fn friend_frame(friend: &UserRef, to: i64) -> Frame {
    frame(
        "append",
        render_fragment(&FriendPartial {
            friend: UserView::new(friend, false),
        }),
        containers::FRIENDS,
        Some(to),
    )
}

/// The frames of an event, in the order the browser applies them.
pub fn frames_for(event: &Event) -> Vec<Frame> {
    match event {
        Event::SessionEnded { .. } | Event::PasswordChanged { .. } => Vec::new(),
        Event::ProfileUpdated { user } => vec![frame(
            "replace",
            render_fragment(&CurrentUserPartial {
                me: UserView::new(user, false),
            }),
            "current-user",
            Some(user.id),
        )],
        Event::FriendRequestCreated {
            request_id,
            requester,
            recipient,
            created_at,
        } => vec![
            request_frame(*request_id, true, requester, *created_at, recipient.id),
            request_frame(*request_id, false, recipient, *created_at, requester.id),
        ],
        Event::FriendRequestUpdated {
            request_id,
            requester,
            recipient,
            ..
        } => {
            let target = format!("request-{request_id}");
            vec![
                Frame {
                    action: "remove",
                    html: rooted_with(
                        "<template></template>".to_owned(),
                        &target,
                        Some(recipient.id),
                        " data-badge-requests=\"-1\"",
                    ),
                },
                remove(&target, Some(requester.id)),
            ]
        }
        Event::FriendAdded { a, b } => vec![friend_frame(b, a.id), friend_frame(a, b.id)],
        Event::FriendRemoved {
            a,
            b,
            conversation_id,
        } => {
            let mut frames = vec![
                remove(&format!("friend-{}", b.id), Some(a.id)),
                remove(&format!("friend-{}", a.id), Some(b.id)),
            ];
            if let Some(cid) = conversation_id {
                frames.push(frame(
                    "replace",
                    render_fragment(&ComposerPartial {
                        composer: ComposerView::new(*cid, false),
                    }),
                    &format!("composer-{cid}"),
                    None,
                ));
            }
            frames
        }
        Event::ConversationCreated { conversation } => {
            row_frames(conversation, &conversation.members)
        }
        Event::ConversationReopened { conversation_id } => vec![frame(
            "replace",
            render_fragment(&ComposerPartial {
                composer: ComposerView::new(*conversation_id, true),
            }),
            &format!("composer-{conversation_id}"),
            None,
        )],
        Event::ConversationDeleted { conversation_id } => vec![
            remove(&format!("conversation-{conversation_id}"), None),
            frame(
                "replace",
                render_fragment(&GonePartial {
                    conversation_id: *conversation_id,
                    message: "This group was deleted.".into(),
                }),
                &format!("conversation-view-{conversation_id}"),
                None,
            ),
        ],
        Event::MembersChanged {
            conversation,
            added,
            removed,
            left,
        } => {
            let cid = conversation.id;
            let mut frames = vec![frame(
                "replace",
                render_fragment(&MembersPartial {
                    members: members_view(conversation),
                }),
                &format!("members-{cid}"),
                None,
            )];
            frames.extend(row_frames(conversation, added));
            if !removed.is_empty() {
                let gone = render_fragment(&GonePartial {
                    conversation_id: cid,
                    message: if *left {
                        "You left this group.".into()
                    } else {
                        "You were removed from this group.".into()
                    },
                });
                for r in removed {
                    frames.push(remove(&format!("conversation-{cid}"), Some(r.id)));
                    frames.push(Frame {
                        action: "replace",
                        html: rooted(
                            gone.clone(),
                            &format!("conversation-view-{cid}"),
                            Some(r.id),
                        ),
                    });
                }
            }
            frames
        }
        Event::MessageAdded { message } => {
            let cid = message.conversation_id;
            let preview = PreviewView::of(
                cid,
                Some(message.author.name()),
                Some(&message.body),
                message.created_at,
            );
            vec![
                frame(
                    "append",
                    render_fragment(&MessagePartial {
                        message: MessageView::new(message),
                    }),
                    &format!("messages-{cid}"),
                    None,
                ),
                frame(
                    "replace",
                    render_fragment(&PreviewPartial { preview }),
                    &format!("preview-{cid}"),
                    None,
                ),
                // The author has read their own message: their marker moves to it.
                frame(
                    "append",
                    render_fragment(&ReaderPartial {
                        reader: ReaderView {
                            conversation_id: cid,
                            user: UserView::new(&message.author, false),
                        },
                    }),
                    &format!("receipts-{}", message.id),
                    None,
                ),
            ]
        }
        Event::MessagesRead {
            conversation_id,
            reader,
            message_id,
        } => vec![frame(
            "append",
            render_fragment(&ReaderPartial {
                reader: ReaderView {
                    conversation_id: *conversation_id,
                    user: UserView::new(reader, false),
                },
            }),
            &format!("receipts-{message_id}"),
            None,
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::MessageData;

    fn user(id: i64, name: &str) -> UserRef {
        UserRef {
            id,
            username: name.into(),
            display_name: String::new(),
        }
    }

    #[test]
    fn roots_get_their_target() {
        let f = rooted("<li id=\"x\">a</li>".into(), "list", Some(3));
        assert_eq!(
            &*f,
            "<li data-target=\"list\" data-for=\"3\" id=\"x\">a</li>"
        );
    }

    #[test]
    fn a_message_is_escaped_in_its_fragment() {
        let frames = frames_for(&Event::MessageAdded {
            message: MessageData {
                id: 5,
                conversation_id: 2,
                author: user(1, "ann"),
                body: "<script>alert(\"x\")</script> & 'q'".into(),
                created_at: 0,
            },
        });
        assert_eq!(frames[0].action, "append");
        assert!(frames[0].html.contains("data-target=\"messages-2\""));
        assert!(frames[0].html.contains("id=\"message-5\""));
        assert!(!frames[0].html.contains("<script>"));
        assert!(frames[0].html.contains("alert"));
        assert!(frames[1].html.contains("data-target=\"preview-2\""));
    }

    #[test]
    fn a_request_is_incoming_for_one_and_outgoing_for_the_other() {
        let frames = frames_for(&Event::FriendRequestCreated {
            request_id: 9,
            requester: user(1, "ann"),
            recipient: user(2, "bob"),
            created_at: 0,
        });
        assert!(
            frames[0]
                .html
                .contains("data-target=\"incoming-requests\" data-for=\"2\"")
        );
        assert!(frames[0].html.contains("/accept"));
        assert!(
            frames[1]
                .html
                .contains("data-target=\"outgoing-requests\" data-for=\"1\"")
        );
        assert!(frames[1].html.contains("/cancel"));
    }
}
