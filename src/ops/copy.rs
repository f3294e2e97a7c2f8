//! `parley copy --from sqlite://… --to postgres://…`: moves a whole instance into an empty
//! PostgreSQL database.
//!
//! Nothing here names Parley's tables: it copies every table the migrations created, as found in
//! the two databases, so a new migration needs no change here. It refuses when the two schemas
//! differ (different migrations applied, a column on one side only) or when the target holds data.
//! Everything is read in one SQLite read transaction (one consistent snapshot) and written in one
//! PostgreSQL transaction (all or nothing), parents before children (foreign keys), in batches.
//! Then the id sequences are moved past the copied ids (and past SQLite's `AUTOINCREMENT` high-water
//! marks, so a deleted id is never handed out again), and every table's row count is compared with
//! the source before the commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{
    ConnectOptions, Connection, Executor, PgConnection, QueryBuilder, Row, SqliteConnection,
    TypeInfo, ValueRef,
};

use crate::db::{Db, is_postgres_url};
use crate::sessions::Store;

/// The session store's table: named differently by the two stores (`tower-sessions-sqlx-store`).
const SQLITE_SESSIONS: &str = "tower_sessions";
const PG_SESSIONS: (&str, &str) = ("tower_sessions", "session");

/// PostgreSQL accepts at most 65535 bind parameters per statement.
const MAX_PARAMS: usize = 30_000;
/// Rows per INSERT at most (fewer for wide tables).
const MAX_BATCH: usize = 1000;

/// What to copy where.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Source (`sqlite://…`).
    pub from: String,
    /// Target (`postgres://…`), empty.
    pub to: String,
    /// Copy login sessions too.
    pub sessions: bool,
}

/// What was copied: rows per table (source table name), in copy order.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// `(table, rows)`.
    pub tables: Vec<(String, u64)>,
}

impl CopyReport {
    /// Rows copied into `table`.
    pub fn rows(&self, table: &str) -> Option<u64> {
        self.tables.iter().find(|(t, _)| t == table).map(|t| t.1)
    }
}

/// One table on both sides.
#[derive(Debug, Clone)]
struct Table {
    /// Name in SQLite.
    source: String,
    /// `"schema"."name"` in PostgreSQL.
    target: String,
    /// Columns (both sides have the same set), with the PostgreSQL type of each.
    columns: Vec<(String, String)>,
    /// Tables whose rows this one references.
    parents: BTreeSet<String>,
}

/// A value as SQLite stores it.
#[derive(Debug, Clone)]
enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote(schema), quote(name))
}

/// Copies the instance at `opts.from` into the empty database at `opts.to`.
pub async fn copy(opts: &CopyOptions) -> anyhow::Result<CopyReport> {
    if is_postgres_url(&opts.from) || !opts.from.starts_with("sqlite:") {
        bail!(
            "--from must be a SQLite database (sqlite://FILE); to move a PostgreSQL database use pg_dump"
        );
    }
    if !is_postgres_url(&opts.to) {
        bail!("--to must be a PostgreSQL database (postgres://USER:PASS@HOST/DB)");
    }

    let mut src = open_source(&opts.from).await?;
    check_source_migrations(&mut src).await?;

    // The target gets our schema first (like `parley migrate`), then its tables are compared.
    let db = Db::connect(&opts.to)
        .await
        .context("connecting to the target")?;
    db.migrate().await.context("migrating the target")?;
    Store::new(&db)
        .migrate()
        .await
        .context("creating the target's session table")?;
    let Db::Postgres(pool) = &db else {
        bail!("--to must be a PostgreSQL database");
    };
    let mut dst = pool.acquire().await?.detach();
    db.close().await;

    let tables = match_tables(&mut src, &mut dst).await?;
    let seeded = seeded_tables().await?;
    let order = copy_order(&tables)?;

    // One snapshot of the source for everything read below.
    src.execute("BEGIN").await?;
    let mut tx = dst.begin().await?;
    check_target_empty(&mut tx, &tables, &seeded).await?;

    let mut report = CopyReport::default();
    for name in &order {
        let table = &tables[name];
        if name == SQLITE_SESSIONS && !opts.sessions {
            continue;
        }
        if seeded.contains_key(name) {
            // Rows the migrations put there (the event counter): the source's replace them.
            tx.execute(format!("DELETE FROM {}", table.target).as_str())
                .await?;
        }
        let n = copy_table(&mut src, &mut tx, table).await?;
        tracing::info!(table = %name, rows = n, "copied");
        report.tables.push((name.clone(), n));
    }

    set_sequences(&mut src, &mut tx, &tables).await?;
    verify_counts(&mut src, &mut tx, &tables, &report).await?;
    tx.commit().await.context("committing the copy")?;
    src.execute("COMMIT").await?;
    src.close().await?;
    dst.close().await?;
    Ok(report)
}

