//! Edit, delete, reactions, replies, formatting and mentions: each route with success, bad input
//! and a user who may not act; each live change reaching the members and nobody else.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{Client, Frame, LIVE, TestApp, about_my_account, befriend};

#[tokio::test]
async fn the_author_edits_a_message_and_members_see_it_live_with_receipts_and_reactions_kept() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let c = ann.direct_with(&bob).await;
    let m = ann.say(c, "helo").await;
    bob.post(
        &format!("/conversations/{c}/read"),
        &[("message_id", &m.to_string())],
    )
    .await;
    bob.post(
        &format!("/conversations/{c}/messages/{m}/reactions"),
        &[("emoji", "👍")],
    )
    .await;
    let mut b = bob.stream().await;
    let mut x = carl.stream().await;
    // The edit page (no JS) has the text as typed.
    let page = ann
        .get(&format!("/conversations/{c}/messages/{m}/edit"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.text("#edit-body").as_deref(), Some("helo"));
    let r = ann
        .post(
            &format!("/conversations/{c}/messages/{m}"),
            &[("body", "hello")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // On PostgreSQL the reaction's own frame can still reach a stream opened just after it (a
    // stream without a position starts where this node's reader is): wait for the edit's.
    let f = b
        .expect(LIVE, "the edited message", |f| {
            f.event == "replace"
                && f.target().as_deref() == Some(format!("message-{m}").as_str())
                && f.content().contains("(edited)")
        })
        .await;
    assert!(f.content().contains("hello"));
    x.assert_none(Duration::from_millis(300), "anything", |f| {
        f.event != "presence" && !about_my_account(f)
    })
    .await;
    let page = bob
        .get(&format!("/conversations/{c}?before={}", m + 1))
        .await;
    assert_eq!(
        page.text(&format!("#message-{m} .body")).as_deref(),
        Some("hello")
    );
    assert!(page.has(&format!("#message-{m} .edited")));
    assert!(page.has(&format!("#receipts-{m} #reader-{c}-{}", bob.id)));
    assert_eq!(
        page.text(&format!("#message-{m} .reaction .count"))
            .as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn only_the_author_edits_and_bad_input_changes_nothing() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let c = ann.direct_with(&bob).await;
    let m = ann.say(c, "original").await;
    let path = format!("/conversations/{c}/messages/{m}");
    assert_eq!(
        ann.post(&path, &[("body", "   ")]).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = bob.post(&path, &[("body", "mine now")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.text("main p").as_deref(),
        Some("Only the person who wrote a message can edit it."),
        "{}",
        r.body
    );
    assert_eq!(
        bob.get(&format!("{path}/edit")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        carl.post(&path, &[("body", "x")]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        carl.post(&path, &[("body", "")]).await.status,
        StatusCode::NOT_FOUND
    );
    let page = ann.get(&format!("/conversations/{c}")).await;
    assert_eq!(
        page.text(&format!("#message-{m} .body")).as_deref(),
        Some("original")
    );
    assert!(!page.has(&format!("#message-{m} .edited")));
}

#[tokio::test]
async fn a_deleted_message_leaves_every_page_and_its_replies_say_so() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let first = ann.say(c, "first").await;
    let m = ann.say(c, "oops").await;
    let reply = bob
        .post_fetch(
            &format!("/conversations/{c}/messages"),
            &[("body", "what?"), ("reply_to", &m.to_string())],
        )
        .await;
    assert!(reply.has(".quote"), "{}", reply.body);
    let reply_id: i64 = reply
        .attr("article.message", "id")
        .and_then(|s| s.strip_prefix("message-").map(str::to_owned))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let last = ann.say(c, "unread by bob").await;
    let mut b = bob.stream().await;
    // The confirmation page, then the delete.
    let confirm = ann
        .get(&format!("/conversations/{c}/messages/{m}/delete"))
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    let r = bob
        .post(&format!("/conversations/{c}/messages/{m}/delete"), &[])
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "not the author, not a group owner"
    );
    assert!(
        r.body
            .contains("Only the person who wrote a message, or the group&#39;s owner"),
        "{}",
        r.body
    );
    // From live.js, the same refusal is its message alone, to show beside the message.
    let r = bob
        .post_fetch(&format!("/conversations/{c}/messages/{m}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.body,
        "Only the person who wrote a message, or the group's owner, can delete it."
    );
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let r = ann
        .post(&format!("/conversations/{c}/messages/{m}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    b.expect_target("remove", &format!("message-{m}")).await;
    let q = b
        .expect_target("replace", &format!("quote-{reply_id}"))
        .await;
    assert!(q.content().contains("message deleted"));
    let page = bob.get(&format!("/conversations/{c}")).await;
    assert!(!page.has(&format!("#message-{m}")));
    assert!(page.has(&format!("#message-{first}")) && page.has(&format!("#message-{last}")));
    assert_eq!(
        page.text(&format!("#quote-{reply_id}")).as_deref(),
        Some("message deleted")
    );
    // Deleting the newest message brings the preview back to the one before.
    ann.post(&format!("/conversations/{c}/messages/{last}/delete"), &[])
        .await;
    let p = b.expect_target("replace", &format!("preview-{c}")).await;
    assert!(p.content().contains("what?"), "{}", p.data);
}

#[tokio::test]
async fn a_group_owner_deletes_any_message_and_unread_counts_follow() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    crate::helpers::befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob, &carl]).await;
    let m = bob.say(g, "spam").await;
    let mut cs = carl.stream().await;
    let r = ann
        .post(&format!("/conversations/{g}/messages/{m}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    cs.expect(LIVE, "unread drop", |f| {
        f.target().as_deref() == Some(&format!("unread-{g}"))
            && f.data.contains("data-delta=\"-1\"")
    })
    .await;
    let list = carl.get("/conversations").await;
    assert_eq!(
        list.attr(&format!("#unread-{g}"), "data-count").as_deref(),
        Some("0")
    );
    assert_eq!(
        carl.post(&format!("/conversations/{g}/messages/{m}/delete"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND,
        "already gone"
    );
}

#[tokio::test]
async fn reactions_toggle_live_for_members_and_only_emoji_are_accepted() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let c = ann.direct_with(&bob).await;
    let m = ann.say(c, "party?").await;
    let path = format!("/conversations/{c}/messages/{m}/reactions");
    let mut a = ann.stream().await;
    let r = bob.post(&path, &[("emoji", "🎉"), ("emoji", "")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let f = a.expect_target("replace", &format!("message-{m}")).await;
    assert!(
        f.content().contains("🎉") && f.content().contains(&format!("data-users=\"{}\"", bob.id))
    );
    // Any single emoji typed in the field.
    bob.post(&path, &[("emoji", ""), ("emoji", "🦀")]).await;
    a.expect_target("replace", &format!("message-{m}")).await;
    let page = ann.get(&format!("/conversations/{c}")).await;
    assert_eq!(page.count(&format!("#message-{m} .reaction")), 2);
    // Enter in the field submits with the form's default button, its first submit button: one
    // without an emoji of its own, so the typed one counts and not the first quick emoji.
    let buttons = format!("#message-{m} .react-form button[type=submit]");
    assert!(page.count(&format!("{buttons}[name=emoji]")) >= 1);
    assert_eq!(page.attr(&buttons, "name"), None, "{}", page.body);
    // Toggle off.
    bob.post(&path, &[("emoji", "🎉")]).await;
    let page = ann.get(&format!("/conversations/{c}")).await;
    assert_eq!(page.count(&format!("#message-{m} .reaction")), 1);
    assert_eq!(
        bob.post(&path, &[("emoji", "lol")]).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        bob.post(&path, &[("emoji", "")]).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        carl.post(&path, &[("emoji", "👍")]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        carl.post(&path, &[("emoji", "lol")]).await.status,
        StatusCode::NOT_FOUND
    );
    let page = ann.get(&format!("/conversations/{c}")).await;
    assert_eq!(page.count(&format!("#message-{m} .reaction")), 1);
}

#[tokio::test]
async fn a_reply_quotes_its_original_and_must_answer_this_conversation() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    crate::helpers::befriend(&ann, &carl).await;
    let c = ann.direct_with(&bob).await;
    let other = ann.direct_with(&carl).await;
    let m = ann.say(c, "lunch at **noon**?").await;
    let elsewhere = ann.say(other, "secret").await;
    // Without JS the reply link opens the conversation with the composer answering it (its
    // words, as live.js shows them, without the Markdown).
    let page = bob.get(&format!("/conversations/{c}?reply={m}")).await;
    assert_eq!(
        page.attr("input[name=reply_to]", "value").as_deref(),
        Some(m.to_string().as_str())
    );
    let label = page.text(".replying-to").unwrap_or_default();
    assert!(
        label.ends_with(": lunch at noon?") && !label.contains('*'),
        "{label}"
    );
    let r = bob
        .post(
            &format!("/conversations/{c}/messages"),
            &[("body", "yes"), ("reply_to", &m.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = ann.get(&format!("/conversations/{c}")).await;
    assert!(
        page.text(".message .quote")
            .unwrap_or_default()
            .contains("lunch at noon?")
    );
    let bad = bob
        .post(
            &format!("/conversations/{c}/messages"),
            &[("body", "leak?"), ("reply_to", &elsewhere.to_string())],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!bad.body.contains("secret"));
    let bad = bob
        .post(
            &format!("/conversations/{c}/messages"),
            &[("body", "x"), ("reply_to", "abc")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = ann.get(&format!("/conversations/{c}")).await;
    assert_eq!(page.count(".message"), 2);
}

#[tokio::test]
async fn formatting_is_rendered_safely_and_mentions_mark_the_row_until_read() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    crate::helpers::befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob]).await;
    let m = ann
        .say(g, "**bold** `code` @bob and @carl <b>no</b> snake_case")
        .await;
    let page = bob
        .get(&format!("/conversations/{g}?before={}", m + 1))
        .await;
    assert_eq!(
        page.text(&format!("#message-{m} strong")).as_deref(),
        Some("bold")
    );
    assert_eq!(
        page.text(&format!("#message-{m} code")).as_deref(),
        Some("code")
    );
    assert!(!page.has(&format!("#message-{m} .body b")));
    assert!(
        page.text(&format!("#message-{m} .body"))
            .unwrap_or_default()
            .contains("<b>no</b> snake_case")
    );
    // Bob is a member and is named; carl is not a member, so "@carl" stays text.
    assert_eq!(
        page.attr(&format!("#message-{m} .mention"), "data-mention")
            .as_deref(),
        Some(bob.id.to_string().as_str())
    );
    assert_eq!(page.count(&format!("#message-{m} .mention")), 1);
    let list = bob.get("/conversations").await;
    assert_eq!(
        list.attr(&format!("#unread-{g}"), "data-mentions")
            .as_deref(),
        Some("1")
    );
    bob.post(
        &format!("/conversations/{g}/read"),
        &[("message_id", &m.to_string())],
    )
    .await;
    let list = bob.get("/conversations").await;
    assert_eq!(
        list.attr(&format!("#unread-{g}"), "data-mentions")
            .as_deref(),
        Some("0")
    );
    let jumbo = ann.say(g, "🎉🎉").await;
    let page = bob.get(&format!("/conversations/{g}")).await;
    assert!(page.has(&format!("#message-{jumbo}.jumbo")));
}

#[tokio::test]
async fn renaming_a_group_and_member_changes_leave_notes_live_and_in_history() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let dan = app.user("dan").await;
    crate::helpers::befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob]).await;
    let mut b = bob.stream().await;
    let mut d = dan.stream().await;
    let r = bob
        .post(
            &format!("/conversations/{g}/title"),
            &[("title", "Summer trip")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let f = b.expect_target("rename", &format!("group-{g}")).await;
    assert!(f.content().contains("Summer trip"));
    let n = b.expect_target("append", &format!("messages-{g}")).await;
    assert!(n.content().contains("renamed the group to “Summer trip”"));
    assert!(n.content().contains("message note"));
    ann.post(
        &format!("/conversations/{g}/members"),
        &[("username", "carl")],
    )
    .await;
    let n = b.expect_target("append", &format!("messages-{g}")).await;
    assert!(n.content().contains("added @carl"));
    carl.post(&format!("/conversations/{g}/leave"), &[]).await;
    let n = b.expect_target("append", &format!("messages-{g}")).await;
    assert!(n.content().contains("left the group"));
    d.assert_none(Duration::from_millis(200), "anything", |f| {
        f.event != "presence" && !about_my_account(f)
    })
    .await;
    // Notes are history, never unread, and cannot be edited, deleted or reacted to.
    let page = bob
        .get(&format!("/conversations/{g}?before={}", i64::MAX))
        .await;
    assert_eq!(page.count(".message.note"), 3);
    assert_eq!(
        page.text(&format!("[data-title-of=\"{g}\"]")).as_deref(),
        Some("Summer trip")
    );
    let list = bob.get("/conversations").await;
    assert_eq!(
        list.attr(&format!("#unread-{g}"), "data-count").as_deref(),
        Some("0")
    );
    let note: i64 = page
        .attr(".message.note", "id")
        .and_then(|s| s.strip_prefix("message-").map(str::to_owned))
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert_eq!(
        bob.post(&format!("/conversations/{g}/messages/{note}/delete"), &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // Bad input and strangers.
    let r = bob
        .post(&format!("/conversations/{g}/title"), &[("title", "  ")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = dan
        .post(&format!("/conversations/{g}/title"), &[("title", "Mine")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let direct = ann.direct_with(&bob).await;
    let r = ann
        .post(
            &format!("/conversations/{direct}/title"),
            &[("title", "Us")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn typing_reaches_the_other_members_only_and_is_never_logged() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let g = ann.group("Trip", &[&bob]).await;
    let mut a = ann.stream().await;
    let mut b = bob.stream().await;
    let mut c = carl.stream().await;
    let r = bob.post(&format!("/conversations/{g}/typing"), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let f = a.expect_target("typing", &format!("typing-{g}")).await;
    assert!(f.id.is_none(), "ephemeral");
    assert!(f.content().contains(&format!("data-typer=\"{}\"", bob.id)));
    b.assert_none(Duration::from_millis(200), "own typing", |f| {
        f.event == "typing"
    })
    .await;
    c.assert_none(Duration::from_millis(200), "typing", |f| {
        f.event == "typing"
    })
    .await;
    assert_eq!(
        carl.post(&format!("/conversations/{g}/typing"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // A stream that reconnects after it gets no typing replayed.
    let mut a2 = ann.stream_at("/events?after=0").await;
    a2.assert_none(Duration::from_millis(300), "replayed typing", |f| {
        f.event == "typing"
    })
    .await;
}

#[tokio::test]
async fn on_postgresql_typing_crosses_nodes() {
    let app = TestApp::spawn().await;
    if !app.on_postgres() {
        // Several nodes are a PostgreSQL deployment; the PostgreSQL run of the suite covers this.
        return;
    }
    let node_b = app.second_node().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let bob_b = bob.on(&node_b);
    let mut b = bob_b.stream().await;
    ann.post(&format!("/conversations/{c}/typing"), &[]).await;
    let f = b
        .expect(Duration::from_secs(2), "typing from the other node", |f| {
            f.event == "typing"
        })
        .await;
    assert!(f.content().contains(&format!("data-typer=\"{}\"", ann.id)));
}

#[tokio::test]
async fn opening_a_conversation_lands_on_a_divider_above_the_first_unread_message_even_far_back() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let read = ann.say(c, "seen").await;
    bob.post(
        &format!("/conversations/{c}/read"),
        &[("message_id", &read.to_string())],
    )
    .await;
    let mut first_unread = 0;
    for i in 0..70 {
        let id = ann.say(c, &format!("new {i}")).await;
        if i == 0 {
            first_unread = id;
        }
    }
    let page = bob.get(&format!("/conversations/{c}")).await;
    // More than a page of unread: the page reaches back to the first of them.
    assert!(page.has(&format!("#message-{first_unread}")));
    assert!(
        page.has(&format!("#message-{read}")),
        "with a little context above"
    );
    let html = page.body.clone();
    let divider = html.find("id=\"unread-divider\"").expect("divider");
    let first = html
        .find(&format!("id=\"message-{first_unread}\""))
        .unwrap();
    let before = html.find(&format!("id=\"message-{read}\"")).unwrap();
    assert!(
        before < divider && divider < first,
        "the divider sits right above the first unread"
    );
    // Read now: the next visit has no divider and ends with an anchor to land on.
    let again = bob.get(&format!("/conversations/{c}")).await;
    assert!(!again.has("#unread-divider"));
    assert!(again.has("#start"));
    assert_eq!(again.count("article.message"), 50);
    // Rows link to the landing point, so without JavaScript a page opens at its end.
    let list = bob.get("/conversations").await;
    assert_eq!(
        list.attr(&format!("#conversation-{c} a"), "href")
            .as_deref(),
        Some(format!("/conversations/{c}#start").as_str())
    );
}

#[tokio::test]
async fn notification_settings_are_mine_live_on_my_tabs_and_checked() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let g = ann.group("Trip", &[&bob]).await;
    let c = ann.direct_with(&bob).await;
    let mut a = ann.stream().await;
    let mut b = bob.stream().await;
    let r = ann
        .post(
            &format!("/conversations/{g}/notifications"),
            &[("level", "mentions")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let f = a.expect_target("replace", "notify-prefs").await;
    assert!(f.content().contains(&format!("data-mentions=\"{g}\"")));
    b.assert_none(Duration::from_millis(200), "ann's settings", |f| {
        f.target().as_deref() == Some("notify-prefs")
    })
    .await;
    ann.post(
        &format!("/conversations/{c}/notifications"),
        &[("level", "mute")],
    )
    .await;
    let page = ann.get("/friends").await;
    assert_eq!(
        page.attr("#notify-prefs", "data-muted").as_deref(),
        Some(c.to_string().as_str())
    );
    let page = ann.get(&format!("/conversations/{g}")).await;
    assert!(page.has("select[name=level] option[value=mentions][selected]"));
    // Bad input, a direct conversation has no "mentions only", strangers get 404.
    let bad = ann
        .post(
            &format!("/conversations/{g}/notifications"),
            &[("level", "loud")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad = ann
        .post(
            &format!("/conversations/{c}/notifications"),
            &[("level", "mentions")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = carl
        .post(
            &format!("/conversations/{g}/notifications"),
            &[("level", "mute")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = carl
        .post(
            &format!("/conversations/{g}/notifications"),
            &[("level", "loud")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The favicon with a count.
    let icon = ann.get("/icon/7").await;
    assert_eq!(icon.status, StatusCode::OK);
    assert!(icon.body.contains(">7</text>"));
}

/// Deleting a conversation's only message turns its preview back to "No messages yet" on every
/// open page, as a fresh load shows it (found by the seeded live==reload browser run).
#[tokio::test]
async fn deleting_the_only_message_empties_the_preview_live() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let m = ann.say(c, "only one").await;
    let mut a = ann.stream().await;
    let mut b = bob.stream().await;
    let r = ann
        .post(&format!("/conversations/{c}/messages/{m}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // On PostgreSQL a stream opened right after a commit may still get that commit's frames
    // (its start position stops below transactions still running), so the message's own
    // preview can come first: wait for the delete's.
    let preview = format!("preview-{c}");
    for s in [&mut a, &mut b] {
        s.expect(LIVE, "the emptied preview", |f| {
            f.event == "replace"
                && f.target().as_deref() == Some(preview.as_str())
                && f.content().contains("No messages yet")
        })
        .await;
    }
    let page = bob.get("/conversations").await;
    assert!(
        page.text(&format!("#preview-{c}"))
            .unwrap_or_default()
            .contains("No messages yet")
    );
}

/// A muted conversation keeps its own unread count but stays out of the header's "Chats N" (and
/// so the tab's title and icon): on a fresh load, after a post, a read, a delete, a leave, and
/// live when muting or unmuting.
#[tokio::test]
async fn a_muted_conversation_stays_out_of_the_header_badge() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    befriend(&ann, &carl).await;
    let c = ann.direct_with(&bob).await;
    let g = ann.group("Loud", &[&bob, &carl]).await;
    bob.say(c, "one").await;
    let loud = bob.say(g, "two").await;
    bob.say(g, "three").await;
    let badge = |p: &crate::helpers::Resp| p.text("#badge-unread").unwrap_or_default();
    assert_eq!(badge(&ann.get("/friends").await), "3");

    let mut a = ann.stream().await;
    let r = ann
        .post(
            &format!("/conversations/{g}/notifications"),
            &[("level", "mute")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let f = a.expect_target("replace", "badge-unread").await;
    assert!(f.content().contains(">1<"), "{}", f.content());
    let page = ann.get("/friends").await;
    assert_eq!(badge(&page), "1");
    // The row still counts.
    let list = ann.get("/conversations").await;
    assert_eq!(list.text(&format!("#unread-{g}")).as_deref(), Some("2"));
    assert_eq!(badge(&list), "1");

    // Her own post counts what is unread elsewhere, the muted group left out.
    ann.say(c, "hi").await;
    let f = a.expect_target("replace", "badge-unread").await;
    assert!(f.content().contains(">0<"), "{}", f.content());
    // A post with a file takes the other path to the database.
    bob.say(c, "again").await;
    let r =
        crate::attachments::upload(&ann, c, "a file", &[("a.txt", b"hi".to_vec())], false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let f = a
        .expect(LIVE, "her badge after the file", |f| {
            f.target().as_deref() == Some("badge-unread") && f.event == "replace"
        })
        .await;
    assert!(f.content().contains(">0<"), "{}", f.content());

    // A delete in the muted group lowers its row, not her header.
    let mut k = carl.stream().await;
    let r = bob
        .post(&format!("/conversations/{g}/messages/{loud}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    a.expect(LIVE, "the row's count drops", |f| {
        f.target().as_deref() == Some(format!("unread-{g}").as_str())
            && f.data.contains("data-delta=\"-1\"")
    })
    .await;
    a.assert_none(Duration::from_millis(300), "a header drop", |f| {
        f.target().as_deref() == Some("badge-unread")
    })
    .await;
    // Carl did not mute it: his header drops, live and on a fresh load.
    k.expect(LIVE, "carl's header drops", |f| {
        f.target().as_deref() == Some("badge-unread") && f.data.contains("data-delta=\"-1\"")
    })
    .await;
    let carl_page = carl.get("/friends").await;
    assert_eq!(badge(&carl_page), "1");

    // Unmuting puts the group back.
    ann.post(
        &format!("/conversations/{g}/notifications"),
        &[("level", "all")],
    )
    .await;
    let f = a.expect_target("replace", "badge-unread").await;
    assert!(f.content().contains(">1<"), "{}", f.content());
    assert_eq!(badge(&ann.get("/friends").await), "1");

    // Muted again, leaving it takes nothing from the header.
    ann.post(
        &format!("/conversations/{g}/notifications"),
        &[("level", "mute")],
    )
    .await;
    let f = a.expect_target("replace", "badge-unread").await;
    assert!(f.content().contains(">0<"), "{}", f.content());
    let r = ann.post(&format!("/conversations/{g}/leave"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // The leave's own frames first, so the check below covers them. Her header may be set
    // again (the note "ann left" is hers), never lowered.
    a.expect_target("remove", &format!("conversation-{g}"))
        .await;
    for f in a.drain(Duration::from_millis(300)).await {
        if f.target().as_deref() == Some("badge-unread") {
            assert!(!f.data.contains("data-delta"), "a header drop: {f:?}");
            assert!(f.content().contains(">0<"), "{}", f.content());
        }
    }
    assert_eq!(badge(&ann.get("/friends").await), "0");
}

/// The `@` count of my row in conversation `g`, as a fresh load of the list shows it.
async fn row_mentions(c: &Client, g: i64) -> Option<String> {
    c.get("/conversations")
        .await
        .attr(&format!("#unread-{g}"), "data-mentions")
}

fn mentions_delta(g: i64, delta: &str) -> impl Fn(&Frame) -> bool {
    let target = format!("unread-{g}");
    let attr = format!("data-delta-mentions=\"{delta}\"");
    move |f: &Frame| f.target().as_deref() == Some(target.as_str()) && f.data.contains(&attr)
}

#[tokio::test]
async fn the_rows_at_follows_deletes_and_edits_of_unread_messages_that_name_me() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    crate::helpers::befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob, &carl]).await;
    let mut b = bob.stream().await;
    let mut c = carl.stream().await;
    let mut a = ann.stream().await;
    // Deleted while bob has it unread: his `@` goes with it.
    let m = ann.say(g, "hey @bob look").await;
    assert_eq!(row_mentions(&bob, g).await.as_deref(), Some("1"));
    let r = ann
        .post(&format!("/conversations/{g}/messages/{m}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    b.expect(LIVE, "bob's @ drops", mentions_delta(g, "-1"))
        .await;
    assert_eq!(row_mentions(&bob, g).await.as_deref(), Some("0"));
    // Edited to name him, then not: his `@` rises and drops.
    let m = ann.say(g, "ping").await;
    let edit = |body: &'static str| {
        let path = format!("/conversations/{g}/messages/{m}");
        let ann = &ann;
        async move { ann.post(&path, &[("body", body)]).await.status }
    };
    assert_eq!(edit("ping @bob").await, StatusCode::SEE_OTHER);
    b.expect(LIVE, "bob's @ rises", mentions_delta(g, "1"))
        .await;
    assert_eq!(row_mentions(&bob, g).await.as_deref(), Some("1"));
    assert_eq!(edit("ping again @bob").await, StatusCode::SEE_OTHER);
    assert_eq!(edit("ping").await, StatusCode::SEE_OTHER);
    b.expect(LIVE, "bob's @ drops", mentions_delta(g, "-1"))
        .await;
    assert_eq!(row_mentions(&bob, g).await.as_deref(), Some("0"));
    // Once he has read it, naming him changes no count.
    bob.post(
        &format!("/conversations/{g}/read"),
        &[("message_id", &m.to_string())],
    )
    .await;
    assert_eq!(edit("ping @bob").await, StatusCode::SEE_OTHER);
    b.expect(LIVE, "the edit", |f| {
        f.target().as_deref() == Some(format!("message-{m}").as_str())
            && f.content().contains("ping")
            && f.content().contains("data-mention")
    })
    .await;
    b.assert_none(Duration::from_millis(300), "an @ change", |f| {
        f.data.contains("data-delta-mentions")
    })
    .await;
    assert_eq!(row_mentions(&bob, g).await.as_deref(), Some("0"));
    // Nobody else's `@` moved: carl was never named, ann wrote it.
    for (who, s) in [("carl", &mut c), ("ann", &mut a)] {
        s.assert_none(Duration::from_millis(200), who, |f| {
            f.data.contains("data-delta-mentions")
        })
        .await;
    }
    assert_eq!(row_mentions(&carl, g).await.as_deref(), Some("0"));
}

#[tokio::test]
async fn a_member_who_leaves_leaves_no_read_marker_behind() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    crate::helpers::befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob, &carl]).await;
    let m = bob.say(g, "hello").await;
    carl.post(
        &format!("/conversations/{g}/read"),
        &[("message_id", &m.to_string())],
    )
    .await;
    let marker = format!("reader-{g}-{}", carl.id);
    let page = bob.get(&format!("/conversations/{g}")).await;
    assert!(page.has(&format!("#{marker}")), "carl's receipt shows");
    let mut b = bob.stream().await;
    let r = carl.post(&format!("/conversations/{g}/leave"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mut frames = Vec::new();
    loop {
        let f = b
            .next(LIVE)
            .await
            .expect("the note of carl's leaving within LIVE");
        let note = f.event == "append" && f.content().contains("left the group");
        frames.push(f);
        if note {
            break;
        }
    }
    frames.extend(b.drain(Duration::from_millis(300)).await);
    // His receipt leaves bob's page, and nothing puts it back.
    let last = frames
        .iter()
        .rev()
        .find(|f| f.content().contains(&marker) || f.target().as_deref() == Some(marker.as_str()));
    assert!(
        last.is_some_and(|f| f.event == "remove"),
        "carl's receipt is removed last: {frames:?}"
    );
    let page = bob.get(&format!("/conversations/{g}")).await;
    assert!(
        !page.has(&format!("#{marker}")),
        "and a fresh load has none"
    );
}
