//! Search latency over 1,000,000 messages: the query `GET /search` runs (`db::search::run`), for
//! a set of typical queries, printed as p50/p95 per query and overall.
//!
//!     cargo bench --bench search
//!     PARLEY_BENCH_DATABASE_URL=postgres://user@host/postgres cargo bench --bench search  # + PostgreSQL
//!
//! The database is built in a temporary directory by bulk inserts (each commit fills the FTS5
//! index as the app's writes do, in chunks): 2,000 users, 6,000 direct conversations and 1,000
//! groups of 3-30 members; ten "heavy" users are in every group as well. Message text is drawn
//! from a Zipf-distributed vocabulary of 20,000 words (a few hundred real English ones first), so
//! "the" is in most messages, "harbour" in about 0.3% of them, and most words are rare. `PARLEY_BENCH_MESSAGES` changes
//! the count.

use std::time::{Duration, Instant};

use parley::db::{Conn, Db, search};
use parley::domain::search::SearchQuery;

const USERS: i64 = 2_000;
const DIRECTS: i64 = 6_000;
const GROUPS: i64 = 1_000;
const HEAVY: i64 = 10;
const VOCABULARY: usize = 20_000;

/// splitmix64: a small, seeded generator, so every run builds the same database.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const COMMON: &str = "the of and to a in is it you that he was for on are with as i his they be at one \
have this from or had by hot word but what some we can out other were all there when up use your how \
said an each she which do their time if will way about many then them write would like so these her \
long make thing see him two has look more day could go come did number sound no most people my over \
know water than call first who may down side been now find any new work part take get place made live \
where after back little only round man year came show every good me give our under name very through \
just form sentence great think say help low line differ turn cause much mean before move right boy old \
too same tell does set three want air well also play small end put home read hand port large spell add \
even land here must big high such follow act why ask men change went light kind off need house picture \
try us again animal point mother world near build self earth father head stand own page should country \
found answer school grow study still learn plant cover food sun four between state keep eye never last \
let thought city tree cross farm hard start might story saw far sea draw left late run while press close \
night real life few north open seem together next white children begin got walk example ease paper group \
always music those both mark often letter until mile river car feet care second book carry took science \
eat room friend began idea fish mountain stop once base hear horse cut sure watch color face wood main \
meeting tomorrow deploy release coffee lunch harbour invoice budget review design server database \
question ticket customer launch weekend holiday train flight hotel birthday party dinner";

fn vocabulary(rng: &mut Rng) -> Vec<String> {
    let mut words: Vec<String> = COMMON.split_whitespace().map(str::to_owned).collect();
    let syllables = [
        "ka", "lo", "mi", "ra", "te", "vu", "sen", "dor", "pli", "qua", "zen", "bri", "tho", "gan",
        "fel", "wis", "nor", "hap", "cle", "dri",
    ];
    while words.len() < VOCABULARY {
        let n = 2 + rng.below(3) as usize;
        let w: String = (0..n)
            .map(|_| syllables[rng.below(syllables.len() as u64) as usize])
            .collect();
        words.push(w);
    }
    words
}

/// Zipf (s = 1) over ranks: the cumulative weights, to draw from with a binary search.
fn zipf(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cum: Vec<f64> = (1..=n)
        .map(|r| {
            acc += 1.0 / r as f64;
            acc
        })
        .collect();
    for c in &mut cum {
        *c /= acc;
    }
    cum
}

fn draw(rng: &mut Rng, cum: &[f64]) -> usize {
    let u = rng.unit();
    cum.partition_point(|c| *c < u).min(cum.len() - 1)
}

/// Runs `$sql` with `$binds` (a closure binding one row's values) on the transaction's backend.
macro_rules! on_tx {
    ($tx:expr, $sql:expr, |$q:ident| $bind:expr) => {
        match $tx.conn() {
            Conn::Sqlite(t) => {
                let $q = sqlx::query($sql);
                $bind.execute(&mut *t).await?;
            }
            Conn::Pg(t) => {
                let $q = sqlx::query($sql);
                $bind.execute(&mut *t).await?;
            }
        }
    };
}