async fn open_source(url: &str) -> anyhow::Result<SqliteConnection> {
    // Read only, and never created: a typo in the path must not yield an "empty instance".
    let opts = SqliteConnectOptions::from_str(url)
        .context("parsing --from")?
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(10))
        .disable_statement_logging();
    opts.connect()
        .await
        .with_context(|| format!("opening {url} (does the file exist?)"))
}

/// The source must have exactly the migrations this binary has: otherwise its tables are not the
/// shape the target gets.
async fn check_source_migrations(src: &mut SqliteConnection) -> anyhow::Result<()> {
    let applied: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version",
    )
    .fetch_all(&mut *src)
    .await
    .context("the source has no migration table: is it a Parley database?")?;
    let ours: Vec<i64> = sqlx::migrate!("migrations/sqlite")
        .iter()
        .map(|m| m.version)
        .collect();
    if applied != ours {
        bail!(
            "the source database is at migrations {applied:?}, this parley has {ours:?}: \
             run `parley migrate --database-url <source>` with this binary first (or use the binary \
             that wrote it)"
        );
    }
    Ok(())
}

/// Tables on both sides, matched by name; an error names any table or column on one side only.
async fn match_tables(
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
) -> anyhow::Result<BTreeMap<String, Table>> {
    // Only ordinary tables: the search index (an FTS5 virtual table and its shadow tables) is
    // derived from `messages`, and PostgreSQL computes its own (a generated column, skipped below).
    let source_names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *src)
    .await?;
    let target_names: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') \
         AND NOT (table_schema = 'public' AND table_name = '_sqlx_migrations') \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *dst)
    .await?;
    let target_of = |source: &str| -> (String, String) {
        if source == SQLITE_SESSIONS {
            (PG_SESSIONS.0.to_owned(), PG_SESSIONS.1.to_owned())
        } else {
            ("public".to_owned(), source.to_owned())
        }
    };
    let mut unmatched: BTreeSet<(String, String)> = target_names.into_iter().collect();
    let mut tables = BTreeMap::new();
    for name in source_names {
        let (schema, tname) = target_of(&name);
        if !unmatched.remove(&(schema.clone(), tname.clone())) {
            bail!(
                "table {name} exists in the source but not in the target ({schema}.{tname}): \
                 the two schemas differ"
            );
        }
        let target = qualified(&schema, &tname);
        let source_cols: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                .bind(&name)
                .fetch_all(&mut *src)
                .await?;
        let target_cols: Vec<(String, String)> = sqlx::query_as(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped \
             AND attgenerated = '' ORDER BY attnum",
        )
        .bind(&target)
        .fetch_all(&mut *dst)
        .await?;
        let types: HashMap<&str, &str> = target_cols
            .iter()
            .map(|(c, t)| (c.as_str(), t.as_str()))
            .collect();
        let mut columns = Vec::new();
        for c in &source_cols {
            match types.get(c.as_str()) {
                Some(t) => columns.push((c.clone(), (*t).to_owned())),
                None => bail!("column {name}.{c} exists in the source but not in the target"),
            }
        }
        if let Some((c, _)) = target_cols.iter().find(|(c, _)| !source_cols.contains(c)) {
            bail!("column {name}.{c} exists in the target but not in the source");
        }
        let parents: BTreeSet<String> =
            sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)")
                .bind(&name)
                .fetch_all(&mut *src)
                .await?
                .into_iter()
                .filter(|p: &String| p != &name)
                .collect();
        tables.insert(
            name.clone(),
            Table {
                source: name,
                target,
                columns,
                parents,
            },
        );
    }
    if let Some((schema, name)) = unmatched.into_iter().next() {
        bail!("table {schema}.{name} exists in the target but not in the source");
    }
    Ok(tables)
}

