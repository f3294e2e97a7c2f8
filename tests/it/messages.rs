//! Messages: send, validate, de-duplicate, page, read markers, live delivery, escaping.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn a_message_reaches_every_member_live_and_nobody_else() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let carl = app.user("carl").await;
    let eve = app.user("eve").await;
    befriend(&ann, &bob).await;
    befriend(&ann, &carl).await;
    befriend(&ann, &eve).await;
    let id = ann.group("G", &[&bob, &carl]).await;
    let mut streams = vec![ann.stream().await, bob.stream().await, carl.stream().await];
    let mut e = eve.stream().await;
    let r = ann
        .post(
            &format!("/conversations/{id}/messages"),
            &[("body", "hello all")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.location,
        Some(format!("/conversations/{id}#composer-{id}"))
    );
    for s in &mut streams {
        let f = s.expect_target("append", &format!("messages-{id}")).await;
        assert!(f.data.contains("hello all"));
        assert!(f.data.contains(&format!("data-author=\"{}\"", ann.id)));
        assert!(f.data.contains(&format!("data-conversation=\"{id}\"")));
        s.expect_target("replace", &format!("preview-{id}")).await;
    }
    // (Her friendship with ann, just made, may still arrive on PostgreSQL: the Hub hears of
    // commits a moment later, and a stream starts where the Hub is.)
    e.assert_none(Duration::from_millis(300), "anything but presence", |f| {
        let befriended = f.target().is_some_and(|t| {
            t.starts_with("request-")
                || [
                    "badge-requests",
                    "friend-list",
                    "group-friends",
                    "conversation-list",
                ]
                .contains(&t.as_str())
        });
        f.event != "presence" && !befriended && !about_my_account(f)
    })
    .await;
    let page = bob.get(&format!("/conversations/{id}")).await;
    assert_eq!(page.count(&format!("#messages-{id} article.message")), 1);
    assert_eq!(page.text(".message .author .name").as_deref(), Some("ann"));
}

#[tokio::test]
async fn bad_messages_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let id = ann.direct_with(&bob).await;
    let path = format!("/conversations/{id}/messages");
    // Zero-width spaces and a Hangul filler show as nothing: an empty bubble, before.
    for body in [
        "",
        "   \n  ",
        "\u{200B}\u{200B}",
        " \u{3164} ",
        &"x".repeat(4001),
    ] {
        let r = ann.post(&path, &[("body", body)]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!r.text(&format!("#composer-error-{id}")).unwrap().is_empty());
        let r = ann.post_fetch(&path, &[("body", body)]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!r.body.is_empty());
    }
    let r = ann
        .post(&path, &[("body", "ok"), ("client_id", "bad id!")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let long_draft = "y".repeat(4001);
    let r = ann.post(&path, &[("body", &long_draft)]).await;
    assert_eq!(
        r.text(&format!("#body-{id}")).as_deref(),
        Some(long_draft.as_str()),
        "draft kept"
    );
    assert_eq!(
        bob.get(&format!("/conversations/{id}"))
            .await
            .count("article.message"),
        0
    );
    // 4000 characters is fine; line breaks are kept.
    let ok = ann
        .say(id, &format!("line one\nline two {}", "z".repeat(3980)))
        .await;
    let page = bob.get(&format!("/conversations/{id}")).await;
    assert!(
        page.text(&format!("#message-{ok} .body"))
            .unwrap()
            .starts_with("line one\nline two")
    );
}

#[tokio::test]
async fn a_retried_send_with_the_same_client_id_stores_one_message() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let id = ann.direct_with(&bob).await;
    let path = format!("/conversations/{id}/messages");
    let form = [("body", "only once"), ("client_id", "abc-123")];
    let (a, b) = tokio::join!(ann.post_fetch(&path, &form), ann.post_fetch(&path, &form));
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(a.attr("article", "id"), b.attr("article", "id"));
    let r = ann.post(&path, &form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        bob.get(&format!("/conversations/{id}"))
            .await
            .count("article.message"),
        1
    );
    // Bob may use the same client id for his own message.
    bob.post(&path, &[("body", "mine"), ("client_id", "abc-123")])
        .await;
    assert_eq!(
        bob.get(&format!("/conversations/{id}"))
            .await
            .count("article.message"),
        2
    );
}

