//! Message links (`GET /conversations/{id}/messages/{message_id}`): the conversation opened at a
//! message, highlighted, with context both ways and paging from there; 404 for anyone who may
//! not read it; live messages only ever land on the page that shows the newest ones.

use reqwest::StatusCode;

use crate::helpers::{Client, LIVE, Resp, TestApp, befriend};

/// The message ids of a page, in order.
fn shown(r: &Resp) -> Vec<i64> {
    let sel = scraper::Selector::parse(".messages article.message").unwrap();
    r.html()
        .select(&sel)
        .filter_map(|e| e.value().id())
        .filter_map(|id| id.strip_prefix("message-"))
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// `n` messages in a new direct conversation of ann and bob; their ids, oldest first.
async fn history(app: &TestApp, n: usize) -> (Client, Client, i64, Vec<i64>) {
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let who = if i % 3 == 0 { &bob } else { &ann };
        ids.push(who.say(c, &format!("message {i}")).await);
    }
    (ann, bob, c, ids)
}

#[tokio::test]
async fn a_message_link_opens_the_conversation_at_it_highlighted_with_context() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_ann, bob, c, ids) = history(&app, 80).await;
    let m = ids[40];

    // Act
    let r = bob.get(&format!("/conversations/{c}/messages/{m}")).await;

    // Assert
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.has(&format!("#message-{m}.highlight")));
    assert_eq!(r.count(".message.highlight"), 1);
    assert_eq!(shown(&r), ids[15..=65].to_vec(), "25 on each side");
    assert!(r.has(&format!("#messages-{c}-at-{m}")));
    assert!(!r.has(&format!("#messages-{c}")), "not the live list");
    assert!(!r.has("[data-live]"));
    assert!(!r.has("form.composer"));
    assert_eq!(
        r.attr("a[rel=prev]", "href"),
        Some(format!("/conversations/{c}?before={}", ids[15]))
    );
    assert_eq!(
        r.attr("a[rel=next]", "href"),
        Some(format!("/conversations/{c}?after={}", ids[65]))
    );
    // Every message links to itself (its time).
    assert_eq!(
        r.attr(&format!("#message-{m} a.permalink"), "href"),
        Some(format!("/conversations/{c}/messages/{m}#message-{m}"))
    );
    // A link does not read anything: bob's marker stays where it was.
    let before = bob.get("/conversations").await;
    assert_ne!(
        before
            .attr(&format!("#unread-{c}"), "data-count")
            .as_deref(),
        Some("0")
    );
}