fn values(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The conversations and their members.
struct World {
    members: Vec<Vec<i64>>,
    words: Vec<String>,
}

async fn build(db: &Db, messages: i64) -> anyhow::Result<World> {
    let mut rng = Rng(42);
    let now = 1_764_000_000_000i64;
    let mut tx = db.begin().await?;
    for chunk in (1..=USERS).collect::<Vec<_>>().chunks(500) {
        let sql = format!(
            "INSERT INTO users (id, username, display_name, password_hash, created_at) VALUES {}",
            values(chunk.len(), 5)
        );
        on_tx!(tx, &sql, |q| {
            let mut q = q;
            for id in chunk {
                q = q
                    .bind(*id)
                    .bind(format!("user{id}"))
                    .bind(format!("User {id}"))
                    .bind("x")
                    .bind(now);
            }
            q
        });
    }
    // Conversations: pairs of users, then groups (the heavy users are in every group).
    let mut members: Vec<Vec<i64>> = Vec::new();
    for _ in 0..DIRECTS {
        let a = 1 + rng.below(USERS as u64) as i64;
        let mut b = 1 + rng.below(USERS as u64) as i64;
        if b == a {
            b = a % USERS + 1;
        }
        members.push(vec![a, b]);
    }
    for _ in 0..GROUPS {
        let n = 3 + rng.below(28) as usize;
        let mut m: Vec<i64> = (1..=HEAVY).collect();
        while m.len() < n + HEAVY as usize {
            let u = 1 + rng.below(USERS as u64) as i64;
            if !m.contains(&u) {
                m.push(u);
            }
        }
        members.push(m);
    }
    let ids: Vec<i64> = (1..=members.len() as i64).collect();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "INSERT INTO conversations (id, kind, title, owner_id, direct_key, last_activity_at, created_at) VALUES {}",
            values(chunk.len(), 7)
        );
        on_tx!(tx, &sql, |q| {
            let mut q = q;
            for id in chunk {
                let m = &members[(*id - 1) as usize];
                let direct = *id <= DIRECTS;
                q = q
                    .bind(*id)
                    .bind(if direct { "direct" } else { "group" })
                    .bind((!direct).then(|| format!("Group {id} planning")))
                    .bind((!direct).then_some(m[0]))
                    .bind(direct.then(|| format!("{id}:{}:{}", m[0], m[1])))
                    .bind(now)
                    .bind(now);
            }
            q
        });
    }
    let pairs: Vec<(i64, i64)> = members
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.iter().map(move |u| (i as i64 + 1, *u)))
        .collect();
    for chunk in pairs.chunks(1000) {
        let sql = format!(
            "INSERT INTO members (conversation_id, user_id, created_at) VALUES {} ON CONFLICT DO NOTHING",
            values(chunk.len(), 3)
        );
        on_tx!(tx, &sql, |q| {
            let mut q = q;
            for (c, u) in chunk {
                q = q.bind(*c).bind(*u).bind(now);
            }
            q
        });
    }
    tx.commit().await?;
    let words = vocabulary(&mut rng);
    let cum = zipf(words.len());
    let started = Instant::now();
    const ROWS: usize = 200;
    const PER_TX: i64 = 50_000;
    let mut written = 0i64;
    while written < messages {
        let mut tx = db.begin().await?;
        let end = (written + PER_TX).min(messages);
        while written < end {
            let n = ROWS.min((end - written) as usize);
            let rows: Vec<(i64, i64, String, i64)> = (0..n)
                .map(|i| {
                    let c = 1 + rng.below(members.len() as u64) as usize;
                    let m = &members[c - 1];
                    let author = m[rng.below(m.len() as u64) as usize];
                    let len = 4 + rng.below(22) as usize;
                    let body: Vec<&str> = (0..len)
                        .map(|_| words[draw(&mut rng, &cum)].as_str())
                        .collect();
                    (
                        c as i64,
                        author,
                        body.join(" "),
                        now + (written + i as i64) * 1000,
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO messages (conversation_id, author_id, body, created_at) VALUES {}",
                values(n, 4)
            );
            on_tx!(tx, &sql, |q| {
                let mut q = q;
                for (c, a, b, t) in &rows {
                    q = q.bind(*c).bind(*a).bind(b.as_str()).bind(*t);
                }
                q
            });
            written += n as i64;
        }
        tx.commit().await?;
        eprint!("\r  {written} messages ({:.0?})", started.elapsed());
    }
    eprintln!();
    // What the last commits left out of the SQLite index goes in, as before any app search.
    db.catch_up_search().await?;
    Ok(World { members, words })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// The typical queries, for a user (some name the user's own conversations or people).
fn queries(user: i64, world: &World, rng: &mut Rng) -> Vec<(&'static str, String)> {
    let rare = world.words[15_000].clone();
    let mine: Vec<usize> = world
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.contains(&user))
        .map(|(i, _)| i)
        .collect();
    let pick = mine
        .get(rng.below(mine.len().max(1) as u64) as usize)
        .copied();
    let (other, group) = match pick {
        Some(i) if (i as i64) < DIRECTS => (
            world.members[i]
                .iter()
                .copied()
                .find(|u| *u != user)
                .unwrap_or(1),
            None,
        ),
        Some(i) => (world.members[i][0], Some(i as i64 + 1)),
        None => (1, None),
    };
    let within = match group {
        Some(g) => format!("in:\"group {g} planning\" meeting"),
        None => format!("in:user{other} meeting"),
    };
    vec![
        ("common word", "the".to_owned()),
        ("two words", "meeting tomorrow".to_owned()),
        ("medium word", "harbour".to_owned()),
        ("rare word", rare),
        ("absent word", "zzyzx".to_owned()),
        ("phrase", "\"the meeting\"".to_owned()),
        ("prefix", "deplo*".to_owned()),
        ("short prefix", "ka*".to_owned()),
        ("from: + word", format!("from:user{other} the")),
        ("from: alone", format!("from:user{other}")),
        ("in: + word", within),
    ]
}

async fn measure(db: &Db, world: &World, label: &str) -> anyhow::Result<()> {
    let mut rng = Rng(7);
    for (kind, users) in [
        (
            "typical users",
            (0..40)
                .map(|_| HEAVY + 1 + rng.below((USERS - HEAVY) as u64) as i64)
                .collect::<Vec<_>>(),
        ),
        ("heavy users (in all 1,000 groups)", (1..=HEAVY).collect()),
    ] {
        let mut by_query: Vec<(&str, Vec<Duration>, usize)> = Vec::new();
        let mut all = Vec::new();
        for round in 0..2 {
            for &user in &users {
                for (name, q) in queries(user, world, &mut rng) {
                    let parsed = SearchQuery::parse(&q).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let mut rc = db.read().await?;
                    let t = Instant::now();
                    let out = search::run(&mut rc.conn(), user, &parsed, None, 21).await?;
                    let took = t.elapsed();
                    drop(rc);
                    if round == 0 {
                        continue; // warm-up: the first round reads the pages in
                    }
                    all.push(took);
                    match by_query.iter_mut().find(|(n, _, _)| *n == name) {
                        Some((_, d, hits)) => {
                            d.push(took);
                            *hits += out.hits.len();
                        }
                        None => by_query.push((name, vec![took], out.hits.len())),
                    }
                }
            }
        }
        println!(
            "\n[{label}] {kind}: {} users, latency of one search (20 results + 1), ms",
            users.len()
        );
        println!(
            "  {:<16} {:>8} {:>8} {:>8} {:>12}",
            "query", "p50", "p95", "max", "hits/search"
        );
        for (name, mut d, hits) in by_query {
            d.sort();
            println!(
                "  {:<16} {:>8} {:>8} {:>8} {:>12.1}",
                name,
                ms(percentile(&d, 0.5)),
                ms(percentile(&d, 0.95)),
                ms(*d.last().unwrap_or(&Duration::ZERO)),
                hits as f64 / d.len() as f64
            );
        }
        all.sort();
        println!(
            "  {:<16} {:>8} {:>8} {:>8}   (target: p95 < 50 ms on SQLite)",
            "ALL",
            ms(percentile(&all, 0.5)),
            ms(percentile(&all, 0.95)),
            ms(*all.last().unwrap_or(&Duration::ZERO)),
        );
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let messages: i64 = std::env::var("PARLEY_BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("search.db").display());
    let db = Db::connect(&url).await?;
    db.migrate().await?;
    println!("Parley search bench: {messages} messages");
    let t = Instant::now();
    let world = build(&db, messages).await?;
    let size = std::fs::metadata(dir.path().join("search.db"))?.len();
    println!(
        "SQLite: built in {:.1?} ({} MiB, WAL checkpointed at close)",
        t.elapsed(),
        size >> 20
    );
    measure(&db, &world, "SQLite").await?;
    db.close().await;
    if let Some(server) = std::env::var("PARLEY_BENCH_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
    {
        use sqlx::Connection;
        let name = format!("parley_search_bench_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&server).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        let db = Db::connect(&format!("{base}/{name}")).await?;
        db.migrate().await?;
        let t = Instant::now();
        let world = build(&db, messages).await?;
        if let Db::Postgres(pool) = &db {
            sqlx::query("VACUUM ANALYZE").execute(pool).await?;
        }
        println!("\nPostgreSQL: built in {:.1?}", t.elapsed());
        measure(&db, &world, "PostgreSQL").await?;
        db.close().await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}