#[tokio::test]
async fn pages_show_fifty_messages_and_link_to_older_ones() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let id = ann.direct_with(&bob).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(ann.say(id, &format!("m{i}")).await);
    }
    // Ann has read all she wrote: her newest page is the last fifty.
    let page = ann.get(&format!("/conversations/{id}")).await;
    assert_eq!(page.count("article.message"), 50);
    let sel = scraper::Selector::parse("article.message").unwrap();
    let shown: Vec<String> = page
        .html()
        .select(&sel)
        .map(|e| e.value().id().unwrap().to_owned())
        .collect();
    assert_eq!(
        shown.first().unwrap(),
        &format!("message-{}", ids[10]),
        "oldest at the top"
    );
    assert_eq!(shown.last().unwrap(), &format!("message-{}", ids[59]));
    let older = page.attr(".older a[rel=prev]", "href").unwrap();
    assert_eq!(older, format!("/conversations/{id}?before={}", ids[10]));
    let page2 = bob.get(&older).await;
    assert_eq!(page2.count("article.message"), 10);
    assert!(!page2.has(".older a[rel=prev]"));
    assert!(!page2.has("form.composer"));
    assert_eq!(
        bob.get(&format!("/conversations/{id}?before=abc"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn read_markers_move_forward_show_as_receipts_and_drive_unread_counts() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let carl = app.user("carl").await;
    befriend(&ann, &bob).await;
    befriend(&ann, &carl).await;
    let id = ann.group("G", &[&bob, &carl]).await;
    let m1 = ann.say(id, "one").await;
    let m2 = ann.say(id, "two").await;
    let m3 = ann.say(id, "three").await;
    let unread = |c: &Client| {
        let c = c.clone();
        async move {
            c.get("/conversations")
                .await
                .text(&format!("#conversation-{id} .unread"))
                .unwrap()
        }
    };
    assert_eq!(unread(&bob).await, "3");
    let mut a = ann.stream().await;
    let r = bob
        .post_fetch(
            &format!("/conversations/{id}/read"),
            &[("message_id", &m2.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Bob's receipt (a frame about ann's own marker may come first if the stream started
    // before her last posts were read from the log).
    let bobs = format!("data-reader=\"{}\"", bob.id);
    let target = format!("receipts-{m2}");
    a.expect(LIVE, "bob's receipt under m2", |f| {
        f.event == "append" && f.target().as_deref() == Some(&target) && f.data.contains(&bobs)
    })
    .await;
    assert_eq!(unread(&bob).await, "1");
    // Backwards does nothing.
    let r = bob
        .post(
            &format!("/conversations/{id}/read"),
            &[("message_id", &m1.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(unread(&bob).await, "1");
    a.assert_none(Duration::from_millis(200), "a receipt", |f| {
        f.target().as_deref() == Some(&format!("receipts-{m1}"))
    })
    .await;
    // Bad input.
    for bad in ["", "x", "0", "99999999"] {
        let r = bob
            .post(&format!("/conversations/{id}/read"), &[("message_id", bad)])
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    // Receipts on the page: Bob under m2, Carl nowhere yet.
    let page = ann.get(&format!("/conversations/{id}")).await;
    assert!(page.has(&format!("#receipts-{m2} #reader-{id}-{}", bob.id)));
    assert!(!page.has(&format!("#reader-{id}-{}", carl.id)));
    // Opening the conversation reads it.
    let mut b = bob.stream().await;
    carl.get(&format!("/conversations/{id}")).await;
    let f = b.expect_target("append", &format!("receipts-{m3}")).await;
    assert!(f.data.contains(&format!("data-reader=\"{}\"", carl.id)));
    assert_eq!(unread(&carl).await, "0");
    // Writing moves my own marker too.
    let m4 = carl.say(id, "four").await;
    let page = ann.get(&format!("/conversations/{id}")).await;
    assert!(page.has(&format!("#message-{m4}")));
    assert_eq!(unread(&carl).await, "0");
    assert_eq!(unread(&bob).await, "2");
}

#[tokio::test]
async fn script_and_quotes_arrive_escaped_in_page_and_fragment() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let id = ann.direct_with(&bob).await;
    let mut b = bob.stream().await;
    let evil = "<script>alert(1)</script> \"'& <img src=x onerror=alert(2)> https://example.org/?a=1&b=\"2\" javascript:alert(3)";
    let mid = ann.say(id, evil).await;
    let f = b.expect_target("append", &format!("messages-{id}")).await;
    assert!(!f.data.contains("<script>"));
    assert!(!f.data.contains("<img"));
    let frag = scraper::Html::parse_fragment(&f.data);
    let body = scraper::Selector::parse(".body").unwrap();
    let text: String = frag.select(&body).next().unwrap().text().collect();
    assert_eq!(text, evil, "the fragment shows the text as typed");
    let page = bob.get(&format!("/conversations/{id}")).await;
    assert!(!page.body.contains("<script>alert"));
    assert_eq!(
        page.text(&format!("#message-{mid} .body")).as_deref(),
        Some(evil)
    );
    let links: Vec<String> = {
        let sel = scraper::Selector::parse(&format!("#message-{mid} .body a")).unwrap();
        page.html()
            .select(&sel)
            .map(|a| a.value().attr("href").unwrap().to_owned())
            .collect()
    };
    // A quote ends a link: it cannot break out of the attribute, and the rest stays text.
    assert_eq!(links, vec!["https://example.org/?a=1&b=".to_owned()]);
}

#[tokio::test]
async fn a_message_posted_with_fetch_returns_its_fragment() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let id = ann.direct_with(&bob).await;
    let r = ann
        .post_fetch(
            &format!("/conversations/{id}/messages"),
            &[("body", "hi"), ("client_id", "c1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.has("article.message"));
}