#[tokio::test]
async fn a_message_link_is_404_for_strangers_and_wrong_or_unknown_messages() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    befriend(&ann, &carl).await;
    let d = ann.direct_with(&bob).await;
    let g = ann.group("Trip", &[&bob, &carl]).await;
    let m = ann.say(d, "hi bob").await;
    let gm = ann.say(g, "hi all").await;
    assert_eq!(
        bob.get(&format!("/conversations/{d}/messages/{m}"))
            .await
            .status,
        StatusCode::OK
    );
    for (who, url) in [
        (&carl, format!("/conversations/{d}/messages/{m}")),
        (&bob, format!("/conversations/{d}/messages/{gm}")),
        (&bob, format!("/conversations/{g}/messages/{m}")),
        (&bob, format!("/conversations/{d}/messages/999999")),
        (&bob, format!("/conversations/{d}/messages/abc")),
        (&bob, format!("/conversations/999999/messages/{m}")),
    ] {
        assert_eq!(who.get(&url).await.status, StatusCode::NOT_FOUND, "{url}");
    }
    // A removed member loses the link with the rest.
    let url = format!("/conversations/{g}/messages/{gm}");
    assert_eq!(carl.get(&url).await.status, StatusCode::OK);
    ann.post(
        &format!("/conversations/{g}/members/{}/remove", carl.id),
        &[],
    )
    .await;
    assert_eq!(carl.get(&url).await.status, StatusCode::NOT_FOUND);
    // Anonymous: log in first.
    let r = app.client().get(&url).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn paging_works_both_ways_from_a_message_link() {
    let app = TestApp::spawn().await;
    let (_ann, bob, c, ids) = history(&app, 130).await;
    let start = bob
        .get(&format!("/conversations/{c}/messages/{}", ids[60]))
        .await;
    // Back: older pages, each linking forward again.
    let mut seen = shown(&start);
    let mut page = start.clone_resp();
    while let Some(prev) = page.attr("a[rel=prev]", "href") {
        page = bob.get(&prev).await;
        assert_eq!(page.status, StatusCode::OK);
        let mut older = shown(&page);
        assert!(page.has("a[rel=next]"), "an older page links to newer ones");
        older.extend(seen);
        seen = older;
    }
    assert_eq!(seen[..=60].to_vec(), ids[..=60].to_vec());
    // Forward from the link: newer pages until the newest, which is the live list.
    let mut page = start;
    let mut seen = shown(&page);
    while let Some(next) = page.attr("a[rel=next]", "href") {
        page = bob.get(&next).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.has("a[rel=prev]"), "a newer page links to older ones");
        seen.extend(shown(&page));
    }
    assert_eq!(seen, ids[35..].to_vec());
    assert!(page.has(&format!("#messages-{c}[data-live]")));
    assert!(page.has("form.composer"));
    // From an older page forward too.
    let older = bob
        .get(&format!("/conversations/{c}?before={}", ids[10]))
        .await;
    let next = older.attr("a[rel=next]", "href").unwrap();
    assert_eq!(next, format!("/conversations/{c}?after={}", ids[10] - 1));
    let r = bob.get(&next).await;
    assert_eq!(shown(&r).first(), Some(&ids[10]));
    assert!(r.has(&format!("#messages-{c}-after-{}", ids[10] - 1)));
    assert_eq!(
        r.attr("a[rel=prev]", "href"),
        Some(format!("/conversations/{c}?before={}", ids[10]))
    );
    assert!(!r.has("[data-live]"));
    // A cursor that is not a number is no such page.
    let bad = bob.get(&format!("/conversations/{c}?after=x")).await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn live_messages_skip_a_link_far_back_and_join_one_at_the_newest() {
    let app = TestApp::spawn().await;
    let (ann, bob, c, ids) = history(&app, 60).await;
    let mut b = bob.stream().await;
    let far = bob
        .get(&format!("/conversations/{c}/messages/{}", ids[5]))
        .await;
    let near = bob
        .get(&format!("/conversations/{c}/messages/{}", ids[50]))
        .await;
    let m = ann.say(c, "a new one").await;
    let f = b
        .expect(LIVE, "the new message", |f| {
            f.event == "append" && f.content().contains(&format!("message-{m}"))
        })
        .await;
    // The frame goes to the newest page's list: the far page has no element by that id, the
    // near one (which ends with the newest message) is that list.
    let target = f.target().unwrap();
    assert_eq!(target, format!("messages-{c}"));
    assert!(!far.has(&format!("#{target}")));
    assert!(near.has(&format!("#{target}[data-live]")));
    let fresh = bob
        .get(&format!("/conversations/{c}/messages/{}", ids[50]))
        .await;
    assert_eq!(shown(&fresh).last(), Some(&m), "a fresh load shows it too");
    let fresh_far = bob
        .get(&format!("/conversations/{c}/messages/{}", ids[5]))
        .await;
    assert!(!shown(&fresh_far).contains(&m));
    // The highlighted message's frames still reach it (an edit replaces it in place).
    ann.post(
        &format!("/conversations/{c}/messages/{}", ids[5]),
        &[("body", "edited far back")],
    )
    .await;
    b.expect_target("replace", &format!("message-{}", ids[5]))
        .await;
}

#[tokio::test]
async fn a_reply_quote_links_to_the_original() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let m = ann.say(c, "the original").await;
    let reply = bob
        .post_fetch(
            &format!("/conversations/{c}/messages"),
            &[("body", "an answer"), ("reply_to", &m.to_string())],
        )
        .await;
    assert_eq!(
        reply.attr("a.quote", "href"),
        Some(format!("/conversations/{c}/messages/{m}#message-{m}"))
    );
}

trait CloneResp {
    fn clone_resp(&self) -> Resp;
}

impl CloneResp for Resp {
    fn clone_resp(&self) -> Resp {
        Resp {
            status: self.status,
            location: self.location.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }
}
