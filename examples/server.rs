//! Run with: cargo run --example server
//!
//! The IMAS reference server. With no configuration it keeps its data in the
//! SQLite file `imas.db` and delivers notifications through the in-process queue,
//! with the SLA monitor and the notification worker running in the background.
//! Configuration (environment or `.env`): see the README. SIGTERM or Ctrl-C
//! drains in-flight requests and background steps, then exits.
//! (`cargo run --bin imas-server` is the same program.)

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    match imas::server::run_from_env().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imas: {e}");
            ExitCode::from(2)
        }
    }
}
