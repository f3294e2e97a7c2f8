//! Rebuild when a migration changes: `sqlx::migrate!` embeds the migration files at compile time,
//! and cargo does not know to look at them otherwise.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
