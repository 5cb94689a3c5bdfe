//! Run with: cargo run --example server
//!
//! The IMAS reference server. With no configuration it keeps its data in the
//! SQLite file `imas.db` and delivers notifications through the in-process queue,
//! with the SLA monitor and the notification worker running in the background.
//! Configuration (environment or `.env`): PORT, JWT_SECRET, DATABASE_URL
//! (sqlite://... or postgres://...), IMAS_ADMIN_USERNAME / IMAS_ADMIN_PASSWORD /
//! IMAS_ADMIN_EMAIL, IMAS_SLA_POLICY, IMAS_SLA_RESPONSE_POLICY,
//! IMAS_ESCALATION_DELAYS, IMAS_SLA_AT_RISK, RUST_LOG. SIGTERM or Ctrl-C drains
//! in-flight requests and background steps, then exits.

use std::process::ExitCode;

use imas::server::{ServerConfig, engine, serve, shutdown_signal};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let config = match ServerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imas: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let engine = match engine(&config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("imas: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", config.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("imas: cannot listen on port {} (PORT): {e}", config.port);
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        database = %config.database_url.split('@').next_back().unwrap_or_default(),
        "IMAS listening"
    );
    match serve(engine, &config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imas: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
