//! Web Push and the installable app: a test push service on 127.0.0.1 receives the pushes, and
//! the test decrypts them with the device keys it made, as a browser would.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode as AxStatus};
use base64ct::{Base64UrlUnpadded, Encoding};
use reqwest::StatusCode;
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256PublicKey};
use web_push_native::jwt_simple::claims::NoCustomClaims;
use web_push_native::p256::SecretKey;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;

use crate::helpers::*;

/// How long a push may take to arrive (the sender polls the log twice a second).
const PUSH_WAIT: Duration = Duration::from_secs(6);

/// One request the push service received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A push service: records every request; answers with the status set for its path (201 else).
#[derive(Clone)]
struct PushService {
    base: String,
    got: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<Vec<(String, u16)>>>,
}

impl PushService {
    async fn start() -> PushService {
        let got = Arc::new(Mutex::new(Vec::new()));
        let answers: Arc<Mutex<Vec<(String, u16)>>> = Arc::new(Mutex::new(Vec::new()));
        let (g, a) = (got.clone(), answers.clone());
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let (g, a) = (g.clone(), a.clone());
                async move {
                    let path = uri.path().to_owned();
                    g.lock().unwrap().push(Received {
                        path: path.clone(),
                        headers,
                        body: body.to_vec(),
                    });
                    let code = a
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|(p, _)| *p == path)
                        .map_or(201, |(_, c)| *c);
                    AxStatus::from_u16(code).unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PushService {
            base: format!("http://127.0.0.1:{}", addr.port()),
            got,
            answers,
        }
    }

