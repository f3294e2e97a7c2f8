//! Browser tests: headless Chromium driven over WebDriver (fantoccini) against the real app.
//!
//! They run when `PARLEY_E2E=1` (CI sets it in its browser step; `CHROMEDRIVER` and `CHROME_BIN`
//! name the binaries). Then a missing browser is a failure, never a skip. On failure each browser's
//! screenshot and HTML are saved under `target/e2e/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::*;

/// How long a live change may take to show in a browser.
pub(crate) const SHOW: Duration = Duration::from_secs(2);

pub(crate) fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e")
}

pub(crate) fn enabled() -> bool {
    std::env::var("PARLEY_E2E").is_ok_and(|v| v == "1")
}

/// A chromedriver process, killed on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn start_driver() -> Result<Driver> {
    let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let port = free_port();
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {bin} (install chromium-driver)"))?;
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(driver);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("chromedriver did not start")
}

pub(crate) async fn open_browser(
    driver: &Driver,
    js: bool,
    width: u32,
    height: u32,
) -> Result<Browser> {
    open_browser_with(driver, js, width, height, false).await
}

async fn open_browser_dark(driver: &Driver) -> Result<Browser> {
    open_browser_with(driver, true, 1280, 800, true).await
}

async fn open_browser_with(
    driver: &Driver,
    js: bool,
    width: u32,
    height: u32,
    dark: bool,
) -> Result<Browser> {
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        "--disable-quic".into(),
        "--disable-extensions".into(),
        format!("--window-size={width},{height}"),
    ];
    if dark {
        args.push("--blink-settings=preferredColorScheme=0".into());
        args.push("--force-dark-mode".into());
    }
    let mut opts = json!({ "args": args });
    if let Ok(bin) = std::env::var("CHROME_BIN") {
        opts["binary"] = json!(bin);
    }
    if !js {
        opts["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), opts);
    let b = ClientBuilder::native()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .context("opening a Chromium session")?;
    let _ = std::fs::create_dir_all(out_dir());
    let _ = std::fs::write(out_dir().join("ran.marker"), b"ran\n");
    Ok(b)
}

/// One scenario's world: the app, a driver, and browsers (each its own fresh profile).
struct E2e {
    app: TestApp,
    driver: Driver,
    browsers: Vec<Browser>,
    name: &'static str,
}

impl E2e {
    /// None when browser tests are not enabled.
    async fn start(name: &'static str, n: usize, js: bool) -> Option<E2e> {
        Self::start_with(name, n, js, |_| {}).await
    }

    /// Like [`E2e::start`], with the app's config changed by `f`.
    async fn start_with(
        name: &'static str,
        n: usize,
        js: bool,
        f: impl FnOnce(&mut parley::Config),
    ) -> Option<E2e> {
        if !enabled() {
            eprintln!("e2e {name}: skipped (set PARLEY_E2E=1 to run browser tests)");
            return None;
        }
        let app = TestApp::spawn_with(f).await;
        let driver = start_driver().await.expect("chromedriver");
        let mut browsers = Vec::new();
        for _ in 0..n {
            browsers.push(open_browser(&driver, js, 1280, 800).await.expect("browser"));
        }
        Some(E2e {
            app,
            driver,
            browsers,
            name,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.base)
    }

    /// Saves evidence on failure, closes every browser, then fails the test if `r` is an error.
    async fn finish(self, r: Result<()>) {
        if let Err(e) = &r {
            let dir = out_dir().join(self.name);
            let _ = std::fs::create_dir_all(&dir);
            for (i, b) in self.browsers.iter().enumerate() {
                if let Ok(png) = b.screenshot().await {
                    let _ = std::fs::write(dir.join(format!("browser-{i}.png")), png);
                }
                if let Ok(html) = b.source().await {
                    let _ = std::fs::write(dir.join(format!("browser-{i}.html")), html);
                }
            }
            eprintln!(
                "e2e {} failed: {e:#}; evidence in {}",
                self.name,
                dir.display()
            );
        }
        for b in self.browsers {
            let _ = b.close().await;
        }
        drop(self.driver);
        if let Err(e) = r {
            panic!("e2e {}: {e:#}", self.name);
        }
    }
}

/// Waits until `css` matches an element whose text contains `text`.
pub(crate) async fn wait_text(b: &Browser, css: &str, text: &str, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Ok(els) = b.find_all(Locator::Css(css)).await {
            for el in els {
                if el.text().await.is_ok_and(|t| t.contains(text)) {
                    return Ok(());
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no {css} with text {text:?} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the first element matching `css` has a `data-count` of `n` (counters hidden at 0
/// have no visible text to read).
async fn wait_count_attr(b: &Browser, css: &str, n: u32, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let count = match b.find(Locator::Css(css)).await {
            Ok(el) => el.attr("data-count").await.ok().flatten(),
            Err(_) => None,
        };
        if count == Some(n.to_string()) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{css} did not count {n} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `css` matches exactly `n` elements.
pub(crate) async fn wait_count(b: &Browser, css: &str, n: usize, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = b
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.len())
            .unwrap_or(0);
        if got == n {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{css}: {got} elements, wanted {n}, within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn wait_path(b: &Browser, prefix: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if b.current_url()
            .await
            .is_ok_and(|u| u.path().starts_with(prefix))
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "did not reach {prefix}, at {:?}",
                b.current_url().await.ok()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn fill(b: &Browser, css: &str, text: &str) -> Result<()> {
    let el = b.find(Locator::Css(css)).await?;
    el.clear().await?;
    el.send_keys(text).await?;
    Ok(())
}

pub(crate) async fn click(b: &Browser, css: &str) -> Result<()> {
    b.find(Locator::Css(css)).await?.click().await?;
    Ok(())
}

/// Registers through the form.
async fn register(env: &E2e, b: &Browser, name: &str) -> Result<()> {
    b.goto(&env.url("/register")).await?;
    fill(b, "#username", name).await?;
    fill(b, "#password", &password_for(name)).await?;
    click(b, "form button[type=submit].primary").await?;
    wait_path(b, "/conversations").await
}

/// `a` asks `b` (by name) through the friends page; `b` accepts on theirs.
async fn befriend_in_browsers(env: &E2e, a: &Browser, b: &Browser, b_name: &str) -> Result<()> {
    b.goto(&env.url("/friends")).await?;
    a.goto(&env.url("/friends")).await?;
    fill(a, "#friend-username", b_name).await?;
    click(a, "form.row-form button[type=submit]").await?;
    wait_path(a, "/friends").await?;
    // Arrives live on the recipient's open page (when JS runs), else after a reload.
    if wait_count(b, "#incoming-requests li.request", 1, SHOW)
        .await
        .is_err()
    {
        b.refresh().await?;
    }
    click(b, "#incoming-requests li.request button.primary").await?;
    wait_path(b, "/friends").await?;
    // The path is /friends before and after: wait for the answer to have landed.
    wait_count(b, "#incoming-requests li.request", 0, SHOW).await
}

/// The first two browsers register as ann and bob and become friends.
async fn ann_and_bob_as_friends(env: &E2e) -> Result<(&Browser, &Browser)> {
    let (a, b) = (&env.browsers[0], &env.browsers[1]);
    register(env, a, "ann").await?;
    register(env, b, "bob").await?;
    befriend_in_browsers(env, a, b, "bob").await?;
    Ok((a, b))
}

/// Waits until `script` returns `want`.
async fn wait_js_str(b: &Browser, script: &str, want: &str, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = js_str(b, script).await?;
        if got == want {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{script}: {got:?}, wanted {want:?} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn js_str(b: &Browser, script: &str) -> Result<String> {
    Ok(b.execute(script, vec![])
        .await?
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn e2e_friends_meet_and_chat_live() {
    let Some(env) = E2e::start("friends_meet_and_chat_live", 2, true).await else {
        return;
    };
    let r = async {
        let (a, b) = (&env.browsers[0], &env.browsers[1]);
        register(&env, a, "ann").await?;
        register(&env, b, "bob").await?;
        // Ann waits on her conversation list while Bob accepts her request.
        b.goto(&env.url("/friends")).await?;
        a.goto(&env.url("/friends")).await?;
        fill(a, "#friend-username", "bob").await?;
        click(a, "form.row-form button[type=submit]").await?;
        wait_count(b, "#incoming-requests li.request", 1, SHOW).await?;
        wait_count_attr(b, "#badge-requests", 1, SHOW).await?;
        a.goto(&env.url("/conversations")).await?;
        click(b, "#incoming-requests li.request button.primary").await?;
        wait_count(a, "#conversation-list li.conv-row", 1, SHOW).await?;
        wait_text(a, "#conversation-list .conv-title", "bob", SHOW).await?;
        b.goto(&env.url("/conversations")).await?;
        wait_text(b, "#conversation-list .conv-title", "ann", SHOW).await?;
        // Both open the conversation and chat both ways.
        click(a, "#conversation-list li.conv-row a").await?;
        click(b, "#conversation-list li.conv-row a").await?;
        wait_path(a, "/conversations/").await?;
        wait_path(b, "/conversations/").await?;
        let text = a.find(Locator::Css("form.composer textarea")).await?;
        text.send_keys("Hi Bob!\u{E007}").await?; // Enter sends
        wait_text(b, ".messages article.message .body", "Hi Bob!", SHOW).await?;
        wait_text(a, ".messages article.message.mine .body", "Hi Bob!", SHOW).await?;
        let composer_value = js_str(
            a,
            "return document.querySelector('form.composer textarea').value",
        )
        .await?;
        if !composer_value.is_empty() {
            bail!("the composer was not cleared: {composer_value:?}");
        }
        let focused = js_str(
            a,
            "return document.activeElement && document.activeElement.name",
        )
        .await?;
        if focused != "body" {
            bail!("focus left the composer: {focused:?}");
        }
        let theirs = js_str(
            b,
            "return document.querySelector('.messages article.message').className",
        )
        .await?;
        if theirs.contains("mine") {
            bail!("Ann's message is styled as Bob's own");
        }
        let t = b.find(Locator::Css("form.composer textarea")).await?;
        t.send_keys("Hey Ann\u{E008}\u{E007}\u{E000}second line")
            .await?; // Shift+Enter: a new line
        t.send_keys("\u{E007}").await?;
        wait_text(a, ".messages article.message .body", "second line", SHOW).await?;
        let n = a
            .find_all(Locator::Css(".messages article.message"))
            .await?
            .len();
        if n != 2 {
            bail!("expected 2 messages, saw {n}");
        }
        // The message's author has read it; the other side sees "Seen" once read.
        wait_count(
            b,
            ".messages article.message.mine .receipts .reader:not([hidden])",
            1,
            SHOW,
        )
        .await?;
        Ok(())
    }
    .await;
    env.finish(r).await;
}

#[tokio::test]
async fn e2e_unread_badge_rises_and_clears() {
    let Some(env) = E2e::start("unread_badge_rises_and_clears", 2, true).await else {
        return;
    };
    let r = async {
        let (a, b) = ann_and_bob_as_friends(&env).await?;
        b.goto(&env.url("/conversations")).await?;
        a.goto(&env.url("/conversations")).await?;
        click(a, "#conversation-list li.conv-row a").await?;
        wait_path(a, "/conversations/").await?;
        for text in ["one", "two", "three"] {
            let t = a.find(Locator::Css("form.composer textarea")).await?;
            t.send_keys(text).await?;
            t.send_keys("\u{E007}").await?;
            wait_text(a, ".messages article.message .body", text, SHOW).await?;
        }
        wait_count_attr(b, "#conversation-list .unread", 3, SHOW).await?;
        wait_count_attr(b, "#badge-unread", 3, SHOW).await?;
        let title = b.title().await?;
        if !title.starts_with("(3)") {
            bail!("the tab title should show the unread count: {title:?}");
        }
        click(b, "#conversation-list li.conv-row a").await?;
        wait_path(b, "/conversations/").await?;
        wait_count_attr(b, "#badge-unread", 0, SHOW).await?;
        b.goto(&env.url("/conversations")).await?;
        wait_count_attr(b, "#conversation-list .unread", 0, SHOW).await?;
        // Ann sees that Bob read them.
        wait_count(
            a,
            ".messages article.message .receipts .reader:not([hidden])",
            1,
            SHOW,
        )
        .await?;
        Ok(())
    }
    .await;
    env.finish(r).await;
}

/// A row's `@` (unread messages that name me) follows an edit that names me or stops naming me,
/// and a delete, as a fresh load counts it.
#[tokio::test]
async fn e2e_the_rows_at_follows_edits_and_deletes() {
    let Some(env) = E2e::start("rows_at_follows_edits_and_deletes", 2, true).await else {
        return;
    };
    let r = async {
        let (a, _b) = ann_and_bob_as_friends(&env).await?;
        let ann = http_session(&env, "ann").await?;
        let bob = http_session(&env, "bob").await?;
        let c = bob.direct_with(&ann).await;
        a.goto(&env.url("/conversations")).await?;
        let at =
            format!("return document.getElementById('unread-{c}').getAttribute('data-mentions')");
        let m = bob.say(c, "hi @ann").await;
        wait_js_str(a, &at, "1", SHOW).await?;
        let path = format!("/conversations/{c}/messages/{m}");
        bob.post(&path, &[("body", "hi")]).await;
        wait_js_str(a, &at, "0", SHOW).await?;
        bob.post(&path, &[("body", "hi again @ann")]).await;
        wait_js_str(a, &at, "1", SHOW).await?;
        let label =
            format!("return document.getElementById('unread-{c}').getAttribute('aria-label')");
        wait_js_str(a, &label, "1 unread, you are mentioned", SHOW).await?;
        bob.post(&format!("{path}/delete"), &[]).await;
        wait_js_str(a, &at, "0", SHOW).await?;
        wait_js_str(a, &label, "0 unread", SHOW).await?;
        Ok(())
    }
    .await;
    env.finish(r).await;
}

/// An admin's own row offers no "Deactivate" (refused for oneself); everyone else's does, also
/// in a row that arrives live.
#[tokio::test]
async fn e2e_an_admin_is_not_offered_deactivating_themselves() {
    let Some(env) = E2e::start("admin_not_offered_self_deactivation", 1, true).await else {
        return;
    };
    let r = async {
        let a = &env.browsers[0];
        register(&env, a, "ann").await?;
        let ann = http_session(&env, "ann").await?;
        let bob = env.app.user("bob").await;
        a.goto(&env.url("/admin/users")).await?;
        let shown = |id: i64| {
            format!(
                "var f = document.querySelector('#admin-user-{id} form[action$=\"/deactivate\"]'); \
                 return f ? String(!f.hidden) : 'none'"
            )
        };
        wait_js_str(a, &shown(ann.id), "false", SHOW).await?;
        wait_js_str(a, &shown(bob.id), "true", SHOW).await?;
        let cat = env.app.user("cat").await;
        wait_js_str(a, &shown(cat.id), "true", SHOW).await?;
        // Refused anyway, without JavaScript too.
        let r = ann
            .post(&format!("/admin/users/{}/deactivate", ann.id), &[])
            .await;
        if r.status != reqwest::StatusCode::CONFLICT {
            bail!("deactivating oneself: {}", r.status);
        }
        Ok(())
    }
    .await;
    env.finish(r).await;
}

/// A muted conversation counts in its own row, never in the header, the tab title or the icon:
/// on a page with the conversation list and on one without, and live when (un)muting.
#[tokio::test]
async fn e2e_a_muted_conversation_stays_out_of_the_tab_title() {
    let Some(env) = E2e::start("muted_out_of_the_title", 2, true).await else {
        return;
    };
    let r = async {
        let (a, _b) = ann_and_bob_as_friends(&env).await?;
        let ann = http_session(&env, "ann").await?;
        let bob = http_session(&env, "bob").await?;
        let c = ann.direct_with(&bob).await;
        let g = ann.group("Loud", &[&bob]).await;
        let title = "return document.title.split(' ')[0]";
        let icon = "return document.querySelector('link[rel=icon]').getAttribute('href')";
        a.goto(&env.url("/friends")).await?;
        bob.say(g, "one").await;
        wait_js_str(a, title, "(1)", SHOW).await?;
        // Muted from another session: this page follows.
        ann.post(
            &format!("/conversations/{g}/notifications"),
            &[("level", "mute")],
        )
        .await;
        wait_count_attr(a, "#badge-unread", 0, SHOW).await?;
        wait_js_str(a, title, "Friends", SHOW).await?;
        wait_js_str(a, icon, "/static/favicon.svg", SHOW).await?;
        // A page without the list: the muted group's message does not count, the direct one
        // (sent after it, so applied after it) does.
        bob.say(g, "two").await;
        bob.say(c, "three").await;
        wait_js_str(a, title, "(1)", SHOW).await?;
        wait_count_attr(a, "#badge-unread", 1, SHOW).await?;
        wait_js_str(a, icon, "/icon/1", SHOW).await?;
        // The list: the muted row keeps its count, the header leaves it out.
        a.goto(&env.url("/conversations")).await?;
        wait_count_attr(a, &format!("#unread-{g}"), 2, SHOW).await?;
        wait_count_attr(a, "#badge-unread", 1, SHOW).await?;
        bob.say(g, "four").await;
        bob.say(c, "five").await;
        wait_count_attr(a, &format!("#unread-{g}"), 3, SHOW).await?;
        wait_count_attr(a, "#badge-unread", 2, SHOW).await?;
        wait_js_str(a, title, "(2)", SHOW).await?;
        // Unmuted: everything counts again.
        ann.post(
            &format!("/conversations/{g}/notifications"),
            &[("level", "all")],
        )
        .await;
        wait_count_attr(a, "#badge-unread", 5, SHOW).await?;
        wait_js_str(a, title, "(5)", SHOW).await?;
        // Muted, removed, invited again: the new membership starts on "all", as a fresh load
        // says, so its messages count.
        let h = bob.group("Quiet", &[&ann]).await;
        ann.post(
            &format!("/conversations/{h}/notifications"),
            &[("level", "mute")],
        )
        .await;
        let muted = "return document.getElementById('notify-prefs').getAttribute('data-muted')";
        wait_js_str(a, muted, &h.to_string(), SHOW).await?;
        let ann_id = ann.me().await;
        bob.post(&format!("/conversations/{h}/members/{ann_id}/remove"), &[])
            .await;
        wait_js_str(a, muted, "", SHOW).await?;
        bob.post(
            &format!("/conversations/{h}/members"),
            &[("username", "ann")],
        )
        .await;
        wait_count(a, &format!("#conversation-{h}"), 1, SHOW).await?;
        bob.say(h, "back").await;
        wait_count_attr(a, &format!("#unread-{h}"), 1, SHOW).await?;
        wait_count_attr(a, "#badge-unread", 6, SHOW).await?;
        wait_js_str(a, title, "(6)", SHOW).await?;
        Ok(())
    }
    .await;
    env.finish(r).await;
}

/// The "Notify me of" menu of an open conversation follows a change made in another tab.
#[tokio::test]
async fn e2e_the_notify_menu_follows_another_tab() {
    let Some(env) = E2e::start("notify_menu_follows_another_tab", 2, true).await else {
        return;
    };
    let r = async {
        let (a, _b) = ann_and_bob_as_friends(&env).await?;
        let ann = http_session(&env, "ann").await?;
        let bob = http_session(&env, "bob").await?;
        let g = bob.group("Plans", &[&ann]).await;
        a.goto(&env.url(&format!("/conversations/{g}"))).await?;
        let menu = format!("return document.getElementById('notify-{g}').value");
        wait_js_str(a, &menu, "all", SHOW).await?;
        for level in ["mentions", "mute", "all"] {
            ann.post(
                &format!("/conversations/{g}/notifications"),
                &[("level", level)],
            )
            .await;
            wait_js_str(a, &menu, level, SHOW).await?;
        }
        Ok(())
    }
    .await;
    env.finish(r).await;
}

#[tokio::test]
async fn e2e_presence_follows_the_last_tab() {
    let Some(env) = E2e::start("presence_follows_the_last_tab", 2, true).await else {
        return;
    };
    let r = async {
        let (a, b) = ann_and_bob_as_friends(&env).await?;
        a.goto(&env.url("/friends")).await?;
        b.goto(&env.url("/friends")).await?;
        let ann_id = js_str(a, "return document.body.dataset.me").await?;
        let dot = format!("[data-presence=\"{ann_id}\"].online");
        wait_count(b, &dot, 1, SHOW).await?;
        // Ann's only tab leaves Parley: she goes offline for Bob, live.
        a.goto("about:blank").await?;
        wait_count(b, &dot, 0, Duration::from_secs(4)).await?;
        a.goto(&env.url("/friends")).await?;
        wait_count(b, &dot, 1, SHOW).await?;
        Ok(())
    }
    .await;
    env.finish(r).await;
}

#[tokio::test]
async fn e2e_a_group_of_three() {
    let Some(env) = E2e::start("a_group_of_three", 3, true).await else {
        return;
    };
    let r = async {
        let (a, b, c) = (&env.browsers[0], &env.browsers[1], &env.browsers[2]);
        register(&env, a, "ann").await?;
        register(&env, b, "bob").await?;
        register(&env, c, "carl").await?;
        befriend_in_browsers(&env, a, b, "bob").await?;
        befriend_in_browsers(&env, a, c, "carl").await?;
        b.goto(&env.url("/conversations")).await?;
        c.goto(&env.url("/conversations")).await?;
        a.goto(&env.url("/conversations")).await?;
        fill(a, "#group-title", "Weekend").await?;
        click(a, "input[name=member][value=bob]").await?;
        click(a, ".new-group button[type=submit]").await?;
        wait_path(a, "/conversations/").await?;
        wait_text(b, "#conversation-list .conv-title", "Weekend", SHOW).await?;
        let t = a.find(Locator::Css("form.composer textarea")).await?;
        t.send_keys("Who is in?\u{E007}").await?;
        click(b, "#conversation-list li.conv-row:first-child a").await?;
        wait_text(b, ".messages .body", "Who is in?", SHOW).await?;
        // Ann adds Carl; Carl's list gets the group, Bob's member list grows.
        fill(a, ".members input[name=username]", "carl").await?;
        click(a, ".members .row-form button[type=submit]").await?;
        wait_text(c, "#conversation-list .conv-title", "Weekend", SHOW).await?;
        wait_count(b, ".members li.member", 3, SHOW).await?;
        click(c, "#conversation-list li.conv-row:first-child a").await?;
        wait_path(c, "/conversations/").await?;
        // Only the owner sees remove buttons.
        let visible = js_str(b, "return String(Array.from(document.querySelectorAll('[data-owner-only]')).filter(e => !e.hidden && e.offsetParent).length)").await?;
        if visible != "0" {
            bail!("Bob sees {visible} owner controls");
        }
        // Ann removes Carl: his open page says so, live.
        let carl_id = js_str(c, "return document.body.dataset.me").await?;
        let form = format!("form[action$='/members/{carl_id}/remove'] button");
        click(a, &form).await?;
        wait_text(c, ".conversation.gone", "removed", SHOW).await?;
        wait_count(b, ".members li.member", 2, SHOW).await?;
        // Bob leaves; then Ann deletes, and Bob's list loses it.
        click(b, "form[action$='/leave'] button").await?;
        wait_path(b, "/conversations").await?;
        wait_count(a, ".members li.member", 1, SHOW).await?;
        a.execute("window.confirm = () => true; return null", vec![]).await?;
        click(a, "form[action$='/delete'] button").await?;
        wait_path(a, "/conversations").await?;
        wait_count(a, "#conversation-list li.conv-row", 2, SHOW).await?;
        Ok(())
    }
    .await;
    env.finish(r).await;
}

#[tokio::test]
async fn e2e_a_dropped_stream_catches_up_once_in_order() {
    let Some(env) = E2e::start("a_dropped_stream_catches_up", 2, true).await else {
        return;
    };
    let r = async {
        let (a, b) = ann_and_bob_as_friends(&env).await?;
        a.goto(&env.url("/conversations")).await?;
        b.goto(&env.url("/conversations")).await?;
        click(a, "#conversation-list li.conv-row a").await?;
        click(b, "#conversation-list li.conv-row a").await?;
        wait_path(b, "/conversations/").await?;
        let bob_id: i64 = js_str(b, "return document.body.dataset.me").await?.parse()?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Cut Bob's stream from the server side; the browser reconnects with Last-Event-ID.
        env.app.state.hub.close_other_logins(bob_id, 0);
        for text in ["m1", "m2", "m3"] {
            let t = a.find(Locator::Css("form.composer textarea")).await?;
            t.send_keys(text).await?;
            t.send_keys("\u{E007}").await?;
            wait_text(a, ".messages .body", text, SHOW).await?;
        }
        wait_count(b, ".messages article.message", 3, Duration::from_secs(6)).await?;
        let order = js_str(b, "return Array.from(document.querySelectorAll('.messages .body')).map(e => e.textContent).join(',')").await?;
        if order != "m1,m2,m3" {
            bail!("after reconnect: {order}");
        }
        Ok(())
    }
    .await;
    env.finish(r).await;
}

#[tokio::test]
async fn e2e_everything_works_without_javascript() {
    let Some(env) = E2e::start("everything_works_without_javascript", 2, false).await else {
        return;
    };
    let r = async {
        let (a, b) = ann_and_bob_as_friends(&env).await?;
        a.goto(&env.url("/conversations")).await?;
        click(a, "#conversation-list li.conv-row a").await?;
        wait_path(a, "/conversations/").await?;
        fill(a, "form.composer textarea", "sent without JS").await?;
        click(a, "form.composer button[type=submit]").await?;
        wait_text(a, ".messages .body", "sent without JS", SHOW).await?;
        b.goto(&env.url("/conversations")).await?;
        wait_count_attr(b, "#conversation-list .unread", 1, SHOW).await?;
        click(b, "#conversation-list li.conv-row a").await?;
        wait_text(b, ".messages .body", "sent without JS", SHOW).await?;
        // A group, made and used with plain forms.
        a.goto(&env.url("/conversations")).await?;
        fill(a, "#group-title", "Plain").await?;
        click(a, "input[name=member][value=bob]").await?;
        click(a, ".new-group button[type=submit]").await?;
        wait_path(a, "/conversations/").await?;
        fill(a, "form.composer textarea", "hello group").await?;
        click(a, "form.composer button[type=submit]").await?;
        wait_text(a, ".messages .body", "hello group", SHOW).await?;
        // A reaction typed in the menu's field, sent with Enter. The menu opens from the
        // keyboard (the actions show on hover or focus).
        a.find(Locator::Css(
            ".messages article.message details.react-menu summary",
        ))
        .await?
        .send_keys("\u{E007}")
        .await?;
        let field = a
            .find(Locator::Css(
                ".messages article.message .react-form input[name=emoji]",
            ))
            .await?;
        field.send_keys("☕\u{E007}").await?;
        wait_text(a, ".messages .reaction", "☕", SHOW).await?;
        // An empty message gets a clear error, no crash. (Waiting for it also lets that page
        // load before the next click: a click during the navigation finds nothing.)
        click(a, "form.composer button[type=submit]").await?;
        wait_text(a, ".field-error", "Write a message first", SHOW).await?;
        // Log out and back in.
        click(a, "form[action='/logout'] button").await?;
        wait_path(a, "/login").await?;
        fill(a, "#username", "ann").await?;
        fill(a, "#password", &password_for("ann")).await?;
        click(a, "form button[type=submit].primary").await?;
        wait_path(a, "/conversations").await?;
        // Settings show no control that needs JavaScript.
        a.goto(&env.url("/settings")).await?;
        if a.find(Locator::Css("#notification-sound"))
            .await?
            .is_displayed()
            .await?
        {
            bail!("the sound choice needs JavaScript and should not show without it");
        }
        Ok(())
    }
    .await;
    env.finish(r).await;
}

#[tokio::test]
async fn e2e_eight_tabs_all_keep_receiving() {
    let Some(env) = E2e::start("eight_tabs_all_keep_receiving", 2, true).await else {
        return;
    };
    let r = async {
        let (a, b) = ann_and_bob_as_friends(&env).await?;
        b.goto(&env.url("/conversations")).await?;
        click(b, "#conversation-list li.conv-row a").await?;
        wait_path(b, "/conversations/").await?;
        let url = b.current_url().await?.to_string();
        let mut tabs = vec![b.window().await?];
        for _ in 0..7 {
            let w = b.new_window(true).await?;
            b.switch_to_window(w.handle.clone()).await?;
            b.goto(&url).await?;
            tabs.push(w.handle);
        }
        a.goto(&url).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // One stream per browser: Bob's eight tabs share one connection (Ann has one too).
        let streams = env.app.state.hub.connection_count();
        if streams != 2 {
            bail!("{streams} streams open for two browsers");
        }
        let t = a.find(Locator::Css("form.composer textarea")).await?;
        t.send_keys("to all tabs\u{E007}").await?;
        for tab in &tabs {
            b.switch_to_window(tab.clone()).await?;
            wait_text(b, ".messages .body", "to all tabs", Duration::from_secs(3)).await?;
        }
        Ok(())
    }
    .await;
    env.finish(r).await;
}

/// Saves the main screens under `target/e2e/screens/` for people to look at (light, dark, phone).
#[tokio::test]
async fn e2e_screenshots_of_the_main_screens() {
    let Some(env) = E2e::start("screenshots", 3, true).await else {
        return;
    };
    let r = async {
        let dir = out_dir().join("screens");
        std::fs::create_dir_all(&dir)?;
        let (a, b, c) = (&env.browsers[0], &env.browsers[1], &env.browsers[2]);
        a.goto(&env.url("/login")).await?;
        std::fs::write(dir.join("login.png"), a.screenshot().await?)?;
        register(&env, a, "ann").await?;
        std::fs::write(dir.join("empty-start.png"), a.screenshot().await?)?;
        register(&env, b, "bob").await?;
        register(&env, c, "carl").await?;
        for (browser, name) in [(a, "Ann Lee"), (b, "Bob Okafor"), (c, "Carl Nguyen")] {
            browser.goto(&env.url("/settings")).await?;
            fill(browser, "#display_name", name).await?;
            click(browser, "form[action='/settings'] button[type=submit]").await?;
            wait_path(browser, "/settings").await?;
        }
        befriend_in_browsers(&env, a, b, "bob").await?;
        befriend_in_browsers(&env, a, c, "carl").await?;
        a.goto(&env.url("/conversations")).await?;
        fill(a, "#group-title", "Weekend hike").await?;
        click(a, "input[name=member][value=bob]").await?;
        click(a, "input[name=member][value=carl]").await?;
        click(a, ".new-group button[type=submit]").await?;
        wait_path(a, "/conversations/").await?;
        let group_url = a.current_url().await?.to_string();
        let lines = [
            (b, "Who's in for Saturday? Forecast says sunny ☀️"),
            (c, "Me! Which trail?"),
            (
                a,
                "The ridge loop, about 14 km. Map: https://example.org/trails/ridge",
            ),
            (b, "Perfect. I'll bring fruit and chocolate."),
            (b, "And a thermos."),
            (c, "I can drive two people.\nLeaving at 8?"),
            (a, "8 works. See you all at the station."),
        ];
        b.goto(&group_url).await?;
        c.goto(&group_url).await?;
        for (who, text) in lines {
            let t = who.find(Locator::Css("form.composer textarea")).await?;
            t.send_keys(&text.replace('\n', "\u{E008}\u{E007}\u{E000}"))
                .await?;
            t.send_keys("\u{E007}").await?;
            wait_text(a, ".messages .body", &text.replace('\n', "")[..8], SHOW).await?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        std::fs::write(dir.join("group-conversation.png"), a.screenshot().await?)?;
        c.goto(&env.url("/conversations")).await?;
        std::fs::write(dir.join("conversation-list.png"), c.screenshot().await?)?;
        a.goto(&env.url("/friends")).await?;
        std::fs::write(dir.join("friends.png"), a.screenshot().await?)?;
        // A phone-sized view and dark mode, each in a browser of its own.
        let phone = open_browser(&env.driver, true, 390, 844).await?;
        let dark = open_browser_dark(&env.driver).await?;
        let shots = async {
            for (browser, file) in [
                (&phone, "phone-conversation.png"),
                (&dark, "dark-conversation.png"),
            ] {
                browser.goto(&env.url("/login")).await?;
                fill(browser, "#username", "bob").await?;
                fill(browser, "#password", &password_for("bob")).await?;
                click(browser, "form button[type=submit].primary").await?;
                wait_path(browser, "/conversations").await?;
                browser.goto(&group_url).await?;
                wait_text(browser, ".messages .body", "8 works", SHOW).await?;
                std::fs::write(dir.join(file), browser.screenshot().await?)?;
                // Nothing wider than the screen, and the group's name in its header.
                let fits = js_bool(
                    browser,
                    "return document.documentElement.scrollWidth <= window.innerWidth \
                       && document.querySelector('#conversation-title .group-title') \
                            .getBoundingClientRect().width > 40",
                )
                .await?;
                if !fits {
                    bail!("{file}: the page is wider than the screen, or the title has no room");
                }
            }
            dark.goto(&env.url("/friends")).await?;
            std::fs::write(dir.join("dark-friends.png"), dark.screenshot().await?)?;
            anyhow::Ok(())
        }
        .await;
        let _ = phone.close().await;
        let _ = dark.close().await;
        shots
    }
    .await;
    env.finish(r).await;
}

/// A logged-in HTTP session for someone who registered in a browser.
async fn http_session(env: &E2e, name: &str) -> Result<Client> {
    let c = env.app.client();
    let r = c
        .post(
            "/login",
            &[("username", name), ("password", &password_for(name))],
        )
        .await;
    if r.status != reqwest::StatusCode::SEE_OTHER {
        bail!("login {name}: {}", r.status);
    }
    let id = c.me().await;
    Ok(Client {
        id,
        name: name.to_owned(),
        ..c
    })
}

async fn js_bool(b: &Browser, script: &str) -> Result<bool> {
    Ok(b.execute(script, vec![]).await?.as_bool().unwrap_or(false))
}

/// Regression tests for pages that once stayed wrong until a reload (issue 8, cases 1, 2, 3, 5, 6).
#[tokio::test]
async fn e2e_pages_stay_right_without_a_reload() {
    let Some(env) = E2e::start("pages_stay_right_without_a_reload", 2, true).await else {
        return;
    };
    let r = async {
        let (a, b) = (&env.browsers[0], &env.browsers[1]);
        register(&env, a, "ann").await?;
        register(&env, b, "bob").await?;
        let ann = http_session(&env, "ann").await?;
        let bob = http_session(&env, "bob").await?;
        // Case 5: the welcome and an empty friend picker give way live to the first friend.
        a.goto(&env.url("/conversations")).await?;
        b.goto(&env.url("/friends")).await?;
        if !a
            .find(Locator::Css(".welcome"))
            .await?
            .is_displayed()
            .await?
        {
            bail!("a new user sees the welcome");
        }
        befriend(&bob, &ann).await;
        wait_count(a, &format!("#group-friends #pick-{}", bob.id), 1, SHOW).await?;
        if a.find(Locator::Css(".welcome"))
            .await?
            .is_displayed()
            .await?
        {
            bail!("the welcome stays after the first friend");
        }
        // Case 3: the row that arrives live shows bob online (his browser is open).
        wait_count(
            a,
            &format!("#conversation-list [data-presence=\"{}\"].online", bob.id),
            1,
            SHOW,
        )
        .await?;
        // Case 6: my own quick messages are grouped live as on a reload.
        click(a, "#conversation-list li.conv-row a").await?;
        wait_path(a, "/conversations/").await?;
        let c: i64 = js_str(
            a,
            "return document.querySelector('.conversation').dataset.conversation",
        )
        .await?
        .parse()?;
        for text in ["one", "two"] {
            let t = a.find(Locator::Css("form.composer textarea")).await?;
            t.send_keys(text).await?;
            t.send_keys("\u{E007}").await?;
            wait_text(a, ".messages article.message .body", text, SHOW).await?;
        }
        wait_count(a, ".messages article.message.continued", 1, SHOW).await?;
        a.refresh().await?;
        wait_count(a, ".messages article.message.continued", 1, SHOW).await?;
        // Case 1: a tall message arriving while bob is at the bottom is followed, and so is the next.
        b.goto(&env.url(&format!("/conversations/{c}"))).await?;
        wait_count(b, ".messages article.message", 2, SHOW).await?;
        let tall = (0..25)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let at_bottom = "var s = document.querySelector('.messages-wrap'); \
             return s.scrollHeight - s.scrollTop - s.clientHeight < 80 \
             && document.querySelector('.new-messages').hidden;";
        for body in [tall.as_str(), "short after tall"] {
            ann.say(c, body).await;
            wait_text(
                b,
                ".messages article.message .body",
                body.lines().last().unwrap_or(body),
                SHOW,
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if !js_bool(b, at_bottom).await? {
                bail!("bob was at the bottom and should follow {body:?}");
            }
        }
        // Case 2: an older page does not grow with new messages.
        for i in 0..50 {
            bob.say(c, &format!("fill {i}")).await;
        }
        // (Open the older page by its URL: on the newest page, scrolling up loads history in place.)
        let older = bob
            .get(&format!("/conversations/{c}"))
            .await
            .attr("p.older a[rel=prev]", "href")
            .context("an older page")?;
        b.goto(&env.url(&older)).await?;
        wait_path(b, "/conversations/").await?;
        let before = b.find_all(Locator::Css("article.message")).await?.len();
        ann.say(c, "not for the older page").await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let after = b.find_all(Locator::Css("article.message")).await?.len();
        if before != after {
            bail!("an older page grew from {before} to {after} messages");
        }
        Ok(())
    }
    .await;
    env.finish(r).await;
}

/// The conversation features in Chromium, end to end (issue 11): formatting and mentions, typing,
/// inline edit with the Up arrow, reactions, replies, delete with its confirmation, the unread
/// divider and favicon count, group rename and notes; with screenshots in light and dark.
#[tokio::test]
async fn e2e_conversation_features_in_chromium() {
    let Some(env) = E2e::start("conversation_features", 2, true).await else {
        return;
    };
    let r = async {
        let dir = out_dir().join("screens");
        std::fs::create_dir_all(&dir)?;
        let (a, b) = ann_and_bob_as_friends(&env).await?;
        let ann = http_session(&env, "ann").await?;
        let bob = http_session(&env, "bob").await?;
        let c = ann.direct_with(&bob).await;
        let url = env.url(&format!("/conversations/{c}"));
        a.goto(&url).await?;
        b.goto(&url).await?;
        // Formatting and a mention of bob, strongly marked on his page.
        let t = a.find(Locator::Css("form.composer textarea")).await?;
        t.send_keys("**Plan** for `saturday`, @bob?").await?;
        // Typing shows on bob's page while ann writes.
        wait_text(b, ".typing", "is typing", SHOW).await?;
        t.send_keys("\u{E007}").await?;
        wait_text(b, ".messages .body strong", "Plan", SHOW).await?;
        wait_count(b, ".messages .mention.is-me", 1, SHOW).await?;
        wait_count(b, ".messages article.mentions-me", 1, SHOW).await?;
        // Up arrow in the empty composer edits ann's last message inline.
        let t = a.find(Locator::Css("form.composer textarea")).await?;
        t.send_keys("\u{E013}").await?;
        wait_count(a, ".inline-edit textarea", 1, SHOW).await?;
        let e = a.find(Locator::Css(".inline-edit textarea")).await?;
        e.clear().await?;
        e.send_keys("**Plan** for *Sunday*, @bob?").await?;
        e.send_keys("\u{E007}").await?;
        wait_text(b, ".messages .body em", "Sunday", SHOW).await?;
        wait_count(b, ".messages .edited", 1, SHOW).await?;
        // Bob reacts with a quick emoji; ann sees it live.
        b.execute(
            "document.querySelector('.messages article.message details.react-menu').open = true",
            vec![],
        )
        .await?;
        click(
            b,
            ".messages article.message .react-form button[value='🎉']",
        )
        .await?;
        wait_text(a, ".messages .reaction", "🎉", SHOW).await?;
        wait_count(b, ".messages .reaction.mine", 1, SHOW).await?;
        // An emoji typed in the menu's field and sent with Enter: that one, not the first quick
        // emoji (the form's default button).
        b.execute(
            "document.querySelector('.messages article.message details.react-menu').open = true",
            vec![],
        )
        .await?;
        let field = b
            .find(Locator::Css(
                ".messages article.message .react-form input[name=emoji]",
            ))
            .await?;
        field.send_keys("☕").await?;
        field.send_keys("\u{E007}").await?;
        wait_text(a, ".messages .reaction", "☕", SHOW).await?;
        wait_count(a, ".messages .reaction", 2, SHOW).await?;
        // Bob replies to it; the reply quotes it on ann's page.
        b.execute(
            "document.querySelector('.messages article.message a[data-reply]').click()",
            vec![],
        )
        .await?;
        let replying: bool = b
            .execute("return !document.querySelector('.replying').hidden", vec![])
            .await?
            .as_bool()
            .unwrap_or(false);
        if !replying {
            bail!("the composer should say what it replies to");
        }
        let t = b.find(Locator::Css("form.composer textarea")).await?;
        t.send_keys("Sunday works 👍").await?;
        t.send_keys("\u{E007}").await?;
        wait_text(a, ".messages .quote", "Sunday", SHOW).await?;
        // Light and dark screenshots of the new conversation UI.
        tokio::time::sleep(Duration::from_millis(400)).await;
        std::fs::write(dir.join("features-light.png"), b.screenshot().await?)?;
        let dark = open_browser_dark(&env.driver).await?;
        let shot = async {
            dark.goto(&env.url("/login")).await?;
            fill(&dark, "#username", "ann").await?;
            fill(&dark, "#password", &password_for("ann")).await?;
            click(&dark, "form button[type=submit].primary").await?;
            wait_path(&dark, "/conversations").await?;
            dark.goto(&url).await?;
            wait_text(&dark, ".messages .quote", "Sunday", SHOW).await?;
            std::fs::write(dir.join("features-dark.png"), dark.screenshot().await?)?;
            anyhow::Ok(())
        }
        .await;
        let _ = dark.close().await;
        shot?;
        // Ann deletes her first message after confirming; it leaves bob's page and his reply's
        // quote says so.
        a.execute(
            "document.querySelector('.messages article.message a[data-delete]').click()",
            vec![],
        )
        .await?;
        a.accept_alert().await?;
        wait_text(b, ".messages .quote", "message deleted", SHOW).await?;
        wait_count(b, ".messages article.message", 1, SHOW).await?;
        // Away from the conversation: the favicon counts, and coming back lands on the divider.
        b.goto(&env.url("/friends")).await?;
        ann.say(c, "one more thing").await;
        ann.say(c, "and another").await;
        wait_js_str(
            b,
            "return document.querySelector('link[rel=icon]').getAttribute('href')",
            "/icon/2",
            SHOW,
        )
        .await?;
        b.goto(&url).await?;
        wait_count(b, "#unread-divider", 1, SHOW).await?;
        // A group renamed by ann: bob's open page follows, with a note in the history.
        let g = ann.group("Hike", &[&bob]).await;
        b.goto(&env.url(&format!("/conversations/{g}"))).await?;
        let r = ann
            .post(
                &format!("/conversations/{g}/title"),
                &[("title", "Sunday hike")],
            )
            .await;
        if r.status != reqwest::StatusCode::SEE_OTHER {
            bail!("rename: {}", r.status);
        }
        wait_text(b, "#conversation-title", "Sunday hike", SHOW).await?;
        wait_text(b, ".messages .note", "renamed the group", SHOW).await?;
        if !b.title().await?.contains("Sunday hike") {
            bail!("the tab title follows the group's new title");
        }
        Ok(())
    }
    .await;
    env.finish(r).await;
}

/// History loads in place when scrolled to the top; typing "@" offers the members; muting a
/// conversation quiets its row (issue 11).
#[tokio::test]
async fn e2e_history_mentions_offer_and_mute() {
    let Some(env) = E2e::start("history_mentions_offer_and_mute", 2, true).await else {
        return;
    };
    let r = async {
        let (a, _b) = ann_and_bob_as_friends(&env).await?;
        let ann = http_session(&env, "ann").await?;
        let bob = http_session(&env, "bob").await?;
        let c = ann.direct_with(&bob).await;
        let mut first = 0;
        for i in 0..70 {
            let id = bob.say(c, &format!("line {i}")).await;
            if i == 0 {
                first = id;
            }
        }
        // Read them all, so the newest page is one page of fifty.
        ann.get(&format!("/conversations/{c}")).await;
        a.goto(&env.url(&format!("/conversations/{c}"))).await?;
        wait_count(a, ".messages article.message", 50, SHOW).await?;
        a.execute(
            "document.querySelector('.messages-wrap').scrollTop = 0",
            vec![],
        )
        .await?;
        wait_count(a, ".messages article.message", 70, SHOW).await?;
        wait_count(a, &format!("#message-{first}"), 1, SHOW).await?;
        wait_count(a, "p.older", 0, SHOW).await?;
        // A tap (phones have no hover) focuses the message, which shows its actions.
        click(a, &format!("#message-{first} .body")).await?;
        wait_js_str(
            a,
            "return document.activeElement.id",
            &format!("message-{first}"),
            SHOW,
        )
        .await?;
        wait_js_str(
            a,
            &format!(
                "return getComputedStyle(document.querySelector('#message-{first} > .message-actions')).opacity"
            ),
            "1",
            SHOW,
        )
        .await?;
        // Someone reacting to it replaces the message live: it keeps the focus.
        bob.post(
            &format!("/conversations/{c}/messages/{first}/reactions"),
            &[("emoji", "👍")],
        )
        .await;
        wait_count(a, &format!("#message-{first} .reaction"), 1, SHOW).await?;
        wait_js_str(
            a,
            "return document.activeElement.id",
            &format!("message-{first}"),
            SHOW,
        )
        .await?;
        // "@" offers bob; Enter takes the offer.
        let t = a.find(Locator::Css("form.composer textarea")).await?;
        t.send_keys("hi @b").await?;
        wait_text(a, ".mention-suggest li", "@bob", SHOW).await?;
        // The offer sits over the text box, aligned with it.
        wait_js_str(
            a,
            "const s = document.querySelector('.mention-suggest').getBoundingClientRect(); \
             const t = document.querySelector('form.composer textarea').getBoundingClientRect(); \
             return String(Math.round(s.left - t.left)) + ' ' + String(s.bottom <= t.top)",
            "0 true",
            SHOW,
        )
        .await?;
        t.send_keys("\u{E007}").await?;
        let v = js_str(
            a,
            "return document.querySelector('form.composer textarea').value",
        )
        .await?;
        if v != "hi @bob " {
            bail!("the offer should complete the name, got {v:?}");
        }
        // A name typed in full is not offered again: Enter sends the message.
        t.send_keys("and @bob").await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        wait_count(a, ".mention-suggest", 0, SHOW).await?;
        t.send_keys("\u{E007}").await?;
        wait_text(a, ".messages .body", "hi @bob and @bob", SHOW).await?;
        // Mute: the row goes quiet on this page and on a fresh one.
        a.execute(
            "document.querySelector('.notify-form select').value = 'mute'",
            vec![],
        )
        .await?;
        click(a, ".notify-form button[type=submit]").await?;
        wait_path(a, "/conversations/").await?;
        wait_count(a, &format!("#conversation-{c}.muted"), 1, SHOW).await?;
        Ok(())
    }
    .await;
    env.finish(r).await;
}

#[tokio::test]
async fn e2e_a_throttled_message_shows_why_and_keeps_the_draft() {
    let Some(env) = E2e::start_with("throttled_message", 2, true, |c| {
        c.message_rate = 1;
        c.message_burst = 2;
    })
    .await
    else {
        return;
    };
    let r = async {
        let (a, _) = ann_and_bob_as_friends(&env).await?;
        a.goto(&env.url("/conversations")).await?;
        click(a, "#conversation-list li.conv-row a").await?;
        wait_path(a, "/conversations/").await?;
        // The burst of two, sent together from the page, and the third typed into the composer
        // and sent with Enter as soon as they are answered: refused, with the reason, and the
        // draft stays. All in one script, because the allowance refills in a second, and on a
        // busy machine the driver's round trips between typing steps can take that long.
        a.execute(
            "const f = document.querySelector('form.composer');
             return Promise.all(['one', 'two'].map(b => fetch(f.action, {
               method: 'POST',
               headers: {'Content-Type': 'application/x-www-form-urlencoded'},
               body: 'body=' + b,
             }))).then(rs => {
               const t = f.querySelector('textarea');
               t.focus();
               t.value = 'three';
               t.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
               return rs.map(r => r.status);
             });",
            vec![],
        )
        .await?;
        let t = a.find(Locator::Css("form.composer textarea")).await?;
        wait_text(a, "form.composer .field-error", "very fast", SHOW).await?;
        let draft = js_str(
            a,
            "return document.querySelector('form.composer textarea').value",
        )
        .await?;
        if draft != "three" {
            bail!("the draft was lost: {draft:?}");
        }
        for text in ["one", "two"] {
            wait_text(a, ".messages article.message .body", text, SHOW).await?;
        }
        // A moment later, Enter sends it.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        t.send_keys("\u{E007}").await?;
        wait_text(a, ".messages article.message .body", "three", SHOW).await?;
        wait_count(a, ".messages article.message", 3, SHOW).await?;
        Ok(())
    }
    .await;
    env.finish(r).await;
}

/// The session ends under an open page (the cookie is gone): the next message leads to the login
/// form, and back to the conversation with the draft still in the composer, unsent.
#[tokio::test]
async fn e2e_a_message_written_after_the_session_ended_waits_through_the_login() {
    let Some(env) = E2e::start("session_ended", 2, true).await else {
        return;
    };
    let r = async {
        let (a, b) = ann_and_bob_as_friends(&env).await?;
        a.goto(&env.url("/conversations")).await?;
        click(a, "#conversation-list li.conv-row a").await?;
        wait_path(a, "/conversations/").await?;
        let here = a.current_url().await?.path().to_owned();
        b.goto(&env.url(&here)).await?;
        a.delete_cookie("parley").await?;
        let t = a.find(Locator::Css("form.composer textarea")).await?;
        // The first key sends a typing signal, answered 401: that must not take the page away
        // while ann is still typing (the rest of her text would be lost).
        t.send_keys("written after").await?;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        t.send_keys(" the session ended\u{E007}").await?;
        wait_path(a, "/login").await?;
        fill(a, "#username", "ann").await?;
        fill(a, "#password", &password_for("ann")).await?;
        click(a, "form button[type=submit].primary").await?;
        wait_path(a, &here).await?;
        wait_js_str(
            a,
            "return document.querySelector('form.composer textarea').value",
            "written after the session ended",
            SHOW,
        )
        .await?;
        wait_count(b, ".messages article.message", 0, SHOW).await?;
        // Enter sends it now.
        let t = a.find(Locator::Css("form.composer textarea")).await?;
        t.send_keys("\u{E007}").await?;
        wait_text(
            b,
            ".messages .body",
            "written after the session ended",
            SHOW,
        )
        .await?;
        Ok(())
    }
    .await;
    env.finish(r).await;
}

#[tokio::test]
async fn e2e_a_stream_over_the_cap_waits_instead_of_reloading() {
    let Some(env) = E2e::start_with("stream_cap", 2, true, |c| c.max_streams_per_user = 1).await
    else {
        return;
    };
    let r = async {
        let (a, b) = (&env.browsers[0], &env.browsers[1]);
        register(&env, a, "ann").await?;
        // Ann's first browser holds her one stream; she logs in on a second.
        b.goto(&env.url("/login")).await?;
        fill(b, "#username", "ann").await?;
        fill(b, "#password", &password_for("ann")).await?;
        click(b, "form button[type=submit].primary").await?;
        wait_path(b, "/conversations").await?;
        b.execute("window.parleyMarker = 'still here'; return null;", vec![])
            .await?;
        // The second browser's stream is refused: it says why and does not reload.
        wait_text(b, "#live-status", "Live updates paused", SHOW).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let marker = js_str(b, "return window.parleyMarker || ''").await?;
        if marker != "still here" {
            bail!("the page reloaded");
        }
        Ok(())
    }
    .await;
    env.finish(r).await;
}

/// Desktop notifications: the tab holding the stream raises one while hidden, the other tabs do
/// not, and a muted conversation raises none (issue 11). The page's Notification is replaced by a
/// recorder, and the stream's tab is made to report itself hidden: headless Chromium shows no
/// popups and keeps every tab "visible".
#[tokio::test]
async fn e2e_one_notification_per_browser_and_none_when_muted() {
    let Some(env) = E2e::start("notifications", 2, true).await else {
        return;
    };
    let r = async {
        let (_a, b) = ann_and_bob_as_friends(&env).await?;
        let ann = http_session(&env, "ann").await?;
        let bob = http_session(&env, "bob").await?;
        let c = ann.direct_with(&bob).await;
        let recorder = "window.__shown = []; \
             window.Notification = function (title, o) { window.__shown.push(title + '|' + o.body); this.close = function () {}; }; \
             window.Notification.permission = 'granted'; return null;";
        // The first tab holds the stream; a second tab in front hides it.
        b.goto(&env.url("/friends")).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.execute(recorder, vec![]).await?;
        b.execute(
            "Object.defineProperty(document, 'visibilityState', { get: function () { return 'hidden'; }, configurable: true }); return null;",
            vec![],
        )
        .await?;
        let first = b.window().await?;
        let second = b.new_window(true).await?.handle;
        b.switch_to_window(second.clone()).await?;
        b.goto(&env.url("/settings")).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.execute(recorder, vec![]).await?;
        ann.say(c, "are you there?").await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let in_front = js_str(b, "return JSON.stringify(window.__shown)").await?;
        b.switch_to_window(first.clone()).await?;
        let behind = js_str(b, "return JSON.stringify(window.__shown)").await?;
        if !behind.contains("are you there?") || in_front != "[]" {
            bail!("one notification from the stream's tab: behind {behind}, in front {in_front}");
        }
        // Muted: nothing.
        bob.post(&format!("/conversations/{c}/notifications"), &[("level", "mute")])
            .await;
        b.switch_to_window(second).await?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        ann.say(c, "still there?").await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        b.switch_to_window(first).await?;
        let behind = js_str(b, "return JSON.stringify(window.__shown)").await?;
        if behind.contains("still there?") {
            bail!("a muted conversation raised a notification: {behind}");
        }
        Ok(())
    }
    .await;
    env.finish(r).await;
}

#[tokio::test]
async fn e2e_search_box_finds_a_message_and_its_link_opens_it_highlighted() {
    let Some(env) = E2e::start("search_box_finds_a_message", 1, true).await else {
        return;
    };
    let r = async {
        // Arrange: a long history with one message far back (over HTTP, quicker than a browser).
        let (ann, bob) = env.app.friends("ann", "bob").await;
        let c = ann.direct_with(&bob).await;
        let mut needle = 0;
        for i in 0..80 {
            bob.say(c, &format!("filler {i}")).await;
            if i == 10 {
                needle = bob.say(c, "the lighthouse keeper's log").await;
            }
        }
        let a = &env.browsers[0];
        a.goto(&env.url("/login")).await?;
        fill(a, "#username", "ann").await?;
        fill(a, "#password", &password_for("ann")).await?;
        click(a, "form button[type=submit].primary").await?;
        wait_path(a, "/conversations").await?;
        // Act: the header's search box, then the result's link.
        fill(a, "#search-q", "lighthouse").await?;
        click(a, "form.search-form button[type=submit]").await?;
        wait_path(a, "/search").await?;
        wait_text(a, "#search-results mark", "lighthouse", SHOW).await?;
        // A result whose message is deleted leaves the open results page.
        let gone = bob.say(c, "another lighthouse").await;
        a.refresh().await?;
        wait_count(a, "#search-results li.result", 2, SHOW).await?;
        let r = bob
            .post(&format!("/conversations/{c}/messages/{gone}/delete"), &[])
            .await;
        if r.status != reqwest::StatusCode::SEE_OTHER {
            bail!("delete: {}", r.status);
        }
        wait_count(a, "#search-results li.result", 1, SHOW).await?;
        click(a, "#search-results li.result .result-text a").await?;
        wait_path(a, &format!("/conversations/{c}/messages/{needle}")).await?;
        // Assert: the message is there, highlighted, and scrolled into view.
        wait_text(a, "article.message.highlight .body", "lighthouse", SHOW).await?;
        let visible = a
            .execute(
                "var m = document.querySelector('article.message.highlight');\
                 var s = document.querySelector('.messages-wrap').getBoundingClientRect();\
                 var r = m.getBoundingClientRect();\
                 return r.bottom > s.top && r.top < s.bottom;",
                vec![],
            )
            .await?;
        if visible.as_bool() != Some(true) {
            bail!("the highlighted message is not in view");
        }
        Ok(())
    }
    .await;
    env.finish(r).await;
}

/// A small PNG (a red and a blue half) as bytes.
fn small_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| {
        if x < w / 2 {
            image::Rgb([220, 40, 40])
        } else {
            image::Rgb([40, 40, 220])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png encodes");
    out.into_inner()
}

/// Waits until `n` thumbnails in the message list have loaded (decoded, non-zero size).
async fn wait_thumbnails(b: &Browser, n: usize, within: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    let script = "return Array.prototype.filter.call(document.querySelectorAll('.messages[data-live] a.attachment.image img'), function (i) { return i.complete && i.naturalWidth > 0; }).length";
    loop {
        let got = b.execute(script, vec![]).await?.as_u64().unwrap_or(0) as usize;
        if got == n {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{got} thumbnails loaded, wanted {n}, within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn e2e_an_image_attached_by_picker_and_by_paste_shows_live_in_another_browser() {
    let Some(env) = E2e::start("attachments_by_picker_and_paste", 2, true).await else {
        return;
    };
    let r = async {
        let (a, b) = ann_and_bob_as_friends(&env).await?;
        for x in [a, b] {
            x.goto(&env.url("/conversations")).await?;
            click(x, "#conversation-list li.conv-row a").await?;
            wait_path(x, "/conversations/").await?;
        }
        // By the file picker: WebDriver types the file's path into the input.
        let dir = out_dir().join("attachments");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("picked.png");
        std::fs::write(&file, small_png(120, 80))?;
        let input = a.find(Locator::Css("form.composer input[type=file]")).await?;
        input
            .send_keys(file.to_str().context("a UTF-8 path")?)
            .await?;
        wait_count(a, "form.composer .pending-files li", 1, SHOW).await?;
        click(a, "form.composer button[type=submit].primary").await?;
        wait_thumbnails(b, 1, SHOW).await?;
        wait_thumbnails(a, 1, SHOW).await?;
        wait_count(a, "form.composer .pending-files li", 0, SHOW).await?;
        // By paste: a synthetic paste event whose clipboard holds a PNG file.
        a.execute(
            "var bytes = new Uint8Array(arguments[0]);\
             var f = new File([bytes], 'pasted.png', { type: 'image/png' });\
             var dt = new DataTransfer(); dt.items.add(f);\
             var t = document.querySelector('form.composer textarea'); t.focus();\
             t.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));",
            vec![json!(small_png(64, 64))],
        )
        .await?;
        wait_count(a, "form.composer .pending-files li", 1, SHOW).await?;
        let text = a.find(Locator::Css("form.composer textarea")).await?;
        text.send_keys("pasted\u{E007}").await?;
        wait_thumbnails(b, 2, SHOW).await?;
        wait_text(b, ".messages article.message .body", "pasted", SHOW).await?;
        // A fresh load of Bob's page shows the same two images.
        b.refresh().await?;
        wait_thumbnails(b, 2, SHOW).await?;
        Ok(())
    }
    .await;
    env.finish(r).await;
}
