//! Nobody can pass for someone else: display names that are, or look like, another user's name
//! are refused, and the @username shows wherever a person is named.

use reqwest::StatusCode;

use crate::helpers::*;

async fn display_name(c: &Client) -> Option<String> {
    c.get("/settings").await.attr("#display_name", "value")
}

#[tokio::test]
async fn exact_and_look_alike_display_names_of_others_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let _alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let r = bob
        .post("/settings", &[("display_name", "Bobby Tables")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mallory = app.user("mallory").await;
    for fake in [
        "alice",             // the username itself
        "Alice",             // case
        "ALICE",             // case
        "\u{410}lice",       // Cyrillic capital A
        "\u{430}l\u{456}ce", // Cyrillic a and i
        "a1ice",             // digit one for l
        "AIice",             // capital I for l
        "ａｌｉｃｅ",        // full-width
        "B0bby  Tables",     // another user's display name, zero for o
        "bobby tables",
    ] {
        // Act
        let r = mallory.post("/settings", &[("display_name", fake)]).await;
        // Assert
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{fake}");
        assert!(
            r.text("#display_name-error")
                .unwrap()
                .contains("looks like it"),
            "{fake}"
        );
        assert_eq!(display_name(&mallory).await.as_deref(), Some(""), "{fake}");
    }
    // Invisible and direction-changing characters are refused outright.
    for fake in ["al\u{200B}ice", "\u{202E}ecila", "alice\u{2066}"] {
        let r = mallory.post("/settings", &[("display_name", fake)]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{fake:?}");
        assert!(
            r.text("#display_name-error")
                .unwrap()
                .contains("invisible or control")
        );
    }
    // My own username, in any case, and an ordinary name are fine; the name is stored in NFC.
    for ok in ["Mallory", "Zoe\u{308} M."] {
        let r = mallory.post("/settings", &[("display_name", ok)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{ok}");
    }
    assert_eq!(display_name(&mallory).await.as_deref(), Some("Zo\u{eb} M."));
}

#[tokio::test]
async fn a_username_that_looks_like_an_existing_name_cannot_be_registered() {
    let app = TestApp::spawn().await;
    let bob = app.user("alice").await;
    bob.post("/settings", &[("display_name", "Chief")]).await;
    for fake in ["a1ice", "chief", "alice_", "a_lice", "chi_ef"] {
        let r = app
            .client()
            .post(
                "/register",
                &[("username", fake), ("password", &password_for(fake))],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{fake}");
        assert!(r.has("#username-error"));
    }
}

#[tokio::test]
async fn group_titles_refuse_direction_overrides() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let r = ann
        .post("/conversations", &[("title", "Team \u{202E}txt.exe")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.has("#title-error"));
}

#[tokio::test]
async fn the_username_shows_next_to_every_display_name() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    ann.post("/settings", &[("display_name", "Annie")]).await;
    bob.post("/settings", &[("display_name", "Robert")]).await;
    let carl = app.user("carl").await;
    carl.post("/friends/requests", &[("username", "bob")]).await;
    let direct = ann.direct_with(&bob).await;
    let group = ann.group("Team", &[&bob]).await;
    let mut bob_stream = bob.stream().await;
    // Act
    ann.say(direct, "hello").await;
    ann.say(group, "hi team").await;
    // Assert: the live fragment names the author with the handle …
    let f = bob_stream
        .expect_target("append", &format!("messages-{direct}"))
        .await;
    assert!(
        f.data.contains(r#"<span class="handle">@ann</span>"#),
        "{}",
        f.data
    );
    // … and so do the pages: message authors, the direct conversation's header and list row,
    // the member list, the friend request.
    let page = bob.get(&format!("/conversations/{direct}")).await;
    assert_eq!(
        page.text(".message .author .name").as_deref(),
        Some("Annie")
    );
    assert_eq!(page.text(".message .handle").as_deref(), Some("@ann"));
    assert_eq!(
        page.text("#conversation-title .handle").as_deref(),
        Some("@ann")
    );
    assert_eq!(
        page.text(&format!("#conversation-{direct} .conv-title .handle"))
            .as_deref(),
        Some("@ann")
    );
    let page = bob.get(&format!("/conversations/{group}")).await;
    assert!(
        page.text(&format!("#member-{group}-{}", ann.id))
            .unwrap()
            .contains("@ann")
    );
    let friends = bob.get("/friends").await;
    assert!(
        friends
            .text("#incoming-requests")
            .unwrap()
            .contains("@carl")
    );
}