    fn answer(&self, path: &str, code: u16) {
        self.answers.lock().unwrap().push((path.to_owned(), code));
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits for the `n`th request to `path`.
    async fn wait_for(&self, path: &str, n: usize) -> Received {
        let deadline = tokio::time::Instant::now() + PUSH_WAIT;
        loop {
            let got = self.received(path);
            if got.len() >= n {
                return got[n - 1].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no push #{n} to {path} within {PUSH_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A browser's push subscription: its key pair and auth secret, as `pushManager.subscribe` makes.
struct Device {
    path: String,
    endpoint: String,
    secret: SecretKey,
    auth: [u8; 16],
}

impl Device {
    fn new(service: &PushService, name: &str) -> Device {
        let secret = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(k) = SecretKey::from_slice(&bytes) {
                break k;
            }
        };
        let path = format!("/push/{name}");
        Device {
            endpoint: format!("{}{path}", service.base),
            path,
            secret,
            auth: rand::random(),
        }
    }

    fn p256dh(&self) -> String {
        let point = self.secret.public_key().to_encoded_point(false);
        Base64UrlUnpadded::encode_string(point.as_bytes())
    }

    fn auth(&self) -> String {
        Base64UrlUnpadded::encode_string(&self.auth)
    }

    /// Turns push on for this device as `who` (as live.js posts it).
    async fn subscribe(&self, who: &Client) -> Resp {
        who.post_fetch(
            "/push/subscriptions",
            &[
                ("endpoint", &self.endpoint),
                ("p256dh", &self.p256dh()),
                ("auth", &self.auth()),
            ],
        )
        .await
    }

    /// Decrypts a push as the browser would.
    fn open(&self, r: &Received) -> serde_json::Value {
        let auth = web_push_native::Auth::clone_from_slice(&self.auth);
        let plain = web_push_native::decrypt(r.body.clone(), &self.secret, &auth)
            .expect("the payload decrypts with the device's keys");
        serde_json::from_slice(&plain).expect("the payload is JSON")
    }
}

async fn app() -> TestApp {
    TestApp::spawn_with(|c| c.push_allow_insecure = true).await
}

/// Device ids on my settings page.
async fn devices(who: &Client) -> Vec<String> {
    let page = who.get("/settings").await;
    let sel = scraper::Selector::parse("#push-devices li.device").unwrap();
    page.html()
        .select(&sel)
        .filter_map(|e| e.value().id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_push_reaches_a_device_without_a_stream_encrypted_and_signed() {
    // Arrange
    let app = app().await;
    let service = PushService::start().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let phone = Device::new(&service, "bob-phone");
    assert_eq!(phone.subscribe(&bob).await.status, StatusCode::NO_CONTENT);
    let vapid_key = bob
        .get("/settings")
        .await
        .attr("#push-settings", "data-vapid-key")
        .expect("the page carries the VAPID key");

    // Act
    let m = ann.say(c, "see you at *eight*").await;

    // Assert
    let got = service.wait_for(&phone.path, 1).await;
    assert_eq!(
        got.headers.get("content-encoding").unwrap(),
        "aes128gcm",
        "RFC 8291 encoding"
    );
    assert!(got.headers.get("ttl").is_some());
    let authz = got.headers.get("authorization").unwrap().to_str().unwrap();
    let (t, k) = authz
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .expect("a VAPID authorization header (RFC 8292)");
    assert_eq!(k, vapid_key, "signed with the key browsers were given");
    let public = ES256PublicKey::from_bytes(&Base64UrlUnpadded::decode_vec(k).unwrap()).unwrap();
    let claims = public
        .verify_token::<NoCustomClaims>(t, None)
        .expect("the JWT's signature verifies");
    // The push service's origin (the crate leaves the port out: real services use 443).
    let aud = claims.audiences.map(|a| a.into_set());
    assert_eq!(
        aud,
        Some(std::collections::HashSet::from([
            "http://127.0.0.1".to_owned()
        ]))
    );
    assert!(claims.subject.is_some(), "a contact");
    let payload = phone.open(&got);
    assert_eq!(payload["title"], "ann");
    assert_eq!(payload["body"], "see you at eight", "plain text");
    assert_eq!(
        payload["url"],
        format!("/conversations/{c}#message-{m}").as_str()
    );
    assert_eq!(payload["tag"], format!("conversation-{c}").as_str());
    // The author's own devices get nothing.
    assert!(service.received("/push/ann").is_empty());
}

#[tokio::test]
async fn a_user_with_an_open_stream_gets_no_push() {
    // Arrange
    let app = app().await;
    let service = PushService::start().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob, &carl]).await;
    let bobs = Device::new(&service, "bob");
    let carls = Device::new(&service, "carl");
    bobs.subscribe(&bob).await;
    carls.subscribe(&carl).await;
    let _bob_is_here = bob.stream().await;

    // Act
    ann.say(g, "who is coming?").await;

    // Assert: carl (no stream) is pushed; bob, whose stream is open, is not.
    let got = service.wait_for(&carls.path, 1).await;
    let payload = carls.open(&got);
    assert_eq!(payload["title"], "Trip");
    assert_eq!(payload["body"], "ann: who is coming?");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(service.received(&bobs.path).is_empty(), "bob has a stream");
}

#[tokio::test]
async fn muted_and_mentions_only_conversations_are_respected() {
    // Arrange
    let app = app().await;
    let service = PushService::start().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let dan = app.user("dan").await;
    befriend(&ann, &carl).await;
    befriend(&ann, &dan).await;
    let g = ann.group("Trip", &[&bob, &carl, &dan]).await;
    let (bobs, carls, dans) = (
        Device::new(&service, "bob"),
        Device::new(&service, "carl"),
        Device::new(&service, "dan"),
    );
    bobs.subscribe(&bob).await;
    carls.subscribe(&carl).await;
    dans.subscribe(&dan).await;
    let path = format!("/conversations/{g}/notifications");
    assert_eq!(
        bob.post(&path, &[("level", "mute")]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        carl.post(&path, &[("level", "mentions")]).await.status,
        StatusCode::SEE_OTHER
    );

    // Act 1: no one is named.
    ann.say(g, "tickets are booked").await;
    // Assert: only dan (all messages).
    service.wait_for(&dans.path, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(service.received(&bobs.path).is_empty(), "bob muted it");
    assert!(
        service.received(&carls.path).is_empty(),
        "carl only wants mentions"
    );

    // Act 2: carl and bob are named.
    ann.say(g, "@carl @bob bring snacks").await;
    // Assert: carl now; bob still not (mute wins over a mention).
    let got = service.wait_for(&carls.path, 1).await;
    assert_eq!(carls.open(&got)["body"], "ann: @carl @bob bring snacks");
    service.wait_for(&dans.path, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(service.received(&bobs.path).is_empty(), "bob muted it");
}

#[tokio::test]
async fn a_subscription_the_push_service_calls_gone_is_removed() {
    // Arrange
    let app = app().await;
    let service = PushService::start().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let old = Device::new(&service, "old-phone");
    let new = Device::new(&service, "new-phone");
    old.subscribe(&bob).await;
    new.subscribe(&bob).await;
    service.answer(&old.path, 410);
    assert_eq!(devices(&bob).await.len(), 2);

    // Act
    ann.say(c, "ping").await;

    // Assert: the old phone is gone from bob's settings, the new one stays.
    service.wait_for(&old.path, 1).await;
    service.wait_for(&new.path, 1).await;
    let deadline = tokio::time::Instant::now() + PUSH_WAIT;
    while devices(&bob).await.len() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead subscription was not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A second message reaches only the live device.
    ann.say(c, "pong").await;
    service.wait_for(&new.path, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        service.received(&old.path).len(),
        1,
        "no retries, no pushes"
    );
}

#[tokio::test]
async fn bad_subscriptions_are_refused_and_nothing_is_written() {
    // Arrange
    let app = app().await;
    let service = PushService::start().await;
    let bob = app.user("bob").await;
    let d = Device::new(&service, "bob");
    let (p256dh, auth) = (d.p256dh(), d.auth());
    let short_auth = Base64UrlUnpadded::encode_string(&[1u8; 15]);
    let not_a_point = Base64UrlUnpadded::encode_string(&[4u8; 65]);
    let cases: Vec<(&str, [(&str, &str); 3])> = vec![
        (
            "http to another host",
            [
                ("endpoint", "http://push.example.org/x"),
                ("p256dh", &p256dh),
                ("auth", &auth),
            ],
        ),
        (
            "https to an internal address",
            [
                ("endpoint", "https://169.254.169.254/latest"),
                ("p256dh", &p256dh),
                ("auth", &auth),
            ],
        ),
        (
            "not a URL",
            [
                ("endpoint", "javascript:alert(1)"),
                ("p256dh", &p256dh),
                ("auth", &auth),
            ],
        ),
        (
            "short auth",
            [
                ("endpoint", &d.endpoint),
                ("p256dh", &p256dh),
                ("auth", &short_auth),
            ],
        ),
        (
            "not a curve point",
            [
                ("endpoint", &d.endpoint),
                ("p256dh", &not_a_point),
                ("auth", &auth),
            ],
        ),
        (
            "not base64",
            [
                ("endpoint", &d.endpoint),
                ("p256dh", "!!!"),
                ("auth", &auth),
            ],
        ),
    ];

    // Act + Assert
    for (what, form) in cases {
        let r = bob.post_fetch("/push/subscriptions", &form).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        assert!(!r.body.is_empty(), "{what}: a message says why");
    }
    assert!(devices(&bob).await.is_empty(), "nothing written");
    // Anonymous: to the login page, nothing written.
    let r = app
        .client()
        .post(
            "/push/subscriptions",
            &[
                ("endpoint", &d.endpoint),
                ("p256dh", &p256dh),
                ("auth", &auth),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(devices(&bob).await.is_empty());
    // At most ten devices; the same device again is not one more.
    for i in 0..10 {
        let r = Device::new(&service, &format!("d{i}"))
            .subscribe(&bob)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let again = Device::new(&service, "d3");
    assert_eq!(again.subscribe(&bob).await.status, StatusCode::NO_CONTENT);
    let r = Device::new(&service, "eleventh").subscribe(&bob).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("10 devices"), "{}", r.body);
    assert_eq!(devices(&bob).await.len(), 10);
}

#[tokio::test]
async fn the_manifest_service_worker_offline_page_and_icons_are_served() {
    let app = app().await;
    let c = app.client();
    let m = c.get("/manifest.webmanifest").await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(
        m.headers.get("content-type").unwrap(),
        "application/manifest+json"
    );
    let manifest: serde_json::Value = serde_json::from_str(&m.body).unwrap();
    assert_eq!(manifest["name"], "Parley");
    assert_eq!(manifest["display"], "standalone");
    let icons = manifest["icons"].as_array().unwrap();
    assert!(icons.iter().any(|i| i["purpose"] == "maskable"));
    for icon in icons {
        let r = c
            .http
            .get(format!("{}{}", app.base, icon["src"].as_str().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers().get("content-type").unwrap(), "image/png");
        let png = r.bytes().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }
    let sw = c.get("/sw.js").await;
    assert_eq!(sw.status, StatusCode::OK);
    assert!(
        sw.headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(sw.headers.get("service-worker-allowed").unwrap(), "/");
    assert!(sw.body.contains("addEventListener(\"push\""));
    let offline = c.get("/offline").await;
    assert_eq!(offline.status, StatusCode::OK);
    assert!(offline.has("main h1"));
    assert_eq!(offline.attr("body", "data-me").as_deref(), Some("0"));
    let login = c.get("/login").await;
    assert_eq!(
        login.attr("link[rel=manifest]", "href").as_deref(),
        Some("/manifest.webmanifest")
    );
    assert!(login.has("meta[name=theme-color]"));
}

#[tokio::test]
async fn settings_lists_devices_and_each_can_be_removed_without_js() {
    // Arrange
    let app = app().await;
    let service = PushService::start().await;
    let bob = app.user("bob").await;
    let laptop = Device::new(&service, "laptop");
    let phone = Device::new(&service, "phone");
    laptop.subscribe(&bob).await;
    phone.subscribe(&bob).await;
    let page = bob.get("/settings").await;
    assert_eq!(page.count("#push-devices li.device"), 2);
    assert!(page.text("#push-devices").unwrap().contains("2 devices"));
    assert!(page.has("#push-enable"), "the JS button is on the page");
    assert!(
        page.body.contains("<noscript>"),
        "says JS is needed to turn it on"
    );
    let first = devices(&bob).await[0].clone();
    let id = first.strip_prefix("push-device-").unwrap();

    // Act: the plain form.
    let r = bob
        .post(&format!("/push/subscriptions/{id}/delete"), &[])
        .await;

    // Assert
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/settings?saved=push-off"));
    assert_eq!(devices(&bob).await.len(), 1);
    // This browser turns its own push off (live.js, by endpoint).
    let r = bob
        .post_fetch(
            "/push/subscriptions/delete",
            &[("endpoint", &phone.endpoint)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(devices(&bob).await.is_empty());
    let page = bob.get("/settings").await;
    assert!(page.text("#push-devices").unwrap().contains("off on all"));
}

#[tokio::test]
async fn nobody_else_can_remove_my_device() {
    // Arrange
    let app = app().await;
    let service = PushService::start().await;
    let bob = app.user("bob").await;
    let eve = app.user("eve").await;
    let phone = Device::new(&service, "phone");
    phone.subscribe(&bob).await;
    let id = devices(&bob).await[0]
        .strip_prefix("push-device-")
        .unwrap()
        .to_owned();

    // Act
    let by_id = eve
        .post(&format!("/push/subscriptions/{id}/delete"), &[])
        .await;
    let by_endpoint = eve
        .post(
            "/push/subscriptions/delete",
            &[("endpoint", &phone.endpoint)],
        )
        .await;
    let unknown = bob.post("/push/subscriptions/999999/delete", &[]).await;

    // Assert
    assert_eq!(by_id.status, StatusCode::NOT_FOUND);
    assert_eq!(by_endpoint.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(devices(&bob).await.len(), 1, "bob's device stays");
}

#[tokio::test]
async fn device_changes_reach_only_the_owners_open_pages() {
    // Arrange
    let app = app().await;
    let service = PushService::start().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let mut b = bob.stream().await;
    let mut a = ann.stream().await;
    let phone = Device::new(&service, "phone");

    // Act
    phone.subscribe(&bob).await;

    // Assert: bob's settings page (another tab) gets the new list, as a fresh load shows it.
    let f = b.expect_target("replace", "push-devices").await;
    assert!(f.content().contains("push-device-"));
    a.assert_none(Duration::from_millis(300), "bob's devices", |f| {
        f.target().as_deref() == Some("push-devices")
    })
    .await;
    let fresh = bob.get("/settings").await;
    assert_eq!(fresh.count("#push-devices li.device"), 1);

    // Act: removed elsewhere.
    let id = devices(&bob).await[0]
        .strip_prefix("push-device-")
        .unwrap()
        .to_owned();
    bob.post(&format!("/push/subscriptions/{id}/delete"), &[])
        .await;
    let f = b.expect_target("replace", "push-devices").await;
    assert!(!f.content().contains("push-device-"));
}

#[tokio::test]
async fn the_vapid_key_is_made_once_and_kept_across_restarts_and_nodes() {
    let app = app().await;
    let bob = app.user("bob").await;
    let key = bob
        .get("/settings")
        .await
        .attr("#push-settings", "data-vapid-key")
        .unwrap();
    assert_eq!(
        Base64UrlUnpadded::decode_vec(&key).unwrap().len(),
        65,
        "an uncompressed P-256 point"
    );
    if app.on_postgres() {
        let other = app.second_node().await;
        assert_eq!(other.state.vapid.public_key, key, "one key for all nodes");
    }
    let app = app.restart().await;
    assert_eq!(app.state.vapid.public_key, key, "kept in the database");
}

#[tokio::test]
async fn with_two_nodes_a_message_is_pushed_once() {
    let app = app().await;
    if !app.on_postgres() {
        return; // one SQLite node is the whole deployment
    }
    // Arrange
    let other = app.second_node_with(|c| c.push_allow_insecure = true).await;
    let service = PushService::start().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let phone = Device::new(&service, "phone");
    phone.subscribe(&bob).await;
    let ann_there = other.login("ann").await;

    // Act: one message through each node.
    ann.say(c, "one").await;
    ann_there.say(c, "two").await;

    // Assert: two pushes, not four.
    service.wait_for(&phone.path, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies: Vec<String> = service
        .received(&phone.path)
        .iter()
        .map(|r| phone.open(r)["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies.contains(&"one".to_owned()) && bodies.contains(&"two".to_owned()));
}

#[tokio::test]
async fn a_stream_open_on_another_node_holds_the_push_back() {
    let app = app().await;
    if !app.on_postgres() {
        return; // one SQLite node is the whole deployment
    }
    // Arrange: bob's stream is on the second node; ann posts on the first.
    let other = app.second_node_with(|c| c.push_allow_insecure = true).await;
    let service = PushService::start().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob, &carl]).await;
    let (bobs, carls) = (Device::new(&service, "bob"), Device::new(&service, "carl"));
    bobs.subscribe(&bob).await;
    carls.subscribe(&carl).await;
    let _bob_is_there = other.login("bob").await.stream().await;

    // Act
    ann.say(g, "anyone?").await;

    // Assert: whichever node pushes, it sees bob's stream (the `live_streams` rows).
    service.wait_for(&carls.path, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(service.received(&bobs.path).is_empty(), "bob has a stream");
}

/// In a real browser: the service worker installs from `/sw.js` (the CSP allows it), keeps the
/// offline page, shows it when the server is gone; the settings page offers push on this device.
/// Screenshots of the settings page and the offline page go to `target/e2e/screens/`.
#[tokio::test]
async fn e2e_the_service_worker_installs_and_shows_the_offline_page() {
    use crate::e2e::{
        click, enabled, fill, js_str, open_browser, out_dir, start_driver, wait_path,
    };
    if !enabled() {
        eprintln!("e2e push: skipped (set PARLEY_E2E=1 to run browser tests)");
        return;
    }
    let mut app = app().await;
    let service = PushService::start().await;
    let bob = app.user("bob").await;
    app.friends("ann", "carl").await;
    Device::new(&service, "laptop").subscribe(&bob).await;
    let phone = Device::new(&service, "phone");
    bob.http
        .post(format!("{}/push/subscriptions", app.base))
        .header("X-Parley-Fetch", "1")
        .header(
            "User-Agent",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36",
        )
        .form(&[
            ("endpoint", phone.endpoint.as_str()),
            ("p256dh", &phone.p256dh()),
            ("auth", &phone.auth()),
        ])
        .send()
        .await
        .unwrap();
    let driver = start_driver().await.expect("chromedriver");
    let b = open_browser(&driver, true, 1100, 1100)
        .await
        .expect("browser");
    let r = async {
        let dir = out_dir().join("screens");
        std::fs::create_dir_all(&dir)?;
        b.goto(&format!("{}/login", app.base)).await?;
        fill(&b, "#username", "bob").await?;
        fill(&b, "#password", &password_for("bob")).await?;
        click(&b, "form button[type=submit].primary").await?;
        wait_path(&b, "/conversations").await?;
        b.goto(&format!("{}/settings", app.base)).await?;
        // The worker is active and has the offline page.
        let mut state = String::new();
        for _ in 0..100 {
            state = js_str(
                &b,
                "var r = window.__swState; if (!r) { window.__swState = 'waiting'; \
                 navigator.serviceWorker.ready.then(function () { return Promise.all([caches.match('/offline'), \
                 caches.match('/static/app.css')]); }) \
                 .then(function (m) { window.__swState = m[0] && m[1] ? 'cached' : 'not kept'; }); } \
                 return String(window.__swState);",
            )
            .await?;
            if state == "cached" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(state == "cached", "service worker state: {state}");
        let shown = js_str(
            &b,
            "return document.getElementById('push-enable').hidden ? 'hidden' : 'shown';",
        )
        .await?;
        anyhow::ensure!(shown == "shown", "the push button is offered: {shown}");
        let count = js_str(
            &b,
            "return String(document.querySelectorAll('#push-devices li.device').length);",
        )
        .await?;
        anyhow::ensure!(count == "2", "two devices listed: {count}");
        b.execute("document.getElementById('push-settings').scrollIntoView();", vec![])
            .await?;
        std::fs::write(dir.join("settings-push.png"), b.screenshot().await?)?;
        // The server goes away: a navigation shows the kept offline page.
        app.shutdown().await;
        b.goto(&format!("{}/conversations", app.base)).await?;
        let h1 = js_str(&b, "return document.querySelector('main h1').textContent;").await?;
        anyhow::ensure!(h1.contains("offline"), "offline page shown: {h1}");
        std::fs::write(dir.join("offline.png"), b.screenshot().await?)?;
        anyhow::Ok(())
    }
    .await;
    let _ = b.close().await;
    drop(driver);
    if let Err(e) = r {
        panic!("e2e push: {e:#}");
    }
}

#[tokio::test]
async fn a_deactivated_account_gets_no_push() {
    // Arrange: ann is the first account, so the admin.
    let app = app().await;
    let service = PushService::start().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob, &carl]).await;
    let (bobs, carls) = (Device::new(&service, "bob"), Device::new(&service, "carl"));
    bobs.subscribe(&bob).await;
    carls.subscribe(&carl).await;
    let r = ann
        .post(&format!("/admin/users/{}/deactivate", bob.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // Act
    ann.say(g, "still on?").await;

    // Assert
    service.wait_for(&carls.path, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        service.received(&bobs.path).is_empty(),
        "bob is deactivated"
    );
}