/// Tables that hold rows right after the migrations (such as the event counter's one row), with
/// how many: learnt by migrating an in-memory database, so no table is named here.
async fn seeded_tables() -> anyhow::Result<HashMap<String, i64>> {
    let mut mem = SqliteConnection::connect("sqlite::memory:").await?;
    sqlx::migrate!("migrations/sqlite").run(&mut mem).await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut mem)
    .await?;
    let mut seeded = HashMap::new();
    for name in names {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote(&name)))
            .fetch_one(&mut mem)
            .await?;
        if n > 0 {
            seeded.insert(name, n);
        }
    }
    mem.close().await?;
    Ok(seeded)
}

/// Parents before children, ties by name.
fn copy_order(tables: &BTreeMap<String, Table>) -> anyhow::Result<Vec<String>> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < tables.len() {
        let next = tables
            .values()
            .find(|t| {
                !done.contains(&t.source)
                    && t.parents
                        .iter()
                        .all(|p| done.contains(p) || !tables.contains_key(p))
            })
            .map(|t| t.source.clone());
        match next {
            Some(name) => {
                done.insert(name.clone());
                order.push(name);
            }
            None => bail!("the tables' foreign keys form a cycle; cannot order the copy"),
        }
    }
    Ok(order)
}

async fn count(c: &mut PgConnection, target: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar(&format!("SELECT count(*) FROM {target}"))
            .fetch_one(c)
            .await?,
    )
}

/// Refuses a target holding anything but what its migrations put there.
async fn check_target_empty(
    tx: &mut PgConnection,
    tables: &BTreeMap<String, Table>,
    seeded: &HashMap<String, i64>,
) -> anyhow::Result<()> {
    for (name, t) in tables {
        let n = count(tx, &t.target).await?;
        let allowed = seeded.get(name).copied().unwrap_or(0);
        if n > allowed {
            bail!(
                "the target is not empty: {} has {n} rows. parley copy only fills a new, empty \
                 database (create one, e.g. `createdb parley`)",
                t.target
            );
        }
    }
    Ok(())
}

fn read_value(row: &SqliteRow, i: usize) -> anyhow::Result<Value> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().name().to_owned();
    Ok(match kind.as_str() {
        "INTEGER" => Value::Int(row.try_get_unchecked(i)?),
        "REAL" => Value::Real(row.try_get_unchecked(i)?),
        "TEXT" => Value::Text(row.try_get_unchecked(i)?),
        "BLOB" => Value::Blob(row.try_get_unchecked(i)?),
        other => bail!("unexpected SQLite value type {other}"),
    })
}

/// Appends `value` as the SQL expression that stores it in a column of PostgreSQL type `ty`.
fn push_value(q: &mut QueryBuilder<'_, sqlx::Postgres>, value: Value, ty: &str) {
    let is_time = ty.starts_with("timestamp");
    match value {
        Value::Int(v) if ty == "boolean" => {
            q.push_bind(v != 0);
        }
        // Numbers in a time column are Unix seconds (how SQLite code usually stores them).
        Value::Int(v) if is_time => {
            q.push("to_timestamp(").push_bind(v).push(")");
        }
        Value::Real(v) if is_time => {
            q.push("to_timestamp(").push_bind(v).push(")");
        }
        Value::Text(v) if ty == "bytea" => {
            q.push_bind(v.into_bytes());
        }
        other => {
            // Explicit casts: the bound value has its SQLite type; PostgreSQL converts (e.g.
            // int8 to integer, text to jsonb or timestamptz) and fails loudly where it cannot.
            q.push("CAST(");
            match other {
                Value::Null => q.push_bind(None::<String>),
                Value::Int(v) => q.push_bind(v),
                Value::Real(v) => q.push_bind(v),
                Value::Text(v) => q.push_bind(v),
                Value::Blob(v) => q.push_bind(v),
            };
            q.push(" AS ").push(ty).push(")");
        }
    }
}

