//! The live invariant, tested: after any sequence of changes, every open page equals what a fresh
//! load of its URL shows (up to relative times, focus, scroll and drafts).
//!
//! Three people (ann, bob, carl), each in their own Chromium with four tabs open on the pages they
//! may have (conversation list, a conversation at its newest page and at an older page, friends,
//! settings), and each with a second logged-in session that acts through the HTTP contract:
//! send, read, friend request / accept / reject / cancel, unfriend, befriend again, create group,
//! add, remove, leave, delete, rename, password change, and moving a tab to another page. After a
//! step settles, every few steps, each open tab is compared with a fresh load of its URL in a new
//! tab of the same browser, both normalised by the same script.
//!
//! Seeds are printed; `PARLEY_PROPERTY_SEED=N` replays one, `PARLEY_PROPERTY_SEEDS=N` runs seeds
//! 1..=N (CI: 2), `PARLEY_PROPERTY_STEPS=N` sets the steps per seed (default 24).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use fantoccini::Client as Browser;
use fantoccini::wd::WindowHandle;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::e2e::{Driver, click, enabled, fill, open_browser, out_dir, start_driver, wait_path};
use crate::helpers::{Client, TestApp, befriend};

/// A canonical serialisation of the parts of a page the invariant is about: the main region,
/// the header's badges and name. Attributes and classes are sorted, whitespace collapsed; times,
/// drafts (input values, ticks, textareas), idempotency keys, the "New messages" button (a
/// scroll state), who is typing (ephemeral) and where a visit landed (the unread divider as of
/// that visit, `#start`) are left out. `arguments[0]`, when set, is the oldest message id to keep: a
/// newest page that stayed open has more history loaded than a fresh one.
const SNAPSHOT_JS: &str = r#"
var keepFrom = arguments[0];
function esc(t) { return t.replace(/&/g, '&amp;').replace(/</g, '&lt;'); }
function canon(node) {
  if (node.nodeType === 3) {
    var t = node.nodeValue.replace(/\s+/g, ' ').trim();
    return t ? esc(t) : '';
  }
  if (node.nodeType !== 1) return '';
  var el = node, tag = el.tagName.toLowerCase();
  if (tag === 'time') return '<time>';
  if (tag === 'script' || tag === 'template') return '';
  if (el.matches('p.older, p.newer, .page-day, .new-messages, .typing, .unread-divider, #start')) return '';
  if (keepFrom && el.matches('article.message') && Number(el.id.replace('message-', '')) < keepFrom) return '';
  var attrs = [];
  for (var i = 0; i < el.attributes.length; i++) {
    var n = el.attributes[i].name, v = el.attributes[i].value;
    if ((tag === 'input' || tag === 'textarea') && (n === 'value' || n === 'checked')) continue;
    if (tag === 'option' && n === 'selected') continue;
    if (n === 'class') v = v.split(/\s+/).filter(Boolean).sort().join(' ');
    attrs.push(n + '="' + v + '"');
  }
  attrs.sort();
  var kids = '';
  if (tag !== 'textarea') for (var c = el.firstChild; c; c = c.nextSibling) kids += canon(c);
  return '<' + tag + (attrs.length ? ' ' + attrs.join(' ') : '') + '>' + kids + '</' + tag + '>';
}
function badge(id) { var e = document.getElementById(id); return e ? e.getAttribute('data-count') : '-'; }
var main = document.querySelector('main');
var me = document.getElementById('current-user');
return JSON.stringify({
  path: location.pathname + location.search,
  title: document.title.replace(/^\(\d+\) /, ''),
  badges: badge('badge-unread') + '/' + badge('badge-requests'),
  me: me ? canon(me) : '',
  main: main ? canon(main) : '',
  gone: !!document.querySelector('.conversation.gone'),
  notFound: document.title.indexOf('Not found') === 0,
  firstLive: (function () {
    var m = document.querySelector('.messages[data-live] article.message');
    return m ? Number(m.id.replace('message-', '')) : 0;
  })()
});
"#;

