//! `parley`: see `parley --help`.

use clap::Parser;
use parley::config::{Cli, Command};
use parley::{App, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            parley::app::connect_and_migrate(&cli.config).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => App::build(cli.config).await?.run().await,
    }
}
