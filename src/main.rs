//! `parley`: see `parley --help`.

use anyhow::Context;
use clap::Parser;
use parley::config::{Cli, Command};
use parley::ops::{admin, backup, copy};
use parley::{App, telemetry};

/// mimalloc returns freed memory to the system: with glibc's allocator each 19 MiB argon2 buffer
/// stayed resident, and a burst of logins left the server at ~250 MiB for good. Built without
/// transparent huge pages (`no_thp`): with them, every touched 2 MiB region stayed resident.
/// (`--features system-alloc` leaves the system allocator in place, for heaptrack.)
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Database drivers wake their tasks from their own threads, which puts them in the runtime's
    // shared queue. Looking there often keeps the task that holds the SQLite writer from waiting
    // behind every other request between two of its statements (the writer idles meanwhile).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .global_queue_interval(2)
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.config.log_format);
    // Every open stream is a socket: allow as many as the system lets this process have.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open files"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            parley::app::connect_and_migrate(&cli.config).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => App::build(cli.config).await?.run().await,
        Command::Copy(args) => {
            let report = copy::copy(&copy::CopyOptions {
                from: args.from.clone(),
                to: args.to,
                sessions: args.sessions,
            })
            .await
            .context("parley copy")?;
            for (table, rows) in &report.tables {
                println!("{table:<24} {rows:>10} rows");
            }
            println!("copied; row counts verified");
            // Attachments are files, not rows: the new server reads them where they are.
            let files = match &cli.config.files_dir {
                Some(d) => d.clone(),
                None => parley::config::default_files_dir(&args.from),
            };
            println!(
                "attachments stay in {}: start the server on the new database with --files-dir {} \
                 (or PARLEY_FILES_DIR), or move that directory where it will look",
                files.display(),
                files.display()
            );
            Ok(())
        }
        Command::Admin(cmd) => {
            let out = admin::run(&cli.config, cmd, admin::read_password_line)
                .await
                .context("parley admin")?;
            println!("{out}");
            Ok(())
        }
        Command::Backup(args) => {
            let report = backup::backup(
                &cli.config.database_url,
                &args.file,
                &cli.config.files_dir(),
            )
            .await
            .context("parley backup")?;
            println!(
                "backup written: {} ({} bytes)",
                report.file.display(),
                report.bytes
            );
            println!(
                "attachments: {} files in {}",
                report.files,
                report.files_dir.display()
            );
            if report.missing > 0 {
                println!(
                    "note: {} attachments were deleted while the backup ran; their messages will show them as gone",
                    report.missing
                );
            }
            Ok(())
        }
    }
}