#[derive(serde::Deserialize, Debug, Clone, PartialEq)]
struct Snap {
    path: String,
    title: String,
    badges: String,
    me: String,
    main: String,
    gone: bool,
    #[serde(rename = "notFound")]
    not_found: bool,
    #[serde(rename = "firstLive")]
    first_live: i64,
}

struct Person {
    name: &'static str,
    password: String,
    http: Client,
    browser: Browser,
    tabs: Vec<WindowHandle>,
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn e2e_property_every_open_page_equals_a_fresh_load() {
    if !enabled() {
        eprintln!("e2e property: skipped (set PARLEY_E2E=1 to run browser tests)");
        return;
    }
    let seeds: Vec<u64> = match env_num("PARLEY_PROPERTY_SEED") {
        Some(s) => vec![s],
        None => (1..=env_num("PARLEY_PROPERTY_SEEDS").unwrap_or(2)).collect(),
    };
    let steps = env_num("PARLEY_PROPERTY_STEPS").unwrap_or(24) as usize;
    for seed in seeds {
        eprintln!("e2e property: seed {seed}, {steps} steps (replay: PARLEY_PROPERTY_SEED={seed})");
        let app = TestApp::spawn().await;
        let driver = start_driver().await.expect("chromedriver");
        let mut world = match World::new(&app, &driver, seed).await {
            Ok(w) => w,
            Err(e) => panic!("seed {seed}: setting up: {e:#}"),
        };
        let r = world.run(steps).await;
        if let Err(e) = &r {
            let dir = out_dir().join(format!("property-seed-{seed}"));
            let _ = std::fs::create_dir_all(&dir);
            for p in &world.people {
                if let Ok(png) = p.browser.screenshot().await {
                    let _ = std::fs::write(dir.join(format!("{}.png", p.name)), png);
                }
            }
            eprintln!("e2e property: seed {seed} failed: {e:#}");
        }
        for p in world.people.drain(..) {
            let _ = p.browser.close().await;
        }
        drop(driver);
        if let Err(e) = r {
            panic!("live invariant broken with PARLEY_PROPERTY_SEED={seed}: {e:#}");
        }
    }
}

struct World<'a> {
    app: &'a TestApp,
    people: Vec<Person>,
    rng: StdRng,
    log: Vec<String>,
}