async fn insert_batch(
    tx: &mut PgConnection,
    table: &Table,
    rows: Vec<Vec<Value>>,
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let cols: Vec<String> = table.columns.iter().map(|(c, _)| quote(c)).collect();
    let mut q = QueryBuilder::new(format!(
        "INSERT INTO {} ({}) VALUES ",
        table.target,
        cols.join(", ")
    ));
    for (r, row) in rows.into_iter().enumerate() {
        if r > 0 {
            q.push(", ");
        }
        q.push("(");
        for (i, (value, (_, ty))) in row.into_iter().zip(&table.columns).enumerate() {
            if i > 0 {
                q.push(", ");
            }
            push_value(&mut q, value, ty);
        }
        q.push(")");
    }
    q.build()
        .execute(&mut *tx)
        .await
        .with_context(|| format!("inserting into {}", table.target))?;
    Ok(())
}

async fn copy_table(
    src: &mut SqliteConnection,
    tx: &mut PgConnection,
    table: &Table,
) -> anyhow::Result<u64> {
    let cols: Vec<String> = table.columns.iter().map(|(c, _)| quote(c)).collect();
    let sql = format!("SELECT {} FROM {}", cols.join(", "), quote(&table.source));
    let batch = (MAX_PARAMS / table.columns.len().max(1)).clamp(1, MAX_BATCH);
    let mut rows = sqlx::query(&sql).fetch(&mut *src);
    let mut pending: Vec<Vec<Value>> = Vec::with_capacity(batch);
    let mut n = 0u64;
    while let Some(row) = rows.try_next().await? {
        let values = (0..table.columns.len())
            .map(|i| read_value(&row, i))
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("reading {}", table.source))?;
        pending.push(values);
        n += 1;
        if pending.len() == batch {
            insert_batch(tx, table, std::mem::take(&mut pending)).await?;
        }
    }
    drop(rows);
    insert_batch(tx, table, pending).await?;
    Ok(n)
}

/// Moves every id sequence past the copied ids, and past SQLite's AUTOINCREMENT high-water mark
/// (an id deleted at the end of a table is not handed out again on either backend).
async fn set_sequences(
    src: &mut SqliteConnection,
    tx: &mut PgConnection,
    tables: &BTreeMap<String, Table>,
) -> anyhow::Result<()> {
    let has_seq: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence')",
    )
    .fetch_one(&mut *src)
    .await?;
    let high_water: HashMap<String, i64> = if has_seq {
        sqlx::query_as::<_, (String, i64)>("SELECT name, seq FROM sqlite_sequence")
            .fetch_all(&mut *src)
            .await?
            .into_iter()
            .collect()
    } else {
        HashMap::new()
    };
    for (name, t) in tables {
        for (col, _) in &t.columns {
            let seq: Option<String> = sqlx::query_scalar("SELECT pg_get_serial_sequence($1, $2)")
                .bind(&t.target)
                .bind(col)
                .fetch_one(&mut *tx)
                .await?;
            let Some(seq) = seq else { continue };
            let max: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT MAX({})::bigint FROM {}",
                quote(col),
                t.target
            ))
            .fetch_one(&mut *tx)
            .await?;
            let next = max
                .unwrap_or(0)
                .max(high_water.get(name).copied().unwrap_or(0))
                + 1;
            sqlx::query("SELECT setval($1::regclass, $2, false)")
                .bind(&seq)
                .bind(next)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

/// Every copied table has as many rows as the source's snapshot; the others stayed empty.
async fn verify_counts(
    src: &mut SqliteConnection,
    tx: &mut PgConnection,
    tables: &BTreeMap<String, Table>,
    report: &CopyReport,
) -> anyhow::Result<()> {
    for (name, t) in tables {
        let target = count(tx, &t.target).await?;
        match report.rows(name) {
            Some(copied) => {
                let source: i64 =
                    sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote(name)))
                        .fetch_one(&mut *src)
                        .await?;
                if source != target || copied as i64 != target {
                    bail!(
                        "row counts differ for {name}: source {source}, copied {copied}, target {target}; nothing was committed"
                    );
                }
            }
            None if target != 0 => {
                bail!("{} was not copied but has {target} rows", t.target)
            }
            None => {}
        }
    }
    Ok(())
}
