//! Bytes on the wire per event: what every open stream of a group's members receives when the
//! group is created and when one message is posted in it, for groups of growing size. Each frame
//! goes to its own audience, so the total grows with the number of members, never with its square.
//!
//!     cargo bench --bench frames
//!
//! The figures are the exact SSE encodings the Hub writes (frames rendered by `live::fragments`
//! and encoded once), summed over every recipient: bytes per member stay flat as groups grow.

use parley::db::users::UserRef;
use parley::events::{ConversationData, Event, MessageData};
use parley::live::fragments::frames_for;
use parley::live::frame::{Audience, Rendered};

fn bytes_to_all(event: &Event, members: &[i64]) -> (usize, usize) {
    let online = |_: i64| true;
    let r = Rendered::new(1, frames_for(event, &online));
    let total = r
        .frames
        .iter()
        .map(|(f, b)| {
            b.len()
                * match &f.audience {
                    Audience::Everyone => members.len(),
                    Audience::Users(ids) => ids.len(),
                }
        })
        .sum();
    (total, r.frames.len())
}

fn main() {
    println!("bytes sent on the streams of all members, per event");
    println!(
        "{:>8} {:>16} {:>12} {:>16} {:>12}",
        "members", "group created", "per member", "one message", "per member"
    );
    for n in [2usize, 10, 50, 200, 500] {
        let members: Vec<UserRef> = (1..=n as i64)
            .map(|id| UserRef {
                id,
                username: format!("user{id}"),
                display_name: String::new(),
            })
            .collect();
        let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
        let created = Event::ConversationCreated {
            conversation: ConversationData {
                id: 7,
                title: Some("Everyone".into()),
                owner_id: Some(1),
                last_activity_at: 1_764_000_000_000,
                members: members.clone(),
                last_message: None,
            },
        };
        let message = Event::MessageAdded {
            message: MessageData {
                id: 99,
                conversation_id: 7,
                author: members[0].clone(),
                body: "hello everyone".into(),
                created_at: 1_764_000_000_000,
                prev: None,
                edited: false,
                reply: None,
                reactions: Vec::new(),
                mentions: Vec::new(),
                note: false,
                attachments: Vec::new(),
            },
            author_total_unread: 0,
            author_gone: false,
        };
        let (c, _) = bytes_to_all(&created, &ids);
        let (m, _) = bytes_to_all(&message, &ids);
        println!("{n:>8} {c:>16} {:>12} {m:>16} {:>12}", c / n, m / n);
    }
}