impl<'a> World<'a> {
    async fn new(app: &'a TestApp, driver: &Driver, seed: u64) -> Result<World<'a>> {
        let mut people = Vec::new();
        for name in ["ann", "bob", "carl"] {
            let http = app.user(name).await;
            let browser = open_browser(driver, true, 1100, 760).await?;
            people.push(Person {
                name,
                password: crate::helpers::password_for(name),
                http,
                browser,
                tabs: Vec::new(),
            });
        }
        // A history longer than a page, so that older pages exist from the start.
        befriend(&people[0].http, &people[1].http).await;
        let c = people[0].http.direct_with(&people[1].http).await;
        for i in 0..53 {
            let who = if i % 3 == 2 { 1 } else { 0 };
            people[who].http.say(c, &format!("history {i}")).await;
        }
        let mut w = World {
            app,
            people,
            rng: StdRng::seed_from_u64(seed),
            log: Vec::new(),
        };
        for i in 0..w.people.len() {
            w.log_in(i).await?;
            let urls = w.start_urls(i).await;
            for url in urls {
                let p = &mut w.people[i];
                let h = if p.tabs.is_empty() {
                    p.browser.window().await?
                } else {
                    p.browser.new_window(true).await?.handle
                };
                p.browser.switch_to_window(h.clone()).await?;
                p.browser.goto(&format!("{}{url}", app.base)).await?;
                p.tabs.push(h);
            }
        }
        w.settle().await;
        Ok(w)
    }

    async fn log_in(&mut self, i: usize) -> Result<()> {
        let base = self.app.base.clone();
        let p = &self.people[i];
        p.browser.goto(&format!("{base}/login")).await?;
        fill(&p.browser, "#username", p.name).await?;
        fill(&p.browser, "#password", &p.password).await?;
        click(&p.browser, "form button[type=submit].primary").await?;
        wait_path(&p.browser, "/conversations").await
    }

    /// The four pages a person starts with.
    async fn start_urls(&self, i: usize) -> Vec<String> {
        let convs = self.conversations(i).await;
        let mut urls = vec!["/conversations".to_owned(), "/friends".to_owned()];
        match convs.first() {
            Some((c, _)) => {
                urls.push(format!("/conversations/{c}"));
                urls.push(
                    self.older_url(i, *c)
                        .await
                        .unwrap_or_else(|| "/settings".into()),
                );
            }
            None => {
                urls.push("/settings".into());
                urls.push("/conversations".into());
            }
        }
        urls
    }

    async fn run(&mut self, steps: usize) -> Result<()> {
        for step in 1..=steps {
            let what = self.step().await?;
            self.log.push(format!("{step}: {what}"));
            eprintln!("  step {step}: {what}");
            self.settle().await;
            if step % 6 == 0 || step == steps {
                self.check_all()
                    .await
                    .with_context(|| format!("after steps:\n{}", self.log.join("\n")))?;
            }
        }
        Ok(())
    }

    /// Waits until the event log stops growing (every frame delivered, every read posted).
    async fn settle(&self) {
        let mut last = -1;
        loop {
            let now = {
                let mut rc = self.app.state.db.read().await.expect("read");
                parley::db::events::last_id(&mut rc.conn())
                    .await
                    .expect("last id")
            };
            if now == last {
                break;
            }
            last = now;
            // live.js posts a read 300 ms after it sees a message.
            tokio::time::sleep(Duration::from_millis(450)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // ---- reading the state through the HTTP contract (without moving any read marker) ----------

    async fn conversations(&self, i: usize) -> Vec<(i64, bool)> {
        let page = self.people[i].http.get("/conversations").await;
        let html = page.html();
        let sel = scraper::Selector::parse("#conversation-list li.conv-row").unwrap();
        let dot = scraper::Selector::parse(".presence").unwrap();
        html.select(&sel)
            .filter_map(|li| {
                let id = li.value().attr("data-conversation")?.parse().ok()?;
                Some((id, li.select(&dot).next().is_some()))
            })
            .collect()
    }

    /// The members and owner of a group (read through an older-page view, which reads nothing).
    async fn group(&self, i: usize, c: i64) -> Option<(i64, Vec<i64>)> {
        let page = self.people[i]
            .http
            .get(&format!("/conversations/{c}?before={}", i64::MAX))
            .await;
        let owner = page.attr(".members", "data-owner")?.parse().ok()?;
        let html = page.html();
        let sel = scraper::Selector::parse(".member-list li.member").unwrap();
        let members = html
            .select(&sel)
            .filter_map(|li| li.value().id()?.rsplit('-').next()?.parse().ok())
            .collect();
        Some((owner, members))
    }

    async fn newest_message(&self, i: usize, c: i64) -> Option<i64> {
        let page = self.people[i]
            .http
            .get(&format!("/conversations/{c}?before={}", i64::MAX))
            .await;
        let html = page.html();
        let sel = scraper::Selector::parse("article.message").unwrap();
        html.select(&sel)
            .next_back()?
            .value()
            .id()?
            .strip_prefix("message-")?
            .parse()
            .ok()
    }

    /// Messages of a conversation's newest page: (id, author id).
    async fn messages_in(&self, i: usize, c: i64) -> Vec<(i64, i64)> {
        let page = self.people[i]
            .http
            .get(&format!("/conversations/{c}?before={}", i64::MAX))
            .await;
        let html = page.html();
        let sel = scraper::Selector::parse("article.message").unwrap();
        html.select(&sel)
            .filter_map(|a| {
                let id = a.value().id()?.strip_prefix("message-")?.parse().ok()?;
                let author = a.value().attr("data-author")?.parse().ok()?;
                Some((id, author))
            })
            .collect()
    }

    async fn older_url(&self, i: usize, c: i64) -> Option<String> {
        let page = self.people[i]
            .http
            .get(&format!("/conversations/{c}?before={}", i64::MAX))
            .await;
        page.attr("p.older a[rel=prev]", "href")
    }

    async fn ids_in(&self, i: usize, list: &str, prefix: &str) -> Vec<i64> {
        let page = self.people[i].http.get("/friends").await;
        let html = page.html();
        let sel = scraper::Selector::parse(&format!("#{list} > li")).unwrap();
        html.select(&sel)
            .filter_map(|li| li.value().id()?.strip_prefix(prefix)?.parse().ok())
            .collect()
    }

    fn index_of(&self, user_id: i64) -> Option<usize> {
        self.people.iter().position(|p| p.http.id == user_id)
    }

    // ---- one random step -----------------------------------------------------------------------

    async fn step(&mut self) -> Result<String> {
        const ACTIONS: &[(&str, u32)] = &[
            ("send", 24),
            ("reply", 5),
            ("edit", 5),
            ("unsay", 4),
            ("react", 6),
            ("read", 8),
            ("request", 9),
            ("answer", 9),
            ("cancel", 3),
            ("unfriend", 4),
            ("group", 6),
            ("add", 6),
            ("remove", 4),
            ("leave", 4),
            ("delete", 2),
            ("rename", 5),
            ("retitle", 3),
            ("password", 1),
            ("notify", 4),
            ("navigate", 12),
        ];
        let total: u32 = ACTIONS.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.random_range(0..total);
        let mut action = "send";
        for (a, w) in ACTIONS {
            if roll < *w {
                action = a;
                break;
            }
            roll -= w;
        }
        let i = self.rng.random_range(0..self.people.len());
        let me = self.people[i].name;
        let http = self.people[i].http.clone();
        let convs = self.conversations(i).await;
        Ok(match action {
            "send" => {
                let Some((c, _)) = convs.choose(&mut self.rng).copied() else {
                    return Ok(format!("{me}: nothing to send to"));
                };
                let n = self.rng.random_range(0..1000);
                // Now and then a tall message (it must still be followed at the bottom).
                let body = if self.rng.random_bool(0.2) {
                    format!("tall {n}\n\nline\nline\nline\nline\nline\nline")
                } else if self.rng.random_bool(0.25) {
                    // Naming someone (a member or not) marks their row with `@` until read.
                    let k = self.rng.random_range(0..self.people.len());
                    format!("msg {n} for @{}", self.people[k].name)
                } else {
                    format!("msg {n} from {me}")
                };
                let r = http
                    .post_fetch(&format!("/conversations/{c}/messages"), &[("body", &body)])
                    .await;
                format!("{me} sends to {c}: {}", r.status)
            }
            "reply" | "edit" | "unsay" | "react" => {
                let Some((c, _)) = convs.choose(&mut self.rng).copied() else {
                    return Ok(format!("{me}: no conversation to {action} in"));
                };
                let all = self.messages_in(i, c).await;
                let candidates: Vec<(i64, i64)> = match action {
                    "edit" => all.iter().copied().filter(|(_, a)| *a == http.id).collect(),
                    "unsay" if self.rng.random_bool(0.8) => {
                        all.iter().copied().filter(|(_, a)| *a == http.id).collect()
                    }
                    _ => all,
                };
                let Some((m, _)) = candidates.choose(&mut self.rng).copied() else {
                    return Ok(format!("{me}: no message to {action} in {c}"));
                };
                let n = self.rng.random_range(0..1000);
                // An edit may name someone, or stop naming them (their row's `@` follows).
                let named = if self.rng.random_bool(0.5) {
                    let k = self.rng.random_range(0..self.people.len());
                    format!(" @{}", self.people[k].name)
                } else {
                    String::new()
                };
                let r = match action {
                    "reply" => {
                        http.post_fetch(
                            &format!("/conversations/{c}/messages"),
                            &[
                                ("body", &format!("re {n} **ok**")),
                                ("reply_to", &m.to_string()),
                            ],
                        )
                        .await
                    }
                    "edit" => {
                        http.post(
                            &format!("/conversations/{c}/messages/{m}"),
                            &[("body", &format!("edited {n} _by_ {me}{named}"))],
                        )
                        .await
                    }
                    "unsay" => {
                        http.post(&format!("/conversations/{c}/messages/{m}/delete"), &[])
                            .await
                    }
                    _ => {
                        let emoji = ["👍", "❤️", "😂", "🎉"]
                            .choose(&mut self.rng)
                            .copied()
                            .unwrap_or("👍");
                        http.post(
                            &format!("/conversations/{c}/messages/{m}/reactions"),
                            &[("emoji", emoji)],
                        )
                        .await
                    }
                };
                format!("{me} {action}s message {m} in {c}: {}", r.status)
            }
            "read" => {
                let Some((c, _)) = convs.choose(&mut self.rng).copied() else {
                    return Ok(format!("{me}: nothing to read"));
                };
                let Some(m) = self.newest_message(i, c).await else {
                    return Ok(format!("{me}: {c} is empty"));
                };
                let r = http
                    .post(
                        &format!("/conversations/{c}/read"),
                        &[("message_id", &m.to_string())],
                    )
                    .await;
                format!("{me} reads {c} up to {m}: {}", r.status)
            }
            "request" => {
                let j = self.other(i);
                let to = self.people[j].name;
                let r = http.post("/friends/requests", &[("username", to)]).await;
                format!("{me} asks {to}: {}", r.status)
            }
            "answer" => {
                let ids = self.ids_in(i, "incoming-requests", "request-").await;
                let Some(id) = ids.choose(&mut self.rng).copied() else {
                    return Ok(format!("{me}: no request to answer"));
                };
                let how = if self.rng.random_bool(0.75) {
                    "accept"
                } else {
                    "reject"
                };
                let r = http
                    .post(&format!("/friends/requests/{id}/{how}"), &[])
                    .await;
                format!("{me} {how}s request {id}: {}", r.status)
            }
            "cancel" => {
                let ids = self.ids_in(i, "outgoing-requests", "request-").await;
                let Some(id) = ids.choose(&mut self.rng).copied() else {
                    return Ok(format!("{me}: no request to cancel"));
                };
                let r = http
                    .post(&format!("/friends/requests/{id}/cancel"), &[])
                    .await;
                format!("{me} cancels request {id}: {}", r.status)
            }
            "unfriend" => {
                let ids = self.ids_in(i, "friend-list", "friend-").await;
                let Some(id) = ids.choose(&mut self.rng).copied() else {
                    return Ok(format!("{me}: no friend to remove"));
                };
                let r = http.post(&format!("/friends/{id}/remove"), &[]).await;
                format!("{me} unfriends {id}: {}", r.status)
            }
            "group" => {
                let friends = self.ids_in(i, "friend-list", "friend-").await;
                let mut form = vec![(
                    "title".to_owned(),
                    format!("Group {}", self.rng.random_range(0..100)),
                )];
                for f in friends {
                    if self.rng.random_bool(0.7)
                        && let Some(j) = self.index_of(f)
                    {
                        form.push(("member".into(), self.people[j].name.to_owned()));
                    }
                }
                let form: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let r = http.post("/conversations", &form).await;
                format!("{me} creates {form:?}: {}", r.status)
            }
            "add" | "remove" | "leave" | "delete" => {
                let groups: Vec<i64> = convs.iter().filter(|(_, d)| !d).map(|(c, _)| *c).collect();
                let Some(g) = groups.choose(&mut self.rng).copied() else {
                    return Ok(format!("{me}: no group to {action}"));
                };
                let Some((owner, members)) = self.group(i, g).await else {
                    return Ok(format!("{me}: group {g} unreadable"));
                };
                match action {
                    "add" => {
                        let friends = self.ids_in(i, "friend-list", "friend-").await;
                        let outside: Vec<i64> = friends
                            .into_iter()
                            .filter(|f| !members.contains(f))
                            .collect();
                        let Some(f) = outside.choose(&mut self.rng).copied() else {
                            return Ok(format!("{me}: nobody to add to {g}"));
                        };
                        let Some(j) = self.index_of(f) else {
                            return Ok(format!("{me}: unknown friend {f}"));
                        };
                        let name = self.people[j].name;
                        let r = http
                            .post(
                                &format!("/conversations/{g}/members"),
                                &[("username", name)],
                            )
                            .await;
                        format!("{me} adds {name} to {g}: {}", r.status)
                    }
                    "remove" => {
                        let others: Vec<i64> =
                            members.into_iter().filter(|m| *m != http.id).collect();
                        let Some(m) = others.choose(&mut self.rng).copied() else {
                            return Ok(format!("{me}: nobody to remove from {g}"));
                        };
                        let r = http
                            .post(&format!("/conversations/{g}/members/{m}/remove"), &[])
                            .await;
                        format!("{me} (owner {owner}) removes {m} from {g}: {}", r.status)
                    }
                    "leave" => {
                        let r = http.post(&format!("/conversations/{g}/leave"), &[]).await;
                        format!("{me} leaves {g}: {}", r.status)
                    }
                    _ => {
                        let r = http.post(&format!("/conversations/{g}/delete"), &[]).await;
                        format!("{me} (owner {owner}) deletes {g}: {}", r.status)
                    }
                }
            }
            "retitle" => {
                let groups: Vec<i64> = convs.iter().filter(|(_, d)| !d).map(|(c, _)| *c).collect();
                let Some(g) = groups.choose(&mut self.rng).copied() else {
                    return Ok(format!("{me}: no group to retitle"));
                };
                let title = format!("Retitled {}", self.rng.random_range(0..100));
                let r = http
                    .post(&format!("/conversations/{g}/title"), &[("title", &title)])
                    .await;
                format!("{me} retitles {g} to {title:?}: {}", r.status)
            }
            "notify" => {
                let Some((c, direct)) = convs.choose(&mut self.rng).copied() else {
                    return Ok(format!("{me}: nothing to mute"));
                };
                let levels: &[&str] = if direct {
                    &["all", "mute"]
                } else {
                    &["all", "mute", "mentions"]
                };
                let level = levels.choose(&mut self.rng).copied().unwrap_or("mute");
                let r = http
                    .post(
                        &format!("/conversations/{c}/notifications"),
                        &[("level", level)],
                    )
                    .await;
                format!("{me} sets {c} to {level}: {}", r.status)
            }
            "rename" => {
                let name = if self.rng.random_bool(0.2) {
                    String::new()
                } else {
                    format!("{} {}", me.to_uppercase(), self.rng.random_range(0..100))
                };
                let r = http.post("/settings", &[("display_name", &name)]).await;
                format!("{me} renames to {name:?}: {}", r.status)
            }
            "password" => {
                let new = format!(
                    "new tide {} lantern {}",
                    me,
                    self.rng.random_range(0..100_000)
                );
                let old = self.people[i].password.clone();
                let r = http
                    .post(
                        "/settings/password",
                        &[("current_password", &old), ("new_password", &new)],
                    )
                    .await;
                if r.status.is_redirection() {
                    self.people[i].password = new;
                    // Every open page of the browser's login ends: check they all show the login
                    // page a fresh load would, then log in again and open the same pages.
                    self.settle().await;
                    let urls = self.relogin(i).await?;
                    format!("{me} changes password in another session; browser back on {urls:?}")
                } else {
                    format!("{me} fails to change password: {}", r.status)
                }
            }
            _ => {
                let t = self.rng.random_range(0..self.people[i].tabs.len());
                let mut choices = vec![
                    "/conversations".to_owned(),
                    "/friends".into(),
                    "/settings".into(),
                ];
                if let Some((c, _)) = convs.choose(&mut self.rng).copied() {
                    choices.push(format!("/conversations/{c}"));
                    choices.push(format!("/conversations/{c}"));
                    if let Some(older) = self.older_url(i, c).await {
                        choices.push(older);
                    }
                }
                let url = choices.choose(&mut self.rng).cloned().unwrap_or_default();
                let p = &self.people[i];
                p.browser.switch_to_window(p.tabs[t].clone()).await?;
                p.browser.goto(&format!("{}{url}", self.app.base)).await?;
                format!("{me} opens {url} in tab {t}")
            }
        })
    }

    fn other(&mut self, i: usize) -> usize {
        let mut others: Vec<usize> = (0..self.people.len()).filter(|j| *j != i).collect();
        others.shuffle(&mut self.rng);
        others[0]
    }

    /// After the browser's session ended: its tabs must all have landed on the login page (as a
    /// fresh load would); log in again and reopen where each tab was.
    async fn relogin(&mut self, i: usize) -> Result<Vec<String>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut urls = Vec::new();
        for t in 0..self.people[i].tabs.len() {
            let p = &self.people[i];
            p.browser.switch_to_window(p.tabs[t].clone()).await?;
            loop {
                let url = p.browser.current_url().await?;
                if url.path() == "/login" {
                    let next = url
                        .query_pairs()
                        .find(|(k, _)| k == "next")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_else(|| "/conversations".into());
                    urls.push(next);
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!(
                        "{}'s tab {t} stayed on {url} after the session ended",
                        p.name
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        self.log_in(i).await?;
        let p = &self.people[i];
        for (t, url) in urls.iter().enumerate() {
            p.browser.switch_to_window(p.tabs[t].clone()).await?;
            p.browser.goto(&format!("{}{url}", self.app.base)).await?;
        }
        Ok(urls)
    }

    // ---- the check -----------------------------------------------------------------------------

    async fn snap(b: &Browser, keep_from: i64) -> Result<Snap> {
        let v = b.execute(SNAPSHOT_JS, vec![json!(keep_from)]).await?;
        let s = v.as_str().context("snapshot is a string")?;
        Ok(serde_json::from_str(s)?)
    }

    async fn check_all(&mut self) -> Result<()> {
        for i in 0..self.people.len() {
            for t in 0..self.people[i].tabs.len() {
                self.check_tab(i, t).await?;
            }
        }
        Ok(())
    }

    async fn check_tab(&self, i: usize, t: usize) -> Result<()> {
        let p = &self.people[i];
        let live_tab = p.tabs[t].clone();
        p.browser.switch_to_window(live_tab.clone()).await?;
        let url = p.browser.current_url().await?;
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let fresh = p.browser.new_window(true).await?.handle;
        p.browser.switch_to_window(fresh.clone()).await?;
        p.browser.goto(&format!("{}{path}", self.app.base)).await?;
        // A fresh load of a newest page reads it: let that reach every page first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.settle().await;
        let mut result = Ok(());
        for attempt in 0..2 {
            // Compare the messages both windows hold: a page that stayed open has history a
            // fresh one does not, and a delete pulls an older message into a fresh page.
            let f0 = Self::snap(&p.browser, 0).await?;
            p.browser.switch_to_window(live_tab.clone()).await?;
            let l0 = Self::snap(&p.browser, 0).await?;
            let from = f0.first_live.max(l0.first_live);
            let l = Self::snap(&p.browser, from).await?;
            p.browser.switch_to_window(fresh.clone()).await?;
            let f = Self::snap(&p.browser, from).await?;
            result = compare(p.name, t, &l, &f);
            if result.is_ok() || attempt == 1 {
                break;
            }
            // One more settle before calling it a failure: a slow frame is not a broken page.
            self.settle().await;
        }
        p.browser.close_window().await?;
        p.browser.switch_to_window(live_tab).await?;
        result
    }
}

/// Equal, or the one allowed difference: a conversation that went away while open says why
/// ("deleted", "you were removed") where a fresh load says "Not found".
fn compare(who: &str, tab: usize, live: &Snap, fresh: &Snap) -> Result<()> {
    if live.gone && fresh.not_found {
        return Ok(());
    }
    let (l, f) = (
        (&live.path, &live.title, &live.badges, &live.me, &live.main),
        (
            &fresh.path,
            &fresh.title,
            &fresh.badges,
            &fresh.me,
            &fresh.main,
        ),
    );
    if l == f {
        return Ok(());
    }
    let at = live
        .main
        .chars()
        .zip(fresh.main.chars())
        .position(|(a, b)| a != b)
        .unwrap_or(live.main.len().min(fresh.main.len()));
    let from = at.saturating_sub(300);
    let cut = |s: &str| s.chars().skip(from).take(700).collect::<String>();
    bail!(
        "{who}'s tab {tab} ({}) differs from a fresh load:\n  path  {} | {}\n  title {} | {}\n  badges {} | {}\n  me {} | {}\n  main, live from char {from}:\n{}\n  main, fresh:\n{}",
        live.path,
        live.path,
        fresh.path,
        live.title,
        fresh.title,
        live.badges,
        fresh.badges,
        live.me,
        fresh.me,
        cut(&live.main),
        cut(&fresh.main)
    )
}
